// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Bounds of the before/after map diff: a run must not spend seconds
// copying a million-entry map twice.
const (
	maxDiffValueBytes = 64 * 1024        // one (per-CPU: all CPUs') value
	maxDiffMapBytes   = 64 * 1024 * 1024 // one map's values in all
	bpfFRdonlyProg    = 1 << 7           // BPF_F_RDONLY_PROG: the program cannot write it
)

// MapChange is one map entry a run added, removed or changed.
type MapChange struct {
	Map    string `json:"map"`    // the map's name
	MapID  uint32 `json:"map_id"` // its id
	Change string `json:"change"` // "added", "removed" or "changed"
	// Key, Before and After are formatted by the map's BTF (hex without
	// BTF); Before is empty for added entries, After for removed ones.
	// Per-CPU values are summed over the CPUs where the value is made of
	// integers; otherwise the CPU whose value changed is shown.
	Key    string `json:"-"`
	Before string `json:"-"`
	After  string `json:"-"`
	// KeyJSON, BeforeJSON and AfterJSON are the same for JSON.
	KeyJSON    any `json:"key"`
	BeforeJSON any `json:"before,omitempty"`
	AfterJSON  any `json:"after,omitempty"`
	// Others says the entry changed again right after the runs, without
	// them: another writer (a program attached somewhere, another
	// process) updates it, so this change may be partly, or wholly, its.
	Others bool `json:"others,omitempty"`

	rawKey string // the key's bytes, to match a later reading
}

// mapSnap is one map's contents at one moment.
type mapSnap struct {
	// m is the map, or nil when it was opened by id alone (fd; see
	// mapread.go). fd is the descriptor reads use (m's, when m is set).
	m         *ebpf.Map
	fd        int
	held      bool            // fd belongs to a bpf.Held: not closed here
	d         *bpf.MapDetails // as the kernel describes m (types resolved on a change)
	id        ebpf.MapID
	name      string
	keySize   int
	valueSize int // one CPU's value
	ncpu      int // CPUs whose values an entry holds, packed at valueSize
	// entries is the last reading as key -> value. raw, when set, is the
	// same reading packed (readPacked); entries is then made from it only
	// when asked for (entryMap).
	entries map[string][]byte
	raw     []byte
	// cp, when set, copies the map inside the kernel instead of reading
	// it out (a large hash map; see mapcopy.go); entries then holds only
	// the entries that differ after the runs.
	cp *copier
	// learned, when set, holds the keys the emulator saw the run touch
	// (a large hash map; see learn.go); entries then holds those keys.
	learned *LearnedMap
}

// diffable says why a map of type t is left out of diffs ("" if it is not):
// reading queues and stacks consumes them, ring buffers and perf arrays are
// streams, socket and program arrays hold kernel objects, local storage
// cannot be walked, and test runs get fresh cgroup storage every time.
func diffable(t ebpf.MapType) string {
	switch t {
	case ebpf.Hash, ebpf.Array, ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUHash, ebpf.LRUCPUHash,
		ebpf.LPMTrie, ebpf.ArrayOfMaps, ebpf.HashOfMaps:
		return ""
	}
	return bpf.MapTypeName(uint32(t)) + " maps are not diffed"
}

// mapSnapshots reads every diffable map among ids. Maps over the bounds are
// left out with a note saying so; the returned snapshots hold their maps
// open until close.
type mapSnapshots struct {
	snaps []*mapSnap
	notes []string
	// methods say, for each large hash map, how it was diffed.
	methods []string
	learn   *learning
	// notRead say which maps were left unread: the program cannot write
	// them (readonly.go).
	notRead []string
	// readAt is when diff finished reading the maps after the runs: the
	// look for other writers (markOthers) counts from there.
	readAt time.Time
}

// NotRead says which maps were not read because the run cannot change
// them (nil for none).
func (s *mapSnapshots) NotRead() []string {
	if s == nil {
		return nil
	}
	return s.notRead
}

// Methods says how each large map was diffed (nil for none).
func (s *mapSnapshots) Methods() []string {
	if s == nil {
		return nil
	}
	return s.methods
}

// startMapDiff snapshots the maps info says prog uses, unless opts asks for
// no diff (nil then: a nil *mapSnapshots diffs and closes as nothing).
// l, when set, learns the keys the run touches for large hash maps.
func startMapDiff(info *ebpf.ProgramInfo, opts Options, l *learning) *mapSnapshots {
	ids, ok := info.MapIDs()
	if !ok || opts.NoMaps || len(ids) == 0 {
		return nil
	}
	return takeSnapshots(ids, l, readOnlyMaps(info, opts), info.Name, opts.Held)
}

// takeSnapshots reads the maps ids but those in unwritten, which prog
// cannot write. held, when set, keeps the fds of small maps open for the
// next run.
func takeSnapshots(ids []ebpf.MapID, l *learning, unwritten map[ebpf.MapID]bool, prog string, held *bpf.Held) *mapSnapshots {
	s := &mapSnapshots{learn: l}
	ncpu, _ := ebpf.PossibleCPU()
	for _, id := range ids {
		known := knownMap(id)
		if known != nil && (diffable(known.Type) != "" || known.Flags&bpfFRdonlyProg != 0) {
			continue // not even opened: queues, ring buffers, read-only data
		}
		if known != nil && unwritten[id] {
			s.notRead = append(s.notRead, notReadText(known.Name, prog))
			continue
		}
		var (
			m    *ebpf.Map
			fd   int
			kept bool
			err  error
		)
		if known != nil && !largeHash(known) {
			// Read in batches by fd alone (mapread.go).
			if held != nil {
				fd, err = held.MapFD(id, openMapFD)
				kept = err == nil
			} else {
				fd, err = openMapFD(id)
			}
		} else if m, err = ebpf.NewMapFromID(id); err == nil {
			fd = m.FD()
		}
		if err != nil {
			s.notes = append(s.notes, fmt.Sprintf("map id %d: cannot open it to diff (%v)", id, err))
			continue
		}
		d := known
		if d == nil {
			if d, err = bpf.MapKernelInfo(m); err != nil {
				m.Close()
				continue
			}
			rememberMap(d)
		}
		dc := *d // its types are resolved per snapshot
		d = &dc
		snap := &mapSnap{m: m, fd: fd, held: kept, d: d, id: id, name: d.Name, keySize: int(d.KeySize), valueSize: int(d.ValueSize), ncpu: 1}
		if diffable(d.Type) != "" || d.Flags&bpfFRdonlyProg != 0 {
			snap.closeMap()
			continue
		}
		if unwritten[id] {
			s.notRead = append(s.notRead, notReadText(d.Name, prog))
			snap.closeMap()
			continue
		}
		// The bounds count per-CPU values as the kernel copies them out:
		// each padded to 8 bytes.
		full := snap.valueSize
		if bpf.IsPerCPU(d.Type) {
			snap.ncpu = max(ncpu, 1)
			full = ((full + 7) &^ 7) * snap.ncpu
		}
		if largeHash(d) {
			lerr := learnedSnap(snap, l)
			if lerr == nil {
				s.methods = append(s.methods, fmt.Sprintf("%s: by the %d key(s) the emulator saw the run touch, read before and after (the map can hold %d entries: not copied)", snap.name, len(snap.learned.Keys), d.MaxEntries))
				s.snaps = append(s.snaps, snap)
				continue
			}
			c, err := getCopier(d)
			if err == nil {
				if err = c.load(m); err == nil {
					if err = c.take(0); err != nil {
						c.unload()
					}
				}
			}
			if err == nil {
				s.methods = append(s.methods, fmt.Sprintf("%s: copied whole in the kernel before and after (~0.2 s per million entries): the emulator could not name the keys the run touches: %v", snap.name, lerr))
				snap.cp = c
				s.snaps = append(s.snaps, snap)
				continue
			}
			if int64(full+int(d.KeySize))*int64(d.MaxEntries) > maxDiffMapBytes {
				s.notes = append(s.notes, fmt.Sprintf("map %s not diffed: it can hold %d entries, too many to read out on every run, and it cannot be copied in the kernel: %v; compare 'map lookup' of the keys you expect before and after, or 'map dump' to a file", snap.name, d.MaxEntries, err))
				snap.closeMap()
				continue
			}
			// Read it out as small maps are: slower, but complete.
		}
		switch {
		case full > maxDiffValueBytes:
			s.notes = append(s.notes, fmt.Sprintf("map %s not diffed: its values are %d bytes (over %d)", snap.name, full, maxDiffValueBytes))
		case int64(full+int(d.KeySize))*int64(d.MaxEntries) > maxDiffMapBytes:
			s.notes = append(s.notes, fmt.Sprintf("map %s not diffed: it could hold over %d MiB, too much to copy on every run; compare 'map lookup' of the keys you expect before and after, or 'map dump' to a file", snap.name, maxDiffMapBytes>>20))
		default:
			s.snaps = append(s.snaps, snap)
			continue
		}
		snap.closeMap()
	}
	s.read()
	return s
}

// errTooMany is returned when a map holds more entries than asked to read.
var errTooMany = errors.New("too many entries")

// readEntries returns every entry of m as key -> value bytes (a per-CPU
// map's value holds every possible CPU's, packed at the value size), or
// errTooMany as soon as there are more than limit.
func readEntries(m *ebpf.Map, limit int) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := bpf.ReadMapChunksInline(m, func(c *bpf.MapChunk) error {
		size := c.ValueSize * c.CPUs
		for i := range c.N {
			out[string(c.Key(i))] = bytes.Clone(c.Values[i*size : (i+1)*size])
		}
		if len(out) > limit {
			return errTooMany
		}
		return nil
	})
	return out, err
}

// read (re)reads every snapshot's entries; maps that cannot be read or
// hold too many entries are dropped with a note.
func (s *mapSnapshots) read() {
	kept := s.snaps[:0]
	for _, snap := range s.snaps {
		if snap.cp != nil || snap.learned != nil {
			kept = append(kept, snap)
			continue
		}
		raw, err := snap.readPacked()
		var entries map[string][]byte
		if errors.Is(err, errNoBatchRead) {
			raw = nil
			entries, err = snap.readAll()
		}
		switch {
		case err != nil:
			s.notes = append(s.notes, fmt.Sprintf("map %s not diffed: read it: %v", snap.name, err))
		default:
			snap.entries, snap.raw = entries, raw
			kept = append(kept, snap)
			continue
		}
		snap.closeMap()
	}
	s.snaps = kept
}

func (s *mapSnapshots) close() {
	if s == nil {
		return
	}
	for _, snap := range s.snaps {
		if snap.cp != nil {
			snap.cp.unload()
		}
		snap.closeMap()
	}
}

// diff re-reads the maps and returns what changed since the snapshot.
func (s *mapSnapshots) diff() ([]MapChange, []string) {
	if s == nil {
		return nil, nil
	}
	before := make([]map[string][]byte, len(s.snaps))
	beforeRaw := make([][]byte, len(s.snaps))
	for i, snap := range s.snaps {
		if snap.raw != nil {
			beforeRaw[i] = snap.raw
		} else {
			before[i] = snap.entries
		}
		if snap.learned != nil {
			after, note, err := snap.learnedDiff(s.learn)
			if err != nil {
				s.notes = append(s.notes, fmt.Sprintf("map %s not diffed: %v", snap.name, err))
				before[i], snap.entries = nil, nil
				continue
			}
			if note != "" {
				s.notes = append(s.notes, note)
			}
			snap.entries = after
			continue
		}
		if snap.cp == nil {
			continue
		}
		if err := snap.cp.take(1); err != nil {
			s.notes = append(s.notes, fmt.Sprintf("map %s not diffed: %v", snap.name, err))
			before[i], snap.entries = nil, nil
			continue
		}
		before[i], snap.entries = snap.cp.compare(0, 1)
	}
	snaps := slices.Clone(s.snaps)
	s.read()
	s.readAt = time.Now()
	specs := map[btf.ID]*btf.Spec{}
	var changes []MapChange
	for i, snap := range snaps {
		if !slices.Contains(s.snaps, snap) {
			continue // dropped on the second read: noted there
		}
		if beforeRaw[i] != nil {
			if snap.raw != nil && bytes.Equal(beforeRaw[i], snap.raw) {
				continue // the same bytes: nothing changed
			}
			if list, ok := snap.alignedChanges(beforeRaw[i], snap.raw); ok {
				changes = append(changes, snap.changeList(list, specs)...)
				continue
			}
			before[i] = snap.unpack(beforeRaw[i])
		}
		changes = append(changes, snap.changes(before[i], snap.entryMap(), specs)...)
	}
	return changes, s.notes
}

// alignedChanges compares two packed readings of the map whose keys come
// in the same order (an array's always do, a hash map's do while no key
// came or went) and returns only the entries whose values differ: what
// changeList needs, without a Go map of every entry. ok is false when
// the keys are not aligned.
func (snap *mapSnap) alignedChanges(before, after []byte) (list []entryChange, ok bool) {
	es := snap.entrySize()
	if es == 0 || len(before) != len(after) || after == nil {
		return nil, false
	}
	for off := 0; off+es <= len(before); off += es {
		kb, ka := before[off:off+snap.keySize], after[off:off+snap.keySize]
		if !bytes.Equal(kb, ka) {
			return nil, false
		}
		vb, va := before[off+snap.keySize:off+es:off+es], after[off+snap.keySize:off+es:off+es]
		if !bytes.Equal(vb, va) {
			list = append(list, entryChange{key: string(kb), before: vb, after: va, hadB: true, hasA: true})
		}
	}
	// A key read twice (a hash map changing under the batch read) counts
	// once, as in a Go map of the reading: the last one.
	for i := range list {
		for j := i + 1; j < len(list); j++ {
			if list[i].key == list[j].key {
				return nil, false
			}
		}
	}
	return list, true
}

// entryMap is the last reading as key -> value.
func (snap *mapSnap) entryMap() map[string][]byte {
	if snap.entries == nil && snap.raw != nil {
		snap.entries = snap.unpack(snap.raw)
	}
	return snap.entries
}

// changes compares two readings of one map. specs caches the BTF of each
// id across the maps of one diff.
func (snap *mapSnap) changes(before, after map[string][]byte, specs map[btf.ID]*btf.Spec) []MapChange {
	var list []entryChange
	for k, v := range before {
		if w, ok := after[k]; !ok || !bytes.Equal(v, w) {
			list = append(list, entryChange{key: k, before: v, after: w, hadB: true, hasA: ok})
		}
	}
	for k, w := range after {
		if _, ok := before[k]; !ok {
			list = append(list, entryChange{key: k, after: w, hasA: true})
		}
	}
	return snap.changeList(list, specs)
}

// entryChange is one entry that differs between two readings.
type entryChange struct {
	key           string
	before, after []byte
	hadB, hasA    bool
}

// changeList formats the entries that differ, in key order.
func (snap *mapSnap) changeList(list []entryChange, specs map[btf.ID]*btf.Spec) []MapChange {
	if len(list) == 0 {
		return nil
	}
	slices.SortFunc(list, func(x, y entryChange) int { return strings.Compare(x.key, y.key) })
	var keyType, valueType btf.Type
	if snap.d != nil {
		// Only now, since most maps do not change: reading a map's BTF
		// costs more than reading a small map. Once per map: a map's
		// types do not change while it lives, and ids are not reused.
		keyType, valueType = resolvedTypes(snap.d, specs)
	}
	var out []MapChange
	for _, e := range list {
		k, b, a, hadB, hasA := e.key, e.before, e.after, e.hadB, e.hasA
		if ds, ok := valueType.(*btf.Datasec); ok && hadB && hasA && snap.ncpu == 1 {
			// Global variables (.bss, .data): one change per variable.
			for _, c := range snap.varChanges(ds, b, a) {
				c.rawKey = k
				out = append(out, c)
			}
			continue
		}
		c := MapChange{Map: snap.name, MapID: uint32(snap.id), rawKey: k}
		c.Key, c.KeyJSON = formatBytes([]byte(k), keyType)
		switch {
		case !hadB:
			c.Change = "added"
		case !hasA:
			c.Change = "removed"
		default:
			c.Change = "changed"
		}
		if hadB {
			c.Before, c.BeforeJSON = snap.formatCached(b, a, valueType)
		}
		if hasA {
			c.After, c.AfterJSON = snap.formatCached(a, b, valueType)
		}
		out = append(out, c)
	}
	return out
}

// mapCache keeps what the kernel says of each map diffed so far, by id:
// type, sizes, flags and name do not change while a map lives, and ids
// are not reused. A script of runs then opens only the maps it reads.
var mapCache struct {
	sync.Mutex
	m map[ebpf.MapID]*bpf.MapDetails
}

func knownMap(id ebpf.MapID) *bpf.MapDetails {
	mapCache.Lock()
	defer mapCache.Unlock()
	return mapCache.m[id]
}

func rememberMap(d *bpf.MapDetails) {
	mapCache.Lock()
	defer mapCache.Unlock()
	if mapCache.m == nil || len(mapCache.m) >= 1024 {
		mapCache.m = map[ebpf.MapID]*bpf.MapDetails{}
	}
	mapCache.m[d.ID] = d
}

// typeCache keeps the key and value types of the maps diffed so far, by id.
var typeCache struct {
	sync.Mutex
	m map[ebpf.MapID][2]btf.Type
}

// resolvedTypes is d's key and value types, resolved once per map.
func resolvedTypes(d *bpf.MapDetails, specs map[btf.ID]*btf.Spec) (key, value btf.Type) {
	typeCache.Lock()
	t, ok := typeCache.m[d.ID]
	typeCache.Unlock()
	if ok {
		return t[0], t[1]
	}
	d.ResolveTypes(specs)
	typeCache.Lock()
	if typeCache.m == nil || len(typeCache.m) >= 1024 {
		typeCache.m = map[ebpf.MapID][2]btf.Type{}
	}
	typeCache.m[d.ID] = [2]btf.Type{d.Key, d.Value}
	typeCache.Unlock()
	return d.Key, d.Value
}

// varChanges splits a change of a global-data map into its variables.
func (snap *mapSnap) varChanges(ds *btf.Datasec, before, after []byte) []MapChange {
	var out []MapChange
	for _, v := range ds.Vars {
		lo, hi := int(v.Offset), int(v.Offset+v.Size)
		if hi > len(before) || hi > len(after) || bytes.Equal(before[lo:hi], after[lo:hi]) {
			continue
		}
		name := fmt.Sprintf("+%d", lo)
		var t btf.Type
		if vr, ok := v.Type.(*btf.Var); ok {
			name, t = vr.Name, vr.Type
		}
		c := MapChange{Map: snap.name, MapID: uint32(snap.id), Change: "changed", Key: name, KeyJSON: name}
		c.Before, c.BeforeJSON = formatBytes(before[lo:hi], t)
		c.After, c.AfterJSON = formatBytes(after[lo:hi], t)
		out = append(out, c)
	}
	return out
}

// formatted keeps, per map id, the last values formatted: a script of
// runs formats each changed entry's value before and after, and one run's
// "after" is the next one's "before". Values are formatted by the map's
// types, which do not change while it lives (ids are not reused); the
// JSON forms are only read. The text depends on --raw-numbers too.
var formatted struct {
	sync.Mutex
	m map[formattedMap]map[string]formattedValue
}

type formattedMap struct {
	id  ebpf.MapID
	raw bool // bpf.RawNumbers()
}

type formattedValue struct {
	text string
	json any
}

// formatCached is formatValue(v, other, t), from formatted when the text
// depends on v alone (not a per-CPU value of other than integers, where
// the CPU that differs from other is shown).
func (snap *mapSnap) formatCached(v, other []byte, t btf.Type) (string, any) {
	if snap.id == 0 {
		return snap.formatValue(v, other, t)
	}
	if snap.ncpu > 1 {
		if _, ok := snap.leaves(t); !ok {
			return snap.formatValue(v, other, t)
		}
	}
	fm := formattedMap{snap.id, bpf.RawNumbers()}
	formatted.Lock()
	f, ok := formatted.m[fm][string(v)]
	formatted.Unlock()
	if ok {
		return f.text, f.json
	}
	text, obj := snap.formatValue(v, other, t)
	formatted.Lock()
	if formatted.m == nil || len(formatted.m) >= 256 {
		formatted.m = map[formattedMap]map[string]formattedValue{}
	}
	byValue := formatted.m[fm]
	if byValue == nil || len(byValue) >= 16 {
		byValue = map[string]formattedValue{}
		formatted.m[fm] = byValue
	}
	byValue[string(v)] = formattedValue{text, obj}
	formatted.Unlock()
	return text, obj
}

// leavesCache keeps intLeaves' answer per map id (for its value type).
var leavesCache struct {
	sync.Mutex
	m map[ebpf.MapID]leavesOf
}

type leavesOf struct {
	leaves []leaf
	ok     bool
}

// leaves is intLeaves(t, snap.valueSize), once per map (id 0: a map not
// from the kernel, every time).
func (snap *mapSnap) leaves(t btf.Type) ([]leaf, bool) {
	if snap.id == 0 {
		return intLeaves(t, snap.valueSize)
	}
	leavesCache.Lock()
	l, known := leavesCache.m[snap.id]
	leavesCache.Unlock()
	if known {
		return l.leaves, l.ok
	}
	l.leaves, l.ok = intLeaves(t, snap.valueSize)
	leavesCache.Lock()
	if leavesCache.m == nil || len(leavesCache.m) >= 1024 {
		leavesCache.m = map[ebpf.MapID]leavesOf{}
	}
	leavesCache.m[snap.id] = l
	leavesCache.Unlock()
	return l.leaves, l.ok
}

// formatValue formats one map value; for per-CPU maps the per-CPU values
// are summed when the type is made of integers, otherwise the first CPU
// whose value differs from other (the other reading) is shown as "cpuN: ...".
func (snap *mapSnap) formatValue(v, other []byte, t btf.Type) (string, any) {
	if snap.ncpu == 1 {
		return formatBytes(v, t)
	}
	cpu := func(i int, b []byte) []byte {
		if len(b) < (i+1)*snap.valueSize {
			return nil
		}
		return b[i*snap.valueSize : (i+1)*snap.valueSize]
	}
	if leaves, ok := snap.leaves(t); ok {
		sum := make([]byte, snap.valueSize)
		for i := range snap.ncpu {
			for _, l := range leaves {
				part := cpu(i, v)[l.off : l.off+l.size]
				acc, _ := getInt(sum[l.off:l.off+l.size], false, false)
				add, _ := getInt(part, false, false)
				putUint(sum[l.off:l.off+l.size], acc+add)
			}
		}
		text, obj := formatBytes(sum, t)
		return text + " (sum of " + fmt.Sprint(snap.ncpu) + " CPUs)", obj
	}
	for i := range snap.ncpu {
		if o := cpu(i, other); o == nil || !bytes.Equal(cpu(i, v), o) {
			text, obj := formatBytes(cpu(i, v), t)
			return fmt.Sprintf("cpu%d: %s", i, text), map[string]any{"cpu": i, "value": obj}
		}
	}
	return formatBytes(cpu(0, v), t)
}

// leaf is an integer inside a value.
type leaf struct{ off, size int }

// intLeaves lists the integers a value of type t (size bytes) is made of;
// ok is false when it holds anything else. Without BTF a value of 1, 2, 4
// or 8 bytes counts as one integer.
func intLeaves(t btf.Type, size int) ([]leaf, bool) {
	if t == nil {
		if size == 1 || size == 2 || size == 4 || size == 8 {
			return []leaf{{0, size}}, true
		}
		return nil, false
	}
	var out []leaf
	var walk func(t btf.Type, off int) bool
	walk = func(t btf.Type, off int) bool {
		switch u := btf.UnderlyingType(t).(type) {
		case *btf.Int, *btf.Enum:
			n, _ := btf.Sizeof(u)
			if n != 1 && n != 2 && n != 4 && n != 8 {
				return false
			}
			out = append(out, leaf{off, n})
			return true
		case *btf.Struct:
			for _, m := range u.Members {
				if m.BitfieldSize != 0 || m.Offset%8 != 0 || !walk(m.Type, off+int(m.Offset/8)) {
					return false
				}
			}
			return true
		case *btf.Array:
			n, err := btf.Sizeof(u.Type)
			if err != nil {
				return false
			}
			for i := range int(u.Nelems) {
				if !walk(u.Type, off+i*n) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !walk(t, 0) {
		return nil, false
	}
	return out, true
}

func putUint(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

// formatBytes formats b typed by t through bpf.FormatValue, or as hex
// when there is no type: bpftool's "01 02 0a", one string in JSON too.
func formatBytes(b []byte, t btf.Type) (string, any) {
	if _, isVoid := t.(*btf.Void); t == nil || isVoid {
		h := bpf.FormatText(b, nil)
		return h, h
	}
	return bpf.FormatValue(b, t)
}

// pause waits d: by the clock for short waits, which time.Sleep rounds up
// to the scheduler's tick (a single run's window is tens of microseconds,
// and a script of runs would spend most of its time asleep).
func pause(d time.Duration) {
	if d <= 0 {
		return
	}
	if d >= time.Millisecond {
		time.Sleep(d)
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// maxOthersLook caps how long markOthers watches the maps after a run.
const maxOthersLook = 100 * time.Millisecond

// markOthers tells this run's map changes from another writer's as far as
// a before/after comparison can: it looks at the maps that changed once
// more, at least as long as the runs took (at most maxOthersLook) after
// it read them following the runs,
// marks every change whose entry changed again meanwhile (Others), and
// adds a note naming each map that did. A writer that wrote only while
// the runs ran cannot be told apart; the help and README say so.
func (o *Outcome) markOthers(s *mapSnapshots, took time.Duration) {
	if s == nil || len(o.Maps) == 0 {
		return
	}
	changed := map[uint32]bool{}
	for _, c := range o.Maps {
		changed[c.MapID] = true
	}
	// The look counts from the reading after the runs: formatting the
	// changes since then is part of it.
	look := min(took, maxOthersLook)
	pause(look - time.Since(s.readAt))
	for _, snap := range s.snaps {
		if !changed[uint32(snap.id)] {
			continue
		}
		again := map[string]bool{}
		if snap.cp != nil {
			continue // a third copy of a large map costs too much (mapcopy.go)
		} else {
			var now map[string][]byte
			var err error
			if snap.learned != nil {
				now, err = readKeys(snap.m, snap.learned.Keys)
			} else if snap.raw != nil {
				var raw []byte
				if raw, err = snap.readPacked(); err == nil {
					if bytes.Equal(raw, snap.raw) {
						continue // the same bytes: not changed again
					}
					now = snap.unpack(raw)
				}
			} else {
				now, err = snap.readAll()
			}
			if err != nil {
				continue
			}
			entries := snap.entryMap()
			for k, v := range entries {
				if w, ok := now[k]; !ok || !bytes.Equal(v, w) {
					again[k] = true
				}
			}
			for k := range now {
				if _, ok := entries[k]; !ok {
					again[k] = true
				}
			}
		}
		if len(again) == 0 {
			continue
		}
		marked := 0
		for i := range o.Maps {
			if c := &o.Maps[i]; c.MapID == uint32(snap.id) && again[c.rawKey] {
				c.Others = true
				marked++
			}
		}
		note := fmt.Sprintf("map %s changed again in the %v after the run, without it: another writer (an attached program, another process) updates it", snap.name, look.Round(time.Microsecond))
		if marked > 0 {
			note += "; the changes marked (+others) may be partly that writer's"
		} else {
			note += ", though not the entries above"
		}
		o.MapNotes = append(o.MapNotes, note)
	}
}

// largeHash says whether d is a hash map too large to read out whole on
// every run (learned keys or an in-kernel copy instead).
func largeHash(d *bpf.MapDetails) bool {
	return (d.Type == ebpf.Hash || d.Type == ebpf.LRUHash) && d.MaxEntries > copyOver
}
