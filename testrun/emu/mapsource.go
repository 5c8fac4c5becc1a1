// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// mapSource is where a map view reads what the session has not written:
// a kernel map, or a map that exists only in the session (built from the
// object's spec).
type mapSource interface {
	// lookup returns key's value (every CPU's, packed at the value size,
	// for per-CPU maps) and whether the key exists.
	lookup(key []byte) ([]byte, bool, error)
	// keys returns the keys in the kernel's iteration order (the order
	// bpf_for_each_map_elem visits them), at most limit.
	keys(limit int) ([][]byte, error)
	// queue returns a queue's or stack's values, oldest first.
	queue() ([][]byte, error)
	// ring returns a ring buffer's consumer and producer positions.
	ring() (cons, prod uint64, err error)
	// describe says where the map lives, for messages.
	describe() string
}

// kernelSource reads a kernel map. It never writes it: every change the
// program makes stays in the view (see mapView), except that reading a
// queue or stack, which the kernel offers no other way to do, pops its
// values and pushes them back (see queue).
type kernelSource struct {
	m       *ebpf.Map
	name    string
	noDrain bool
	walkMax int // when set, bounds keys' limit
}

func (k *kernelSource) describe() string { return fmt.Sprintf("kernel map %s", k.name) }

func (k *kernelSource) lookup(key []byte) ([]byte, bool, error) {
	v, err := bpf.LookupElem(k.m, key)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read map %s: %w", k.name, err)
	}
	return v, true, nil
}

func (k *kernelSource) keys(limit int) ([][]byte, error) {
	// Key by key: BPF_MAP_GET_NEXT_KEY walks the hash table bucket by
	// bucket and each bucket's list in order, as bpf_for_each_map_elem
	// does, so the order is the program's. (bpf.ReadMapChunks splits
	// large maps between parallel readers, which loses the order.)
	if k.walkMax > 0 && limit > k.walkMax {
		limit = k.walkMax
	}
	var out [][]byte
	var cur []byte
	next := make([]byte, k.m.KeySize())
	for {
		var err error
		if cur == nil {
			err = k.m.NextKey(nil, next)
		} else {
			err = k.m.NextKey(cur, next)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list the keys of map %s: %w", k.name, err)
		}
		if len(out) >= limit {
			return nil, fmt.Errorf("map %s holds more than %d entries; the emulator does not iterate maps that large", k.name, limit)
		}
		cur = bytes.Clone(next)
		out = append(out, cur)
	}
}

var errTooMany = errors.New("too many entries")

// queue reads a queue or stack. The kernel has no way to read one
// without consuming it, so its values are popped and pushed back in the
// same order at once; unless the session was told not to (noDrain), in
// which case only the value at the head is known.
func (k *kernelSource) queue() ([][]byte, error) {
	if k.noDrain {
		v, err := bpf.PeekElem(k.m)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peek map %s: %w", k.name, err)
		}
		return nil, &partialQueueError{head: v}
	}
	var popped [][]byte
	for {
		v, err := bpf.PopElem(k.m)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			k.pushBack(popped)
			return nil, fmt.Errorf("read map %s: %w", k.name, err)
		}
		popped = append(popped, v)
	}
	if err := k.pushBack(popped); err != nil {
		return nil, err
	}
	if k.m.Type() == ebpf.Stack {
		// Popped newest first; the view keeps the oldest first.
		for i, j := 0, len(popped)-1; i < j; i, j = i+1, j-1 {
			popped[i], popped[j] = popped[j], popped[i]
		}
	}
	return popped, nil
}

// pushBack restores what queue popped.
func (k *kernelSource) pushBack(popped [][]byte) error {
	order := popped
	if k.m.Type() == ebpf.Stack {
		order = make([][]byte, len(popped))
		for i, v := range popped {
			order[len(popped)-1-i] = v
		}
	}
	for _, v := range order {
		if err := bpf.PushElem(k.m, v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("map %s: push back the values read from it: %w (its contents may have changed)", k.name, err)
		}
	}
	return nil
}

type partialQueueError struct{ head []byte }

func (e *partialQueueError) Error() string {
	return "only the head of the queue is known (reading more would pop it)"
}

func (k *kernelSource) ring() (uint64, uint64, error) {
	st, err := bpf.PeekRingBuf(k.m, 0, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("read ring buffer %s: %w", k.name, err)
	}
	return st.ConsumerPos, st.ProducerPos, nil
}

// specSource is a map that exists only in the session: empty, or holding
// what the object's spec says (global data sections, initialized arrays).
type specSource struct {
	spec *ebpf.MapSpec
	ncpu int
	data map[string][]byte
	// order keeps insertion order as the iteration order.
	order [][]byte
}

func newSpecSource(spec *ebpf.MapSpec, ncpu int) (*specSource, error) {
	s := &specSource{spec: spec, ncpu: ncpu, data: map[string][]byte{}}
	for _, kv := range spec.Contents {
		k, err := marshalPlain(kv.Key, int(spec.KeySize))
		if err != nil {
			return nil, fmt.Errorf("map %s: key: %w", spec.Name, err)
		}
		v, err := marshalPlain(kv.Value, int(spec.ValueSize))
		if err != nil {
			// Program arrays and maps of maps hold names; the emulator
			// resolves those itself.
			continue
		}
		if isPerCPU(spec.Type) {
			v = bytes.Repeat(v, ncpu)
		}
		s.data[string(k)] = v
		s.order = append(s.order, k)
	}
	return s, nil
}

func marshalPlain(v any, size int) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		if len(x) != size {
			return nil, fmt.Errorf("%d bytes, want %d", len(x), size)
		}
		return x, nil
	case nil:
		return nil, errors.New("no value")
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, v); err != nil {
		return nil, err
	}
	if buf.Len() != size {
		return nil, fmt.Errorf("%d bytes, want %d", buf.Len(), size)
	}
	return buf.Bytes(), nil
}

func (s *specSource) describe() string {
	return fmt.Sprintf("map %s (only in this session)", s.spec.Name)
}

func (s *specSource) lookup(key []byte) ([]byte, bool, error) {
	if v, ok := s.data[string(key)]; ok {
		return bytes.Clone(v), true, nil
	}
	if isArray(s.spec.Type) {
		idx := binary.LittleEndian.Uint32(key)
		if idx < s.spec.MaxEntries {
			n := int(s.spec.ValueSize)
			if isPerCPU(s.spec.Type) {
				n *= s.ncpu
			}
			return make([]byte, n), true, nil
		}
	}
	return nil, false, nil
}

func (s *specSource) keys(limit int) ([][]byte, error) {
	if isArray(s.spec.Type) {
		var out [][]byte
		for i := range min(int(s.spec.MaxEntries), limit+1) {
			out = append(out, binary.LittleEndian.AppendUint32(nil, uint32(i)))
		}
		return out, nil
	}
	return s.order, nil
}

func (s *specSource) queue() ([][]byte, error)      { return nil, nil }
func (s *specSource) ring() (uint64, uint64, error) { return 0, 0, nil }

func isPerCPU(t ebpf.MapType) bool {
	return t == ebpf.PerCPUHash || t == ebpf.PerCPUArray || t == ebpf.LRUCPUHash
}

func isArray(t ebpf.MapType) bool {
	return t == ebpf.Array || t == ebpf.PerCPUArray
}

func isHash(t ebpf.MapType) bool {
	return t == ebpf.Hash || t == ebpf.PerCPUHash || t == ebpf.LRUHash || t == ebpf.LRUCPUHash
}

// cachedSource remembers every answer of its source, so that a session
// replayed from the start (after its journal was trimmed) reads exactly
// what it read the first time, whatever the kernel map holds now.
type cachedSource struct {
	src     mapSource
	vals    map[string]cachedVal
	keyList [][]byte
	keysOK  bool
	q       [][]byte
	qErr    error
	qOK     bool
	cons    uint64
	prod    uint64
	ringOK  bool
}

type cachedVal struct {
	val []byte
	ok  bool
}

func newCachedSource(src mapSource) *cachedSource {
	return &cachedSource{src: src, vals: map[string]cachedVal{}}
}

func (c *cachedSource) describe() string { return c.src.describe() }

func (c *cachedSource) lookup(key []byte) ([]byte, bool, error) {
	if v, ok := c.vals[string(key)]; ok {
		return bytes.Clone(v.val), v.ok, nil
	}
	val, ok, err := c.src.lookup(key)
	if err != nil {
		return nil, false, err
	}
	c.vals[string(key)] = cachedVal{val: bytes.Clone(val), ok: ok}
	return val, ok, nil
}

func (c *cachedSource) keys(limit int) ([][]byte, error) {
	if !c.keysOK {
		k, err := c.src.keys(limit)
		if err != nil {
			return nil, err
		}
		c.keyList, c.keysOK = k, true
	}
	return c.keyList, nil
}

func (c *cachedSource) queue() ([][]byte, error) {
	if !c.qOK {
		c.q, c.qErr = c.src.queue()
		c.qOK = true
	}
	out := make([][]byte, len(c.q))
	copy(out, c.q)
	return out, c.qErr
}

func (c *cachedSource) ring() (uint64, uint64, error) {
	if !c.ringOK {
		cons, prod, err := c.src.ring()
		if err != nil {
			return 0, 0, err
		}
		c.cons, c.prod, c.ringOK = cons, prod, true
	}
	return c.cons, c.prod, nil
}
