// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Reading a small map for a diff, cheaply
//
// A script of runs reads each map the program writes two or three times a
// run. Through cilium/ebpf each read opens the map with an info call,
// sizes its buffers by reflection and allocates them anew; here a map seen
// before (its type and sizes are in mapCache) is opened by id alone, read
// with BPF_MAP_LOOKUP_BATCH into buffers kept per map between runs, and
// its entries copied out in one allocation. Map types without batch
// lookups fall back to readEntries.

// BPF commands used here (include/uapi/linux/bpf.h).
const (
	bpfMapGetFDByID   = 14
	bpfMapLookupBatch = 24
)

// openMapFD opens map id for reading; the kernel makes the fd close-on-exec.
func openMapFD(id ebpf.MapID) (int, error) {
	attr := struct{ id, next, flags uint32 }{id: uint32(id)}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfMapGetFDByID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// batchAttr is the batch part of union bpf_attr.
type batchAttr struct {
	inBatch, outBatch, keys, values uint64
	count, mapFD                    uint32
	elemFlags, flags                uint64
}

// batchBuf holds one map's read buffers between runs.
type batchBuf struct {
	keys, values []byte
	in, out      []byte // batch tokens: the kernel copies key_size or 4 bytes
	batch        int
}

var batchBufs struct {
	sync.Mutex
	m map[ebpf.MapID]*batchBuf
}

// takeBatchBuf is id's buffers (new ones the first time); give them back
// with putBatchBuf.
func takeBatchBuf(id ebpf.MapID) *batchBuf {
	batchBufs.Lock()
	defer batchBufs.Unlock()
	b := batchBufs.m[id]
	if b != nil {
		delete(batchBufs.m, id)
		return b
	}
	return &batchBuf{}
}

func putBatchBuf(id ebpf.MapID, b *batchBuf) {
	batchBufs.Lock()
	defer batchBufs.Unlock()
	if batchBufs.m == nil || len(batchBufs.m) >= 64 {
		batchBufs.m = map[ebpf.MapID]*batchBuf{}
	}
	batchBufs.m[id] = b
}

// errNoBatchRead says the map cannot be read in batches here.
var errNoBatchRead = errors.New("no batch lookup")

// closeMap closes the map snap read.
func (snap *mapSnap) closeMap() {
	switch {
	case snap.m != nil:
		snap.m.Close()
	case snap.fd >= 0:
		unix.Close(snap.fd)
	}
	snap.fd = -1
}

// readAll reads every entry of snap's map (see readEntries).
func (snap *mapSnap) readAll() (map[string][]byte, error) {
	out, err := snap.readBatched()
	if !errors.Is(err, errNoBatchRead) {
		return out, err
	}
	if snap.m == nil {
		m, err := ebpf.NewMapFromID(snap.id)
		if err != nil {
			return nil, err
		}
		snap.m = m
		unix.Close(snap.fd)
		snap.fd = m.FD()
	}
	return readEntries(snap.m, math.MaxInt)
}

// readBatched reads the map with BPF_MAP_LOOKUP_BATCH into id's buffers.
func (snap *mapSnap) readBatched() (map[string][]byte, error) {
	if snap.fd < 0 || snap.keySize == 0 {
		return nil, errNoBatchRead
	}
	stride := snap.valueSize // what the kernel copies out per entry
	if snap.ncpu > 1 {
		stride = ((snap.valueSize + 7) &^ 7) * snap.ncpu
	}
	b := takeBatchBuf(snap.id)
	defer putBatchBuf(snap.id, b)
	if b.batch == 0 {
		b.batch = 256
		if snap.d != nil && snap.d.MaxEntries > 0 && snap.d.MaxEntries < 256 {
			b.batch = int(snap.d.MaxEntries)
		}
	}
	tok := max(snap.keySize, 8)
	if len(b.in) < tok {
		b.in, b.out = make([]byte, tok), make([]byte, tok)
	}
	out := map[string][]byte{}
	size := snap.valueSize * snap.ncpu
	pad := (snap.valueSize + 7) &^ 7
	started := false
	for {
		if len(b.keys) < b.batch*snap.keySize || len(b.values) < b.batch*stride {
			b.keys, b.values = make([]byte, b.batch*snap.keySize), make([]byte, b.batch*stride)
		}
		attr := batchAttr{
			outBatch: uint64(uintptr(unsafe.Pointer(&b.out[0]))),
			keys:     uint64(uintptr(unsafe.Pointer(&b.keys[0]))),
			values:   uint64(uintptr(unsafe.Pointer(&b.values[0]))),
			count:    uint32(b.batch),
			mapFD:    uint32(snap.fd),
		}
		if started {
			attr.inBatch = uint64(uintptr(unsafe.Pointer(&b.in[0])))
		}
		_, _, errno := unix.Syscall(unix.SYS_BPF, bpfMapLookupBatch, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(b)
		done := errno == unix.ENOENT
		switch {
		case errno == 0 || done:
		case errno == unix.ENOSPC && attr.count == 0 && b.batch < maxDumpBatchRead:
			b.batch *= 4 // a hash bucket holds more entries than the batch
			continue
		case !started && (errno == unix.EINVAL || errno == unix.Errno(524) /* ENOTSUPP */ || errno == unix.EOPNOTSUPP):
			return nil, errNoBatchRead
		default:
			return nil, fmt.Errorf("read entries: %w", errno)
		}
		started = true
		c := int(attr.count)
		// Copied out now, the values in one allocation: the buffers are
		// reused by the next call and the next run.
		vals := make([]byte, c*size)
		for j := range c {
			v := vals[j*size : (j+1)*size : (j+1)*size]
			if snap.ncpu > 1 {
				for cpu := range snap.ncpu {
					copy(v[cpu*snap.valueSize:(cpu+1)*snap.valueSize], b.values[j*stride+cpu*pad:])
				}
			} else {
				copy(v, b.values[j*stride:(j+1)*stride])
			}
			out[string(b.keys[j*snap.keySize:(j+1)*snap.keySize])] = v
		}
		copy(b.in, b.out)
		if done || (snap.d != nil && snap.d.MaxEntries > 0 && len(out) >= int(snap.d.MaxEntries)) {
			return out, nil
		}
		if c == b.batch && b.batch < 4096 {
			b.batch *= 4
		}
	}
}

// maxDumpBatchRead bounds the batch of a hash map whose bucket holds more
// entries than a batch.
const maxDumpBatchRead = 1 << 20
