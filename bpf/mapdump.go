// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// MapChunk is a run of consecutive entries read from a map, packed as the
// kernel lays them out: key i is Keys[i*KeySize:(i+1)*KeySize]. Values are
// packed at ValueSize; a per-CPU map has CPUs values per entry, so the
// value of entry i on CPU c starts at (i*CPUs+c)*ValueSize.
type MapChunk struct {
	N                  int
	Keys, Values       []byte
	KeySize, ValueSize int
	CPUs               int // 1 unless per-CPU
}

// Key returns the i-th key of the chunk.
func (c *MapChunk) Key(i int) []byte { return c.Keys[i*c.KeySize : (i+1)*c.KeySize] }

// Value returns the i-th entry's value on cpu (0 unless per-CPU).
func (c *MapChunk) Value(i, cpu int) []byte {
	off := (i*c.CPUs + cpu) * c.ValueSize
	return c.Values[off : off+c.ValueSize]
}

// dumpBatch is how many entries one BPF_MAP_LOOKUP_BATCH asks for: large
// enough that a million entries take a few hundred system calls, small
// enough that the buffers stay a few hundred KiB whatever the map's size.
const dumpBatch = 4096

// firstBatch is how many entries the first batch of a map read in one
// stream asks for. Batches grow from there to dumpBatch while they come
// back full, so that a map holding few entries, whatever its max_entries,
// costs little to read (a test run's map diff reads every map of the
// program twice), and a large one reaches full batches within a few calls.
const firstBatch = 256

// smallMap says whether m cannot hold more than a chunk or two: it is read
// in the calling goroutine.
func smallMap(m *ebpf.Map) bool {
	return m.MaxEntries() > 0 && m.MaxEntries() < dumpBatch
}

// firstBatch is firstBatch, or less for a map that cannot hold so many.
func (r *chunkReader) firstBatch() int {
	if n := int(r.m.MaxEntries()); n > 0 && n < firstBatch {
		return n
	}
	return firstBatch
}

// nextBatch is the size of the batch after one of size batch that came
// back with n entries.
func nextBatch(batch, n int) int {
	if n == batch && batch < dumpBatch {
		return min(batch*4, dumpBatch)
	}
	return batch
}

// maxDumpBatch bounds the retries of a hash map whose bucket holds more
// entries than a batch (the kernel says ENOSPC).
const maxDumpBatch = 1 << 20

// ReadMapChunks reads every entry of m and calls fn once per chunk, in
// the kernel's order. A chunk's buffers are reused once fn returns, so fn
// must copy what it keeps. Memory stays flat however large the map.
//
// It reads with BPF_MAP_LOOKUP_BATCH (one system call per chunk) and falls
// back to BPF_MAP_GET_NEXT_KEY + BPF_MAP_LOOKUP_ELEM for map types the
// kernel has no batch operation for. Entries added or removed while it
// reads may or may not be seen, as with bpftool.
//
// A large map is read in a goroutine of its own, a few chunks ahead of fn:
// the kernel's share of a dump (walking a million hash buckets) and fn's
// (formatting and writing them) then overlap instead of adding up. A map
// that cannot hold dumpBatch entries is read in the calling goroutine.
func ReadMapChunks(m *ebpf.Map, fn func(*MapChunk) error) error {
	return readMapChunks(m, splitReaders(m), nil, func(it chunkItem) error { return fn(it.c) })
}

// ReadMapChunksInline is ReadMapChunks in the calling goroutine whatever
// the map's size: for callers that read maps holding few entries often (a
// test run's map diff reads each map of the program twice a run), where
// handing chunks between goroutines costs more than the overlap saves.
func ReadMapChunksInline(m *ebpf.Map, fn func(*MapChunk) error) error {
	return readMapChunks(m, 0, nil, func(it chunkItem) error { return fn(it.c) })
}

// ReadMapPrepared is ReadMapChunks with the work on each chunk split in
// two: prepare runs in the reading goroutines as soon as a chunk is read
// (in parallel when a large hash map is read by several), and must keep
// nothing of the chunk; fn then gets what prepare made, one at a time, in
// the calling goroutine. Turning entries into text belongs in prepare,
// writing it out in fn. Chunks of parallel readers interleave, so the
// order of entries is the kernel's only within a chunk.
func ReadMapPrepared[T any](m *ebpf.Map, prepare func(*MapChunk) T, fn func(T) error) error {
	return readMapChunks(m, splitReaders(m),
		func(c *MapChunk) any { return prepare(c) },
		func(it chunkItem) error { return fn(it.v.(T)) })
}

// chunkItem is what readers hand over: a chunk, or what prepare made of one.
type chunkItem struct {
	c *MapChunk
	v any
}

// readMapChunks runs readers parallel readers (hash maps only; 1 for
// every other kind; 0 reads in the calling goroutine) and fn on what they
// hand over.
func readMapChunks(m *ebpf.Map, readers int, prepare func(*MapChunk) any, fn func(chunkItem) error) error {
	cpus := 1
	if IsPerCPU(m.Type()) {
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return fmt.Errorf("count possible CPUs: %w", err)
		}
		cpus = n
	}
	if m.KeySize() == 0 {
		return fmt.Errorf("%s maps have no keys to iterate", MapTypeName(uint32(m.Type())))
	}
	newChunk := func() *MapChunk {
		return &MapChunk{KeySize: int(m.KeySize()), ValueSize: int(m.ValueSize()), CPUs: cpus}
	}
	r := &chunkReader{m: m, prepare: prepare}
	if readers == 0 || (readers == 1 && smallMap(m)) {
		// A small map is read in a chunk or two: a reading goroutine
		// would cost more than the overlap saves.
		r.direct = fn
		r.free = make(chan *MapChunk, 1)
		r.free <- newChunk()
		return r.read()
	}
	// Chunks in flight: one being filled per reader, one with fn, and
	// spares so that readers run ahead. A split reader waiting for the next
	// one's first key holds its chunk, so readers+1 is the least that
	// cannot deadlock.
	inFlight := 2*readers + 1
	r.free = make(chan *MapChunk, inFlight)
	for range inFlight {
		r.free <- newChunk()
	}
	full := make(chan chunkItem)
	stop := make(chan struct{})
	r.full, r.stop = full, stop
	done := make(chan error, 1)
	go func() {
		defer close(full)
		if readers > 1 {
			done <- r.readSplit(readers)
			return
		}
		done <- r.read()
	}()
	var ferr error
	for it := range full {
		if ferr == nil {
			if ferr = fn(it); ferr != nil {
				close(stop) // the readers stop at their next chunk
			}
		}
		if it.c != nil {
			r.free <- it.c
		}
	}
	if rerr := <-done; ferr == nil && !errors.Is(rerr, errStopped) {
		return rerr
	}
	return ferr
}

// errNoBatch says the kernel has no batch lookup for this map type.
var errNoBatch = errors.New("no batch lookup")

// errStopped says the consumer of chunks gave up (its fn failed).
var errStopped = errors.New("stopped")

// chunkReader fills chunks from free and hands them over on full.
type chunkReader struct {
	m       *ebpf.Map
	free    chan *MapChunk
	full    chan chunkItem
	stop    chan struct{}
	prepare func(*MapChunk) any // nil: hand over the chunk itself
	// direct, when set, takes what the reader hands over in the reader's
	// own goroutine (there is then no other, and full and stop are nil).
	direct func(chunkItem) error
}

// read reads the whole map with one reader: in batches where the kernel
// can, key by key where it cannot.
func (r *chunkReader) read() error {
	err := r.readBatches()
	if errors.Is(err, errNoBatch) {
		err = r.readByKeys()
	}
	return err
}

// get takes an empty chunk with room for n entries.
func (r *chunkReader) get(n int) (*MapChunk, error) {
	select {
	case c := <-r.free:
		if len(c.Keys) != n*c.KeySize {
			c.Keys = make([]byte, n*c.KeySize)
			c.Values = make([]byte, n*c.CPUs*c.ValueSize)
		}
		c.N = 0
		return c, nil
	case <-r.stop:
		return nil, errStopped
	}
}

// put hands a filled chunk, or what prepare makes of it, to the consumer.
func (r *chunkReader) put(c *MapChunk) error {
	it := chunkItem{c: c}
	if r.prepare != nil {
		it = chunkItem{v: r.prepare(c)}
		r.free <- c // prepare kept nothing of it
	}
	if r.direct != nil {
		err := r.direct(it)
		if it.c != nil {
			r.free <- it.c
		}
		return err
	}
	select {
	case r.full <- it:
		return nil
	case <-r.stop:
		return errStopped
	}
}

// hand passes c on when it holds entries, and frees it when not.
func (r *chunkReader) hand(c *MapChunk) error {
	if c.N > 0 {
		return r.put(c)
	}
	r.free <- c
	return nil
}

// growBatch says whether err is the kernel asking for a larger batch: a
// hash bucket holds more entries than the batch had room for. It then
// makes *batch larger; the caller retries at the same position (the cursor
// did not move).
func growBatch(err error, n int, batch *int) bool {
	if errors.Is(err, unix.ENOSPC) && *batch < maxDumpBatch && n == 0 {
		*batch *= 4
		return true
	}
	return false
}

// byteRows returns a slice of n elements of size bytes each (as [size]byte
// arrays) that shares memory with buf. cilium/ebpf's batch calls count
// entries by slice length, so keys of any size need an element type of
// exactly that size; sharing buf means the kernel writes straight into it.
func byteRows(buf []byte, n, size int) any {
	elem := reflect.ArrayOf(size, reflect.TypeFor[byte]())
	return reflect.NewAt(reflect.ArrayOf(n, elem), unsafe.Pointer(&buf[0])).Elem().Slice(0, n).Interface()
}

func (r *chunkReader) readBatches() error {
	batch := r.firstBatch()
	var cursor ebpf.MapBatchCursor
	started := false
	total := 0
	for {
		c, err := r.get(batch)
		if err != nil {
			return err
		}
		keys := byteRows(c.Keys, batch, c.KeySize)
		values := byteRows(c.Values, batch*c.CPUs, c.ValueSize)
		n, err := r.m.BatchLookup(&cursor, keys, values, nil)
		// The last chunk comes together with ErrKeyNotExist: use the
		// entries first, then stop.
		done := errors.Is(err, ebpf.ErrKeyNotExist)
		switch {
		case err == nil || done:
		case growBatch(err, n, &batch):
			r.free <- c
			continue
		case !started && (errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL)):
			r.free <- c
			return errNoBatch
		default:
			r.free <- c
			return fmt.Errorf("read entries: %w", explainMapErr(err))
		}
		started = true
		c.N = n
		total += n
		if err := r.hand(c); err != nil {
			return err
		}
		batch = nextBatch(batch, n)
		// A map holds at most max_entries: once that many came, the
		// call that would say so (ErrKeyNotExist) can be saved. A test
		// run's map diff reads many small maps twice a run.
		if limit := int(r.m.MaxEntries()); done || (limit > 0 && total >= limit) {
			return nil
		}
	}
}

func (r *chunkReader) readByKeys() error {
	batch := r.firstBatch()
	c, err := r.get(batch)
	if err != nil {
		return err
	}
	stride := c.ValueSize
	if c.CPUs > 1 {
		stride = perCPUStride(c.ValueSize)
	}
	raw := make([]byte, stride*c.CPUs)
	var prev []byte
	for {
		next := make([]byte, c.KeySize)
		var err error
		if prev == nil {
			err = r.m.NextKey(nil, next)
		} else {
			err = r.m.NextKey(prev, next)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("read keys: %w", explainMapErr(err))
		}
		prev = next
		if c.CPUs > 1 {
			// cilium/ebpf wants a slice of typed per-CPU values; the raw
			// bytes (8-byte aligned per CPU) serve any value type.
			var b []byte
			if b, err = r.m.LookupBytes(next); err == nil && b == nil {
				continue // deleted since we saw its key
			}
			copy(raw, b)
		} else if err = r.m.Lookup(next, raw); errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read entry: %w", explainMapErr(err))
		}
		copy(c.Keys[c.N*c.KeySize:], next)
		for cpu := range c.CPUs {
			copy(c.Values[(c.N*c.CPUs+cpu)*c.ValueSize:], raw[cpu*stride:cpu*stride+c.ValueSize])
		}
		c.N++
		if c.N == batch {
			if err := r.put(c); err != nil {
				return err
			}
			batch = nextBatch(batch, c.N)
			if c, err = r.get(batch); err != nil {
				return err
			}
		}
	}
	return r.hand(c)
}

// explainMapErr turns the errno of a map operation into advice where
// there is one to give.
func explainMapErr(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("permission denied; run bpfsh as root (or with CAP_SYS_ADMIN): %w", err)
	}
	return err
}
