// SPDX-License-Identifier: Apache-2.0

package testrun

//go:generate go tool bpf2go -cc clang -target bpfel -no-global-types mapCopy mapcopy.bpf.c -- -I../bpf/include -O2 -g -Wall

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

// How bpfsh diffs a large hash map
//
// Reading a map out through bpf(2) costs what the map holds: a
// million-entry hash map takes ~0.35 s to read once with batch lookups,
// before and after a run most of a second, and the copies take ~100 MB of
// Go heap as key -> value maps. For hash and LRU hash maps over copyOver
// entries bpfsh copies the map inside the kernel instead: mapcopy.bpf.c,
// run through BPF_PROG_TEST_RUN, walks the map with bpf_for_each_map_elem
// and writes each entry as a fixed-size record into a memory-mapped array,
// which bpfsh compares in place with the copy taken after the run.
// Entries the run did not touch stay in the same order (the hash table's
// bucket order), so the comparison is a memcmp over runs of equal
// records; where the copies part (an entry added, removed, or moved to the
// head of its bucket by an update) it looks a few records ahead for where
// they meet again, and only the records in between are compared by key.
//
// Measured on a 1,000,000-entry u32 -> u64 map (2 vCPUs, Linux 6.18): one
// in-kernel copy 0.22 s, the comparison 2-3 ms, so a run ~0.45 s with
// every change reported, where the old bound left such maps out. The walk
// is bound by memory (a cache miss per bucket and per element), so no copy
// of the whole map gets near the 50 ms the issue asks for; that needs the
// keys a run touches, learned without walking the map:
//   - tracing the kernel's hash map functions (fexit on the lookup a JITed
//     program calls, fentry on update and delete) would record each key's
//     value before the run touched it, but the kernels bpfsh is tested on
//     refuse tracing programs (EPERM at load, lockdown), and the hooks
//     would sit on every hash map operation of the machine;
//   - the debugger's emulator (testrun/emu) can run the program first and
//     name the keys; then only those are read before and after. That is
//     what Run does when Options.Learner is set (learn.go); this copy is
//     the fallback where the emulator cannot stand in for the run.
// The "others" check after a run (markOthers) is skipped for copied maps:
// a third copy would add another 0.2 s.

// copyOver is the size above which hash maps are copied in the kernel
// rather than read out; below it loading the copier (~0.5 ms) costs more
// than reading the map.
const copyOver = 100_000

// copyMaxBytes bounds keys and values the copier takes (MAX_WORDS words).
const copyMaxBytes = 512

// copier copies one hash map. It keeps the copies; the program that
// copies is loaded for each run (load, unload).
type copier struct {
	spec   *ebpf.CollectionSpec
	copies *ebpf.Map
	prog   *ebpf.Program
	mem    []byte // copies, mapped: two copies of room records each
	rec    int    // bytes per record
	koff   int    // where a record's value starts
	ks     int
	vs     int
	room   uint32
	n      [2]uint32 // entries in each copy
}

// copyable says why map d cannot be copied in the kernel ("" if it can).
func copyable(d *bpf.MapDetails) string {
	switch {
	case d.Type != ebpf.Hash && d.Type != ebpf.LRUHash:
		return "only hash and LRU hash maps are copied in the kernel"
	case d.KeySize > copyMaxBytes || d.ValueSize > copyMaxBytes:
		return fmt.Sprintf("its keys or values are over %d bytes", copyMaxBytes)
	}
	return ""
}

var copiers struct {
	sync.Mutex
	m map[ebpf.MapID]*copier
}

// maxCopiers bounds the copiers kept loaded (each holds two copies of its
// map); past it they start over.
const maxCopiers = 4

func round8(n int) int { return (n + 7) &^ 7 }

// getCopier returns the copier of map d, loading it on first use.
func getCopier(d *bpf.MapDetails) (*copier, error) {
	copiers.Lock()
	defer copiers.Unlock()
	if c := copiers.m[d.ID]; c != nil {
		return c, nil
	}
	if why := copyable(d); why != "" {
		return nil, errors.New(why)
	}
	spec, err := loadMapCopy()
	if err != nil {
		return nil, err
	}
	c := &copier{ks: int(d.KeySize), vs: int(d.ValueSize), koff: round8(int(d.KeySize)), room: d.MaxEntries}
	c.rec = c.koff + round8(c.vs)
	tg := spec.Maps["target"]
	tg.Type, tg.KeySize, tg.ValueSize, tg.Flags, tg.MaxEntries = d.Type, d.KeySize, d.ValueSize, d.Flags, d.MaxEntries
	tg.Key, tg.Value = nil, nil
	cp := spec.Maps["copies"]
	cp.ValueSize, cp.MaxEntries = uint32(c.rec), 2*c.room
	for name, v := range map[string]uint32{"key_size": d.KeySize, "value_size": d.ValueSize, "value_off": uint32(c.koff)} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, err
		}
	}
	c.spec = spec
	if c.copies, err = ebpf.NewMap(cp); err != nil {
		return nil, fmt.Errorf("make room for two copies of the map: %w", err)
	}
	size := 2 * int(c.room) * c.rec
	if c.mem, err = unix.Mmap(c.copies.FD(), 0, size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		c.copies.Close()
		return nil, fmt.Errorf("map the copies: %w", err)
	}
	if copiers.m == nil || len(copiers.m) >= maxCopiers {
		for _, old := range copiers.m {
			old.close()
		}
		copiers.m = map[ebpf.MapID]*copier{}
	}
	copiers.m[d.ID] = c
	return c, nil
}

func (c *copier) close() {
	c.unload()
	unix.Munmap(c.mem)
	c.copies.Close()
}

// load loads the copying program for map m: it holds m until unload.
func (c *copier) load(m *ebpf.Map) error {
	var objs struct {
		CopyMap *ebpf.Program `ebpf:"copy_map"`
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"target": m, "copies": c.copies}}
	if err := c.spec.LoadAndAssign(&objs, opts); err != nil {
		return fmt.Errorf("load the map copier: %w", err)
	}
	c.prog = objs.CopyMap
	return nil
}

func (c *copier) unload() {
	if c.prog != nil {
		c.prog.Close()
		c.prog = nil
	}
}

// copyArgs is struct args of mapcopy.bpf.c.
type copyArgs struct {
	Base, Room, N, Full uint32
}

// take copies the map into copy slot (0 or 1).
func (c *copier) take(slot int) error {
	in := copyArgs{Base: uint32(slot) * c.room, Room: c.room}
	var out copyArgs
	if _, err := c.prog.Run(&ebpf.RunOptions{Context: in, ContextOut: &out}); err != nil {
		return fmt.Errorf("copy the map: %w", err)
	}
	if out.Full != 0 {
		return fmt.Errorf("the map holds more entries than its max_entries (%d)", c.room)
	}
	c.n[slot] = out.N
	return nil
}

// records is copy slot's records, packed.
func (c *copier) records(slot int) []byte {
	base := slot * int(c.room) * c.rec
	return c.mem[base : base+int(c.n[slot])*c.rec]
}

// alignAhead is how far apart two copies may drift at one place (records
// added or removed, or moved in a bucket) and still be matched up in
// place; alignCheck is how many records must agree to call them met.
const (
	alignAhead = 64
	alignCheck = 4
)

// compare returns the entries of copy a and copy b that differ, by key
// (value bytes), as changes() takes them.
func (c *copier) compare(a, b int) (before, after map[string][]byte) {
	A, B := c.records(a), c.records(b)
	rec := c.rec
	na, nb := len(A)/rec, len(B)/rec
	pendA, pendB := map[string][]byte{}, map[string][]byte{}
	r := func(buf []byte, i int) []byte { return buf[i*rec : (i+1)*rec] }
	key := func(x []byte) string { return string(x[:c.ks]) }
	val := func(x []byte) []byte { return x[c.koff : c.koff+c.vs] }
	// meet says whether A from i and B from j agree for alignCheck records
	// (or both end).
	meet := func(i, j int) bool {
		for k := range alignCheck {
			if i+k >= na || j+k >= nb {
				return i+k >= na && j+k >= nb
			}
			if !bytes.Equal(r(A, i+k), r(B, j+k)) {
				return false
			}
		}
		return true
	}
	i, j := 0, 0
	for i < na && j < nb {
		// Skip the equal stretch at once.
		n := min(na-i, nb-j)
		k := commonRecords(A[i*rec:(i+n)*rec], B[j*rec:(j+n)*rec], rec)
		i, j = i+k, j+k
		if i >= na || j >= nb {
			break
		}
		di, dj, ok := 0, 0, false
		for s := 1; s <= 2*alignAhead && !ok; s++ {
			for x := max(0, s-alignAhead); x <= min(s, alignAhead); x++ {
				if meet(i+x, j+s-x) {
					di, dj, ok = x, s-x, true
					break
				}
			}
		}
		if !ok {
			di, dj = na-i, nb-j // no meeting point near: compare the rest by key
		}
		for k := range di {
			x := r(A, i+k)
			pendA[key(x)] = val(x)
		}
		for k := range dj {
			x := r(B, j+k)
			pendB[key(x)] = val(x)
		}
		i, j = i+di, j+dj
	}
	for ; i < na; i++ {
		pendA[key(r(A, i))] = val(r(A, i))
	}
	for ; j < nb; j++ {
		pendB[key(r(B, j))] = val(r(B, j))
	}
	for k, v := range pendA {
		if w, ok := pendB[k]; ok && bytes.Equal(v, w) {
			delete(pendA, k)
			delete(pendB, k)
		}
	}
	return pendA, pendB
}

// commonRecords is how many whole records a and b (as long as each
// other) share from the front.
func commonRecords(a, b []byte, rec int) int {
	// Compare in large blocks first: most of two copies is equal.
	const block = 64 << 10
	off := 0
	for off+block <= len(a) && bytes.Equal(a[off:off+block], b[off:off+block]) {
		off += block
	}
	for off < len(a) && a[off] == b[off] {
		off++
	}
	return off / rec
}
