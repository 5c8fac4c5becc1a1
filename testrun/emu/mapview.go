// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// mapView is a session's copy-on-write view of one map. Reads go to the
// source (the kernel map) the first time a key is touched and are kept,
// so that every later read, and every replay, sees the same bytes; writes
// stay in the view. At the end, the view's changes are what the session
// did to the map (Changes), and only Commit writes them back.
type mapView struct {
	name       string
	typ        ebpf.MapType
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	flags      uint32
	keyType    btf.Type
	valueType  btf.Type
	id         ebpf.MapID
	src        mapSource
	ncpu       int
	// special are byte ranges of the value holding bpf_spin_lock,
	// bpf_timer and the like: map updates do not copy them and user
	// space reads them as zero.
	special [][2]uint32

	region  int32 // the map's own region (its address), -1 until bound
	entries map[string]*entry
	// order is every key's place in iteration order once the map has
	// been iterated; keys added later go last.
	order []string

	count      int // hash maps: entries, once counted
	countKnown bool
	lruFull    bool // an LRU map had to evict (not emulated)

	q    *queueState
	ring *ringState
}

// entry is one key of a view.
type entry struct {
	key    []byte
	base   []byte // as first read (all CPUs); nil when absent
	baseOK bool
	val    []byte
	ok     bool
	region int32 // the value region of this incarnation, -1: none yet
	keyReg int32 // a key region for for_each callbacks, -1: none yet
}

type queueState struct {
	loaded bool
	base   [][]byte
	vals   [][]byte
	err    error
}

type ringState struct {
	loaded     bool
	cons, prod uint64 // positions when the session started
	cur        uint64 // the producer position now
	recs       []*ringRec
	err        error
}

// ringRec is one record reserved in the session.
type ringRec struct {
	region int32
	pos    uint64
	size   uint32
	state  uint8 // ringReserved, ringSubmitted, ringDiscarded
	data   []byte
}

const (
	ringReserved uint8 = iota
	ringSubmitted
	ringDiscarded
)

// Errno values helpers return (negated).
const (
	errENOENT     = 2
	errE2BIG      = 7
	errEAGAIN     = 11
	errENOMEM     = 12
	errEBUSY      = 16
	errEEXIST     = 17
	errEINVAL     = 22
	errENOSPC     = 28
	errERANGE     = 34
	errEOPNOTSUPP = 95
	errENOTSUPP   = 524
)

func negErr(e int) uint64 { return uint64(-int64(e)) }

// Update flags.
const (
	bpfAny     = 0
	bpfNoExist = 1
	bpfExist   = 2
	bpfFLock   = 4
)

// get returns key's entry, reading it from the source the first time.
func (v *mapView) get(key []byte) (*entry, error) {
	if e, ok := v.entries[string(key)]; ok {
		return e, nil
	}
	val, ok, err := v.src.lookup(key)
	if err != nil {
		return nil, err
	}
	if ok && len(val) != v.fullSize() {
		return nil, fmt.Errorf("map %s: read %d bytes for a value of %d", v.name, len(val), v.fullSize())
	}
	if ok {
		v.zeroSpecial(val)
	}
	e := &entry{key: bytes.Clone(key), base: val, baseOK: ok, ok: ok, region: -1, keyReg: -1}
	if ok {
		e.val = bytes.Clone(val)
	}
	v.entries[string(key)] = e
	return e, nil
}

// fullSize is the size of a value with every CPU's.
func (v *mapView) fullSize() int {
	if isPerCPU(v.typ) {
		return int(v.valueSize) * v.ncpu
	}
	return int(v.valueSize)
}

// zeroSpecial clears what user space never sees of special fields.
func (v *mapView) zeroSpecial(val []byte) {
	for _, s := range v.special {
		for c := 0; c*int(v.valueSize) < len(val); c++ {
			base := c * int(v.valueSize)
			clear(val[base+int(s[0]) : base+int(s[1])])
		}
	}
}

// copyValue copies a value into dst as the kernel's copy_map_value does:
// special fields are left as they are.
func (v *mapView) copyValue(dst, src []byte) {
	if len(v.special) == 0 {
		copy(dst, src)
		return
	}
	at := uint32(0)
	for _, s := range v.special {
		copy(dst[at:s[0]], src[at:s[0]])
		at = s[1]
	}
	copy(dst[at:], src[at:])
}

// setEntry changes an entry, journaled.
func (m *machine) setEntry(v *mapView, e *entry, val []byte, ok bool, region int32) {
	oldVal, oldOK, oldReg := e.val, e.ok, e.region
	if m.j.on {
		m.j.fn(func() { e.val, e.ok, e.region = oldVal, oldOK, oldReg })
	}
	e.val, e.ok, e.region = val, ok, region
	if m.env.watchedMaps[v.name] {
		m.watchTouched = true
	}
}

// adjustCount changes a hash map's entry count, journaled.
func (m *machine) adjustCount(v *mapView, d int) {
	if !v.countKnown {
		return
	}
	if m.j.on {
		m.j.fn(func() { v.count -= d })
	}
	v.count += d
}

// valueRegion returns the address of e's value (this CPU's for per-CPU
// maps), making its region on first use.
func (m *machine) valueRegion(v *mapView, e *entry) uint64 {
	if e.region < 0 || int(e.region) >= len(m.regions) || m.regions[e.region].mp != v || !bytes.Equal(m.regions[e.region].key, e.key) {
		buf := e.val
		cpu := 0
		if isPerCPU(v.typ) {
			cpu = m.env.cpu
			buf = e.val[cpu*int(v.valueSize) : (cpu+1)*int(v.valueSize)]
		}
		r := &region{kind: RegionMapValue, buf: buf, hi: v.valueSize, mp: v, key: e.key, cpu: cpu, typ: v.valueType, name: v.name}
		m.env.applyWatches(r)
		id := m.newRegion(r)
		old := e.region
		if m.j.on {
			m.j.fn(func() { e.region = old })
		}
		e.region = id
	}
	return regionAddr(e.region, 0)
}

// keyRegion returns the address of a read-only copy of e's key, for
// for_each callbacks.
func (m *machine) keyRegion(v *mapView, e *entry) uint64 {
	if e.keyReg < 0 || int(e.keyReg) >= len(m.regions) || m.regions[e.keyReg].mp != v {
		r := &region{kind: RegionMapKey, buf: e.key, hi: v.keySize, ro: true, mp: v, key: e.key, typ: v.keyType, name: v.name}
		id := m.newRegion(r)
		old := e.keyReg
		if m.j.on {
			m.j.fn(func() { e.keyReg = old })
		}
		e.keyReg = id
	}
	return regionAddr(e.keyReg, 0)
}

// lookup is bpf_map_lookup_elem on the view: the value's address or 0.
func (m *machine) mapLookup(v *mapView, key []byte) (uint64, error) {
	switch {
	case isArray(v.typ) || isHash(v.typ):
	case v.typ == ebpf.SockMap || v.typ == ebpf.SockHash:
		return m.sockLookup(v, key)
	default:
		return 0, fmt.Errorf("bpf_map_lookup_elem on a %s map is not emulated", mapTypeName(v.typ))
	}
	if isArray(v.typ) && binary.LittleEndian.Uint32(key) >= v.maxEntries {
		return 0, nil
	}
	e, err := v.get(key)
	if err != nil {
		return 0, err
	}
	if !e.ok {
		return 0, nil
	}
	return m.valueRegion(v, e), nil
}

// mapUpdate is bpf_map_update_elem: 0 or a negative errno.
func (m *machine) mapUpdate(v *mapView, key, val []byte, flags uint64) (uint64, error) {
	if flags&^uint64(bpfNoExist|bpfExist|bpfFLock) != 0 || flags&3 == 3 {
		return negErr(errEINVAL), nil
	}
	switch {
	case isArray(v.typ):
		if binary.LittleEndian.Uint32(key) >= v.maxEntries {
			return negErr(errE2BIG), nil
		}
		if flags&3 == bpfNoExist {
			return negErr(errEEXIST), nil
		}
		e, err := v.get(key)
		if err != nil {
			return 0, err
		}
		// Arrays update in place: pointers to the value see it.
		m.writeValue(v, e, val)
		return 0, nil
	case isHash(v.typ):
	default:
		return 0, fmt.Errorf("bpf_map_update_elem on a %s map is not emulated", mapTypeName(v.typ))
	}
	e, err := v.get(key)
	if err != nil {
		return 0, err
	}
	switch {
	case e.ok && flags&3 == bpfNoExist:
		return negErr(errEEXIST), nil
	case !e.ok && flags&3 == bpfExist:
		return negErr(errENOENT), nil
	}
	if e.ok {
		if isPerCPU(v.typ) {
			// Per-CPU hashes update this CPU's value in place.
			m.writeValue(v, e, val)
			return 0, nil
		}
		// A hash update makes a new element and frees the old: a
		// pointer to the old value does not see the new one.
		nv := bytes.Clone(e.val)
		v.copyValue(nv, val)
		m.setEntry(v, e, nv, true, -1)
		m.env.touchMap(v)
		return 0, nil
	}
	if err := m.ensureCount(v); err != nil {
		return 0, err
	}
	if v.count >= int(v.maxEntries) {
		if v.typ == ebpf.LRUHash || v.typ == ebpf.LRUCPUHash {
			// The kernel evicts entries it picks from its LRU lists,
			// which the emulator cannot know: it evicts nothing, and
			// the run is not comparable with the kernel's.
			v.lruFull = true
			m.env.noteIncomparable(fmt.Sprintf("LRU map %s was full: the kernel evicts an entry the emulator cannot predict", v.name))
		} else {
			return negErr(errE2BIG), nil
		}
	}
	nv := make([]byte, v.fullSize())
	if isPerCPU(v.typ) {
		cpu := m.env.cpu
		v.copyValue(nv[cpu*int(v.valueSize):(cpu+1)*int(v.valueSize)], val)
	} else {
		v.copyValue(nv, val)
	}
	m.setEntry(v, e, nv, true, -1)
	m.adjustCount(v, 1)
	m.env.touchMap(v)
	return 0, nil
}

// writeValue copies val into e's value (this CPU's, for per-CPU maps),
// through the value's region so that watchpoints and the journal see it.
func (m *machine) writeValue(v *mapView, e *entry, val []byte) {
	addr := m.valueRegion(v, e)
	r := m.regions[(addr>>idShift)&idMask]
	nv := bytes.Clone(r.buf)
	v.copyValue(nv, val)
	m.writeRegion(r, 0, nv)
	m.env.touchMap(v)
}

// mapDelete is bpf_map_delete_elem.
func (m *machine) mapDelete(v *mapView, key []byte) (uint64, error) {
	switch {
	case isArray(v.typ):
		return negErr(errEINVAL), nil
	case isHash(v.typ):
	default:
		return 0, fmt.Errorf("bpf_map_delete_elem on a %s map is not emulated", mapTypeName(v.typ))
	}
	e, err := v.get(key)
	if err != nil {
		return 0, err
	}
	if !e.ok {
		return negErr(errENOENT), nil
	}
	if err := m.ensureCount(v); err != nil {
		return 0, err
	}
	m.setEntry(v, e, nil, false, -1)
	m.adjustCount(v, -1)
	m.env.touchMap(v)
	return 0, nil
}

// ensureCount counts a hash map's entries the first time it matters
// (an insert that might find the map full).
func (m *machine) ensureCount(v *mapView) error {
	if v.countKnown {
		return nil
	}
	keys, err := v.src.keys(int(v.maxEntries) + 1)
	if err != nil {
		return err
	}
	n := len(keys)
	seen := map[string]bool{}
	for _, k := range keys {
		seen[string(k)] = true
	}
	// Keys the session already changed count as they are now.
	for k, e := range v.entries {
		switch {
		case seen[k] && !e.ok:
			n--
		case !seen[k] && e.ok:
			n++
		}
	}
	v.count, v.countKnown = n, true
	return nil
}

// iterKeys returns the keys a for_each walk visits, in the kernel's order
// as far as it is known: the source's order, then keys the session added.
func (m *machine) iterKeys(v *mapView) ([][]byte, error) {
	if isArray(v.typ) {
		out := make([][]byte, v.maxEntries)
		for i := range out {
			out[i] = binary.LittleEndian.AppendUint32(nil, uint32(i))
		}
		return out, nil
	}
	if v.order == nil {
		keys, err := v.src.keys(maxIterKeys)
		if err != nil {
			return nil, err
		}
		v.order = make([]string, 0, len(keys))
		for _, k := range keys {
			v.order = append(v.order, string(k))
		}
	}
	var out [][]byte
	seen := map[string]bool{}
	for _, k := range v.order {
		seen[k] = true
		e, err := v.get([]byte(k))
		if err != nil {
			return nil, err
		}
		if e.ok {
			out = append(out, e.key)
		}
	}
	var added []string
	for k, e := range v.entries {
		if !seen[k] && e.ok {
			added = append(added, k)
		}
	}
	if len(added) > 0 {
		sort.Strings(added)
		m.env.noteIncomparable(fmt.Sprintf("map %s was walked after the session added keys to it; the kernel's order for those keys depends on its hash seed, so the emulator visits them last", v.name))
		for _, k := range added {
			out = append(out, []byte(k))
		}
	}
	return out, nil
}

// maxIterKeys bounds how many keys the emulator reads to walk a map.
const maxIterKeys = 1 << 20

// MapChange is one entry a session changed in a map.
type MapChange struct {
	Map string `json:"map"`
	// Key, Before and After are raw bytes; Before is nil for an added
	// entry and After for a removed one. Per-CPU values hold every CPU's
	// value, packed at the value size.
	Key    []byte `json:"key"`
	Before []byte `json:"before,omitempty"`
	After  []byte `json:"after,omitempty"`
}

// changes lists what the session changed in v, by key.
func (v *mapView) changes() []MapChange {
	var out []MapChange
	keys := make([]string, 0, len(v.entries))
	for k := range v.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := v.entries[k]
		if e.ok == e.baseOK && (!e.ok || bytes.Equal(e.val, e.base)) {
			continue
		}
		c := MapChange{Map: v.name, Key: e.key}
		if e.baseOK {
			c.Before = e.base
		}
		if e.ok {
			c.After = bytes.Clone(e.val)
			v.zeroSpecial(c.After)
		}
		out = append(out, c)
	}
	return out
}

func mapTypeName(t ebpf.MapType) string {
	return t.String()
}

var errNotMap = errors.New("not a map")

// specialRanges finds the bytes of special fields (bpf_spin_lock,
// bpf_timer, bpf_wq, kptrs, lists) in a value type.
func specialRanges(t btf.Type) [][2]uint32 {
	var out [][2]uint32
	var walk func(t btf.Type, off uint32)
	walk = func(t btf.Type, off uint32) {
		switch u := btf.UnderlyingType(t).(type) {
		case *btf.Struct:
			switch u.Name {
			case "bpf_spin_lock", "bpf_timer", "bpf_wq", "bpf_list_head", "bpf_list_node", "bpf_rb_root", "bpf_rb_node", "bpf_refcount", "bpf_res_spin_lock", "bpf_task_work":
				out = append(out, [2]uint32{off, off + u.Size})
				return
			}
			for _, mb := range u.Members {
				walk(mb.Type, off+uint32(mb.Offset/8))
			}
		case *btf.Array:
			n, err := btf.Sizeof(u.Type)
			if err != nil {
				return
			}
			if s, ok := btf.UnderlyingType(u.Type).(*btf.Struct); ok && len(specialRanges(s)) > 0 {
				for i := range u.Nelems {
					walk(u.Type, off+i*uint32(n))
				}
			}
		}
	}
	walk(t, 0)
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
