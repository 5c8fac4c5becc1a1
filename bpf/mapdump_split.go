// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Reading a large hash map is bound by memory latency in the kernel (a
// cache miss or two per bucket and per element): a million entries take
// about 0.2 s in one BPF_MAP_LOOKUP_BATCH stream however large the batches.
// The batch cursor of a hash map is a bucket index, so several readers can
// each start at their own share of the buckets and run side by side.
//
// cilium/ebpf's MapBatchCursor is opaque and always starts at bucket 0, so
// these readers issue BPF_MAP_LOOKUP_BATCH themselves.

// splitMinEntries is the smallest map worth reading in parallel.
const splitMinEntries = 1 << 16

// maxSplit bounds the readers; beyond a few, memory bandwidth is the limit.
const maxSplit = 4

// splitReaders says how many readers to use on m (1: do not split).
func splitReaders(m *ebpf.Map) int {
	switch m.Type() {
	case ebpf.Hash, ebpf.LRUHash:
	default:
		return 1
	}
	if m.MaxEntries() < splitMinEntries {
		return 1
	}
	return min(runtime.NumCPU(), maxSplit)
}

// hashBuckets is the kernel's bucket count for a hash map: max_entries
// rounded up to a power of two (kernel/bpf/hashtab.c). If a kernel ever
// sized it otherwise, the split would only be uneven, not wrong: every
// reader runs on until it passes its end, and the last one to the end.
func hashBuckets(maxEntries uint32) uint32 {
	if maxEntries <= 1 {
		return 1
	}
	return 1 << bits.Len32(maxEntries-1)
}

// batchAttr is the BPF_MAP_*_BATCH part of union bpf_attr.
type batchAttr struct {
	InBatch   uint64
	OutBatch  uint64
	Keys      uint64
	Values    uint64
	Count     uint32
	MapFD     uint32
	ElemFlags uint64
	Flags     uint64
}

// lookupBatch reads up to len(keys)/keySize entries starting at bucket
// *cursor, and moves *cursor to the next bucket to read. At the end of
// the map it returns the last entries with unix.ENOENT.
func lookupBatch(fd int, cursor *uint32, keys, values []byte, count int) (int, error) {
	in, out := *cursor, uint32(0)
	attr := batchAttr{
		InBatch:  uint64(uintptr(unsafe.Pointer(&in))),
		OutBatch: uint64(uintptr(unsafe.Pointer(&out))),
		Keys:     uint64(uintptr(unsafe.Pointer(&keys[0]))),
		Values:   uint64(uintptr(unsafe.Pointer(&values[0]))),
		Count:    uint32(count),
		MapFD:    uint32(fd),
	}
	_, err := Syscall(unix.BPF_MAP_LOOKUP_BATCH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(keys)
	runtime.KeepAlive(values)
	runtime.KeepAlive(&in)
	runtime.KeepAlive(&out)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return 0, err
	}
	*cursor = out
	return int(attr.Count), err
}

// readSplit reads a hash map with p readers, reader i starting at bucket
// i*buckets/p. Reader i stops after the batch that takes it past reader
// i+1's start; that last batch may hold entries of buckets that reader i+1
// also reads. Both see those buckets in the same order, so the overlap is
// exactly the tail of reader i's last batch from reader i+1's first key
// on, which reader i drops. (Entries added or removed meanwhile may be
// missed or seen twice near a boundary, as they may be in any dump that
// does not stop the world.)
func (r *chunkReader) readSplit(p int) error {
	buckets := uint64(hashBuckets(r.m.MaxEntries()))
	starts := make([]uint32, p+1)
	for i := range starts {
		starts[i] = uint32(uint64(i) * buckets / uint64(p))
	}
	first := make([]splitFirst, p+1)
	for i := range first {
		first[i].ready = make(chan struct{})
	}
	close(first[p].ready) // nothing follows the last reader
	errs := make([]error, p)
	var wg sync.WaitGroup
	for i := range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.readSegment(starts[i], starts[i+1], i == p-1, &first[i], &first[i+1])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, errStopped) {
			return err
		}
	}
	return errors.Join(errs...)
}

// splitFirst is a reader's first key, published for the reader before it.
type splitFirst struct {
	once  sync.Once
	ready chan struct{}
	key   []byte // nil: the reader found no entries
}

func (f *splitFirst) publish(key []byte) {
	f.once.Do(func() {
		if key != nil {
			f.key = append([]byte(nil), key...)
		}
		close(f.ready)
	})
}

func (r *chunkReader) readSegment(start, end uint32, last bool, mine, next *splitFirst) error {
	defer mine.publish(nil) // on any early return, never leave the previous reader waiting
	batch := dumpBatch      // a split map is a large one
	cursor := start
	for {
		c, err := r.get(batch)
		if err != nil {
			return err
		}
		n, err := lookupBatch(r.m.FD(), &cursor, c.Keys, c.Values, batch)
		done := errors.Is(err, unix.ENOENT)
		switch {
		case err == nil || done:
		case growBatch(err, n, &batch):
			r.free <- c
			continue
		default:
			r.free <- c
			return fmt.Errorf("read entries: %w", explainMapErr(err))
		}
		if n > 0 {
			mine.publish(c.Key(0))
		}
		c.N = n
		if !last && (done || cursor > end) {
			// This batch ran into the next reader's buckets.
			<-next.ready
			if next.key != nil {
				for i := range c.N {
					if bytes.Equal(c.Key(i), next.key) {
						c.N = i
						break
					}
				}
			}
			done = true
		} else if !last && cursor == end {
			done = true
		}
		if err := r.hand(c); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
