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
	case snap.fd >= 0 && !snap.held:
		unix.Close(snap.fd)
	}
	snap.fd, snap.held = -1, false
}

// readAll reads every entry of snap's map (see readEntries).
func (snap *mapSnap) readAll() (map[string][]byte, error) {
	raw, err := snap.readPacked()
	if err == nil {
		return snap.unpack(raw), nil
	}
	if !errors.Is(err, errNoBatchRead) {
		return nil, err
	}
	if snap.m == nil {
		m, err := ebpf.NewMapFromID(snap.id)
		if err != nil {
			return nil, err
		}
		snap.m = m
		if !snap.held {
			unix.Close(snap.fd)
		}
		snap.fd, snap.held = m.FD(), false
	}
	return readEntries(snap.m, math.MaxInt)
}

// entrySize is the size of one entry in a packed reading: the key, then
// the value of every CPU (valueSize each).
func (snap *mapSnap) entrySize() int {
	return snap.keySize + snap.valueSize*snap.ncpu
}

// unpack turns a packed reading (readPacked) into key -> value; the values
// share raw's memory.
func (snap *mapSnap) unpack(raw []byte) map[string][]byte {
	es := snap.entrySize()
	if es == 0 {
		return map[string][]byte{}
	}
	out := make(map[string][]byte, len(raw)/es)
	for off := 0; off+es <= len(raw); off += es {
		out[string(raw[off:off+snap.keySize])] = raw[off+snap.keySize : off+es : off+es]
	}
	return out
}

// readPacked reads the map with BPF_MAP_LOOKUP_BATCH into id's buffers and
// returns its entries packed in one allocation, in the kernel's order
// (entrySize bytes each): two readings of a map that did not change are
// then the same bytes, compared without making a Go map of either.
func (snap *mapSnap) readPacked() ([]byte, error) {
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
	var out []byte
	es := snap.entrySize()
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
		// Copied out now: the buffers are reused by the next call and
		// the next run.
		if out == nil {
			out = make([]byte, 0, c*es)
		}
		for j := range c {
			out = append(out, b.keys[j*snap.keySize:(j+1)*snap.keySize]...)
			if snap.ncpu > 1 {
				for cpu := range snap.ncpu {
					out = append(out, b.values[j*stride+cpu*pad:j*stride+cpu*pad+snap.valueSize]...)
				}
			} else {
				out = append(out, b.values[j*stride:(j+1)*stride]...)
			}
		}
		copy(b.in, b.out)
		if done || (snap.d != nil && snap.d.MaxEntries > 0 && len(out) >= int(snap.d.MaxEntries)*es) {
			if out == nil {
				out = []byte{}
			}
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
