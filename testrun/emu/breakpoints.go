// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Location is where a breakpoint stops: an instruction, a function's
// first instruction, or the instructions that start a source line.
type Location struct {
	PC   int    `json:"pc"`   // *INSN; -1 when not by slot
	Func string `json:"func"` // FUNC
	File string `json:"file"` // FILE:LINE (File may be empty: any file)
	Line int    `json:"line"`
}

// String spells the location as ParseLocation reads it.
func (l Location) String() string {
	switch {
	case l.PC >= 0:
		return fmt.Sprintf("*%d", l.PC)
	case l.Func != "":
		return l.Func
	case l.File != "":
		return fmt.Sprintf("%s:%d", l.File, l.Line)
	}
	return strconv.Itoa(l.Line)
}

// ParseLocation reads gdb's spellings: "*INSN", "FILE:LINE", "LINE",
// "FUNC".
func ParseLocation(s string) (Location, error) {
	s = strings.TrimSpace(s)
	loc := Location{PC: -1}
	switch {
	case s == "":
		return loc, fmt.Errorf("a location is *INSN, FILE:LINE, LINE or FUNC")
	case strings.HasPrefix(s, "*"):
		n, err := strconv.Atoi(strings.TrimSpace(s[1:]))
		if err != nil || n < 0 {
			return loc, fmt.Errorf("location %q: *INSN takes an instruction number", s)
		}
		loc.PC = n
	case strings.Contains(s, ":"):
		i := strings.LastIndex(s, ":")
		n, err := strconv.Atoi(s[i+1:])
		if err != nil || n <= 0 {
			return loc, fmt.Errorf("location %q: FILE:LINE takes a line number", s)
		}
		loc.File, loc.Line = s[:i], n
	default:
		if n, err := strconv.Atoi(s); err == nil {
			if n <= 0 {
				return loc, fmt.Errorf("location %q: lines start at 1", s)
			}
			loc.Line = n
		} else {
			loc.Func = s
		}
	}
	return loc, nil
}

// Breakpoint stops a session before an instruction runs.
type Breakpoint struct {
	ID  int      `json:"id"`
	Loc Location `json:"location"`
	// Cond, when set, is asked at every arrival: the session stops only
	// when it says true. CondText is its text, for listings.
	Cond     func(*Session) bool `json:"-"`
	CondText string              `json:"condition,omitempty"`
	// Hits counts the stops.
	Hits     int  `json:"hits"`
	Disabled bool `json:"disabled"`
	// PCs are the slots it stops at in the entry program.
	PCs []int `json:"pcs"`
}

// resolve finds the slots of loc in p.
func (s *Session) resolve(p *Program, loc Location) ([]int, error) {
	switch {
	case loc.PC >= 0:
		if loc.PC >= len(p.insns) {
			return nil, fmt.Errorf("instruction %d: %s has %d", loc.PC, p.Name, len(p.insns))
		}
		if p.insns[loc.PC].op == xFiller {
			return nil, fmt.Errorf("instruction %d is the second half of a 64-bit load; use *%d", loc.PC, loc.PC-1)
		}
		return []int{loc.PC}, nil
	case loc.Func != "":
		f, ok := p.funcByName(loc.Func)
		if !ok {
			var names []string
			for _, f := range p.funcs {
				names = append(names, f.Name)
			}
			return nil, fmt.Errorf("%s has no function %q; its functions: %s", p.Name, loc.Func, strings.Join(names, ", "))
		}
		return []int{f.Start}, nil
	case loc.Line > 0:
		matches := func(file string) bool {
			return loc.File == "" || file == loc.File || strings.HasSuffix(file, "/"+loc.File) || filepath.Base(file) == filepath.Base(loc.File)
		}
		// The first line at or after loc.Line that has code, as gdb
		// moves a breakpoint on a comment to the next statement.
		best := -1
		for pc, l := range p.lines {
			if l == nil || !p.lineStart[pc] || !matches(l.FileName()) || int(l.LineNumber()) < loc.Line {
				continue
			}
			if n := int(l.LineNumber()); best < 0 || n < best {
				best = n
			}
		}
		if best < 0 || best > loc.Line+20 {
			if !s.hasLinesIn(p) {
				return nil, fmt.Errorf("%s has no line info (build it with clang -g and keep .BTF.ext)", p.Name)
			}
			return nil, fmt.Errorf("no code at %s in %s", loc, p.Name)
		}
		// Each run of slots of the line is one place: a line whose
		// columns start several entries (r4 = udp->dest, then the store)
		// stops once, at the first, as gdb stops at a line's first
		// statement address.
		var pcs []int
		for pc, l := range p.lines {
			if l == nil || !p.lineStart[pc] || !matches(l.FileName()) || int(l.LineNumber()) != best {
				continue
			}
			if prev := pc - 1; prev >= 0 && p.lines[prev] != nil && p.lines[prev].LineNumber() == l.LineNumber() && p.lines[prev].FileName() == l.FileName() {
				continue
			}
			pcs = append(pcs, pc)
		}
		return pcs, nil
	}
	return nil, fmt.Errorf("empty location")
}

func (s *Session) hasLinesIn(p *Program) bool {
	for _, l := range p.lines {
		if l != nil {
			return true
		}
	}
	return false
}

// Break sets a breakpoint at loc; cond, when not nil, decides at each
// arrival whether to stop (condText describes it).
func (s *Session) Break(loc Location, cond func(*Session) bool, condText string) (*Breakpoint, error) {
	pcs, err := s.resolve(s.cfg.Program, loc)
	if err != nil {
		return nil, fmt.Errorf("break %s: %w", loc, err)
	}
	b := &Breakpoint{ID: s.nextBP, Loc: loc, Cond: cond, CondText: condText, PCs: pcs}
	s.nextBP++
	s.bps = append(s.bps, b)
	s.bpChanged()
	return b, nil
}

// DeleteBreakpoint removes a breakpoint by id.
func (s *Session) DeleteBreakpoint(id int) error {
	n := len(s.bps)
	s.bps = slices.DeleteFunc(s.bps, func(b *Breakpoint) bool { return b.ID == id })
	if len(s.bps) == n {
		return fmt.Errorf("no breakpoint %d", id)
	}
	s.bpChanged()
	return nil
}

// EnableBreakpoint enables or disables a breakpoint.
func (s *Session) EnableBreakpoint(id int, on bool) error {
	for _, b := range s.bps {
		if b.ID == id {
			b.Disabled = !on
			s.bpChanged()
			return nil
		}
	}
	return fmt.Errorf("no breakpoint %d", id)
}

// Breakpoints lists the breakpoints.
func (s *Session) Breakpoints() []Breakpoint {
	out := make([]Breakpoint, len(s.bps))
	for i, b := range s.bps {
		out[i] = *b
	}
	return out
}

func (s *Session) bpChanged() {
	s.bpBits = map[*Program][]bool{}
	s.m.bp = s.bitsFor(s.m.prog)
	s.m.bpOn = len(s.bps) > 0
}

// bitsFor marks the slots of p where an enabled breakpoint is; nil when
// none is.
func (s *Session) bitsFor(p *Program) []bool {
	if bits, ok := s.bpBits[p]; ok {
		return bits
	}
	var bits []bool
	for _, b := range s.bps {
		if b.Disabled {
			continue
		}
		pcs, err := s.resolve(p, b.Loc)
		if err != nil {
			continue
		}
		for _, pc := range pcs {
			if bits == nil {
				bits = make([]bool, len(p.insns))
			}
			bits[pc] = true
		}
	}
	s.bpBits[p] = bits
	return bits
}

// breakHere decides whether a breakpoint at the current slot stops: one
// whose condition holds (or that has none) does.
func (s *Session) breakHere() bool {
	m := s.m
	for _, b := range s.bps {
		if b.Disabled {
			continue
		}
		pcs, err := s.resolve(m.prog, b.Loc)
		if err != nil || !slices.Contains(pcs, int(m.pc)) {
			continue
		}
		if b.Cond != nil && !b.Cond(s) {
			continue
		}
		b.Hits++
		s.lastBP = b.ID
		return true
	}
	return false
}

// Watch stops a session when watched bytes change.
type Watch struct {
	ID int `json:"id"`
	// Addr and Len: memory at an address (stack, packet, context).
	Addr uint64 `json:"addr,omitempty"`
	Len  int    `json:"len"`
	// Map, Key and Offset: bytes of a map entry's value, followed across
	// updates of the entry (a new element after an update, gone after a
	// delete).
	Map    string `json:"map,omitempty"`
	Key    []byte `json:"key,omitempty"`
	Offset int    `json:"offset"`
	// Cond, when set, must also hold for the session to stop.
	Cond     func(*Session) bool `json:"-"`
	CondText string              `json:"condition,omitempty"`
	Hits     int                 `json:"hits"`
	// Text describes what is watched.
	Text string `json:"text"`

	region int32
	last   []byte
	lastOK bool
}

// WatchHit is a watched value that changed: Old and New are its bytes
// (nil and Present false when a map entry was absent).
type WatchHit struct {
	ID         int    `json:"id"`
	Text       string `json:"text"`
	Old        []byte `json:"old"`
	New        []byte `json:"new"`
	OldPresent bool   `json:"old_present"`
	NewPresent bool   `json:"new_present"`
	w          *Watch
}

// WatchAddr watches n bytes at addr. An address inside a map value
// watches that entry's value (see Watch).
func (s *Session) WatchAddr(addr uint64, n int, cond func(*Session) bool, condText string) (*Watch, error) {
	m := s.m
	r, off, ok := m.resolve(addr, uint32(n))
	if !ok || n <= 0 {
		return nil, fmt.Errorf("watch %d bytes at %s: %s", n, m.describeAddr(addr), m.describeAccess(addr, uint32(n), false))
	}
	if r.kind == RegionMapValue {
		return s.WatchMapValue(r.mp.name, r.key, int(off), n, cond, condText)
	}
	if r.ctx != nil {
		return nil, fmt.Errorf("watch %s: the context's fields are computed; watch the packet or the stack", m.describeAddr(addr))
	}
	w := &Watch{ID: s.nextBP, Addr: addr, Len: n, Cond: cond, CondText: condText, region: int32((addr >> idShift) & idMask),
		Text: fmt.Sprintf("%d bytes at %s", n, m.describeAddr(addr))}
	s.nextBP++
	s.watches = append(s.watches, w)
	s.markWatches(m)
	w.last, w.lastOK = s.watchValue(w)
	return w, nil
}

// WatchMapValue watches n bytes at off in the value of key in map (this
// CPU's value, for per-CPU maps): the watch follows the entry through
// updates, deletes and re-inserts.
func (s *Session) WatchMapValue(mapName string, key []byte, off, n int, cond func(*Session) bool, condText string) (*Watch, error) {
	v, err := s.view(mapName)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if len(key) != int(v.keySize) {
		return nil, fmt.Errorf("watch %s: a key of %s is %d bytes, got %d", mapName, mapName, v.keySize, len(key))
	}
	if off < 0 || n <= 0 || off+n > int(v.valueSize) {
		return nil, fmt.Errorf("watch %s: bytes %d..%d are outside its %d-byte values", mapName, off, off+n, v.valueSize)
	}
	w := &Watch{ID: s.nextBP, Map: mapName, Key: bytes.Clone(key), Offset: off, Len: n, Cond: cond, CondText: condText, region: -1,
		Text: fmt.Sprintf("%s[%s] bytes %d..%d", mapName, formatKey(v, key), off, off+n)}
	s.nextBP++
	s.watches = append(s.watches, w)
	s.markWatches(s.m)
	w.last, w.lastOK = s.watchValue(w)
	return w, nil
}

// DeleteWatch removes a watchpoint by id.
func (s *Session) DeleteWatch(id int) error {
	n := len(s.watches)
	s.watches = slices.DeleteFunc(s.watches, func(w *Watch) bool { return w.ID == id })
	if len(s.watches) == n {
		return fmt.Errorf("no watchpoint %d", id)
	}
	return nil
}

// Watches lists the watchpoints.
func (s *Session) Watches() []Watch {
	out := make([]Watch, len(s.watches))
	for i, w := range s.watches {
		out[i] = *w
	}
	return out
}

// view finds a map of the session by name.
func (s *Session) view(name string) (*mapView, error) {
	var names []string
	for _, vs := range s.m.env.bound {
		for _, v := range vs {
			if v.name == name {
				return v, nil
			}
			names = append(names, v.name)
		}
	}
	sort.Strings(names)
	return nil, fmt.Errorf("the program has no map %q; its maps: %s", name, strings.Join(slices.Compact(names), ", "))
}

// markWatches flags the regions and maps watches look at, so that stores
// to them check the watches.
func (s *Session) markWatches(m *machine) {
	if m.env.watchedMaps == nil {
		m.env.watchedMaps = map[string]bool{}
	}
	for _, w := range s.watches {
		switch {
		case w.Map != "":
			m.env.watchedMaps[w.Map] = true
			for _, r := range m.regions {
				if r.kind == RegionMapValue && r.mp.name == w.Map && bytes.Equal(r.key, w.Key) {
					r.watch = true
				}
			}
		case int(w.region) < len(m.regions):
			m.regions[w.region].watch = true
		}
	}
}

// applyWatches flags a new map value region that a watch looks at.
func (s *Session) applyWatches(r *region) {
	for _, w := range s.watches {
		if w.Map != "" && r.mp != nil && r.mp.name == w.Map && bytes.Equal(r.key, w.Key) {
			r.watch = true
		}
	}
}

// watchValue reads a watch's bytes now.
func (s *Session) watchValue(w *Watch) ([]byte, bool) {
	m := s.m
	if w.Map == "" {
		if int(w.region) >= len(m.regions) {
			return nil, false
		}
		r := m.regions[w.region]
		off := uint32(w.Addr & offMask)
		if off+uint32(w.Len) > uint32(len(r.buf)) {
			return nil, false
		}
		return bytes.Clone(r.buf[off : off+uint32(w.Len)]), true
	}
	v, err := s.view(w.Map)
	if err != nil {
		return nil, false
	}
	e, ok := v.entries[string(w.Key)]
	if !ok {
		// Never touched: as the kernel has it.
		val, present, err := v.src.lookup(w.Key)
		if err != nil || !present {
			return nil, false
		}
		return bytes.Clone(s.cpuSlice(v, val)[w.Offset : w.Offset+w.Len]), true
	}
	if !e.ok {
		return nil, false
	}
	return bytes.Clone(s.cpuSlice(v, e.val)[w.Offset : w.Offset+w.Len]), true
}

func (s *Session) cpuSlice(v *mapView, val []byte) []byte {
	if isPerCPU(v.typ) {
		cpu := s.m.env.cpu
		return val[cpu*int(v.valueSize) : (cpu+1)*int(v.valueSize)]
	}
	return val
}

// watchChanged is called after a store to watched memory.
func (s *Session) watchChanged(m *machine) bool {
	if s.replaying {
		return false
	}
	var hit *WatchHit
	for _, w := range s.watches {
		cur, ok := s.watchValue(w)
		if ok == w.lastOK && bytes.Equal(cur, w.last) {
			continue
		}
		if hit == nil {
			hit = &WatchHit{ID: w.ID, Text: w.Text, Old: w.last, New: cur, OldPresent: w.lastOK, NewPresent: ok, w: w}
		}
		w.last, w.lastOK = cur, ok
	}
	if hit != nil {
		s.hit = hit
		return true
	}
	return false
}

// refreshWatches takes the watched values as they are now (after moving
// backwards or an edit).
func (s *Session) refreshWatches() {
	for _, w := range s.watches {
		w.last, w.lastOK = s.watchValue(w)
	}
}

type watchSnap struct {
	val []byte
	ok  bool
}

func (s *Session) watchValues() []watchSnap {
	out := make([]watchSnap, len(s.watches))
	for i, w := range s.watches {
		out[i].val, out[i].ok = s.watchValue(w)
	}
	return out
}

// watchDiff reports the first watch whose value differs from before
// (going backwards: the undone instruction changed it).
func (s *Session) watchDiff(before []watchSnap) *WatchHit {
	for i, w := range s.watches {
		if i >= len(before) {
			break
		}
		cur, ok := s.watchValue(w)
		if ok == before[i].ok && bytes.Equal(cur, before[i].val) {
			continue
		}
		if w.Cond != nil && !w.Cond(s) {
			continue
		}
		w.Hits++
		// Going backwards, the instruction about to run changes the
		// value from what it is now to what it was a step later.
		return &WatchHit{ID: w.ID, Text: w.Text, Old: cur, New: before[i].val, OldPresent: ok, NewPresent: before[i].ok, w: w}
	}
	return nil
}
