// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// DWARF of BPF objects. Go's (*elf.File).DWARF refuses EM_BPF
// ("applyRelocations: not implemented"), so the engine applies the
// .rel.debug_* relocations itself: REL entries of 16 bytes (offset, info
// = symbol<<32 | type); R_BPF_64_ABS64 (2) adds the symbol's value to 8
// bytes, R_BPF_64_ABS32 (3) and R_BPF_64_NODYLD32 (4) to 4 bytes.
//
// Every code section of a BPF object starts at address 0, so addresses
// from different sections would collide. Relocations against code get
// the section's index in the upper 32 bits as well: a DWARF address is
// then section<<32 | byte offset, and maps to one instruction.

// ErrNoDWARF is returned when an object has no debug info.
var ErrNoDWARF = errors.New("the object has no DWARF (it was built without clang -g, or stripped: bpf2go strips unless given -no-strip, llvm-strip -g drops it)")

// debugInfo is an object's DWARF, ready to answer questions about
// variables.
type debugInfo struct {
	d        *dwarf.Data
	addr     []byte // .debug_addr, relocated
	loclists []byte // .debug_loclists
	// syms are the object's function symbols: section and offset.
	syms map[string]elfSym
	// units are the compile units, with their variables' scopes.
	funcs []*dwarfFunc
}

type elfSym struct {
	section int
	value   uint64 // byte offset in its section
}

// dwarfFunc is a function (subprogram) and what is in scope in it.
type dwarfFunc struct {
	name   string
	ranges [][2]uint64
	// vars are its parameters and locals, with the ranges of the lexical
	// block that declares them (nil: the whole function).
	vars []*dwarfVar
	cu   *dwarf.Entry
}

// dwarfVar is one variable as DWARF describes it.
type dwarfVar struct {
	name  string
	param bool
	typ   dwarf.Type
	scope [][2]uint64 // nil: the function's
	// loc is the location expression when it holds everywhere;
	// locList is the offset of its location list otherwise.
	loc     []byte
	hasLoc  bool
	locList int64
	isList  bool
	inlined string // the inlined function it belongs to
}

// debug returns the object's DWARF, parsed on first use.
func (o *Object) debug() (*debugInfo, error) {
	o.dwarfOnce.Do(func() { o.dwarf, o.dwarfErr = loadDWARF(o.elf) })
	return o.dwarf, o.dwarfErr
}

// HasDWARF reports whether the object carries debug info for variables.
func (o *Object) HasDWARF() bool {
	d, err := o.debug()
	return err == nil && d != nil
}

func loadDWARF(data []byte) (*debugInfo, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Section(".debug_info") == nil {
		return nil, ErrNoDWARF
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("read the symbol table: %w", err)
	}
	sections := map[string][]byte{}
	for _, name := range []string{"abbrev", "info", "line", "str", "addr", "line_str", "loclists", "rnglists", "str_offsets", "frame", "aranges", "ranges"} {
		s := f.Section(".debug_" + name)
		if s == nil {
			continue
		}
		b, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read .debug_%s: %w", name, err)
		}
		if rel := f.Section(".rel.debug_" + name); rel != nil {
			rb, err := rel.Data()
			if err != nil {
				return nil, fmt.Errorf("read .rel.debug_%s: %w", name, err)
			}
			if err := relocate(f, b, rb, syms); err != nil {
				return nil, fmt.Errorf("relocate .debug_%s: %w", name, err)
			}
		}
		sections[name] = b
	}
	d, err := dwarf.New(sections["abbrev"], sections["aranges"], sections["frame"], sections["info"], sections["line"], nil, sections["ranges"], sections["str"])
	if err != nil {
		return nil, fmt.Errorf("parse DWARF: %w", err)
	}
	for _, name := range []string{"addr", "line_str", "loclists", "rnglists", "str_offsets"} {
		if b, ok := sections[name]; ok {
			if err := d.AddSection(".debug_"+name, b); err != nil {
				return nil, fmt.Errorf("parse .debug_%s: %w", name, err)
			}
		}
	}
	di := &debugInfo{d: d, addr: sections["addr"], loclists: sections["loclists"], syms: map[string]elfSym{}}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC || elf.ST_TYPE(s.Info) == elf.STT_NOTYPE && int(s.Section) < len(f.Sections) && s.Section != elf.SHN_UNDEF &&
			f.Sections[s.Section].Flags&elf.SHF_EXECINSTR != 0 {
			if _, ok := di.syms[s.Name]; !ok || elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				di.syms[s.Name] = elfSym{section: int(s.Section), value: s.Value}
			}
		}
	}
	if err := di.index(); err != nil {
		return nil, err
	}
	return di, nil
}

// BPF relocation types.
const (
	rBPF64Abs64    = 2
	rBPF64Abs32    = 3
	rBPF64NoDyld32 = 4
)

// relocate applies REL entries to a debug section's bytes.
func relocate(f *elf.File, b, rel []byte, syms []elf.Symbol) error {
	if len(rel)%16 != 0 {
		return fmt.Errorf("%d bytes of relocations, not a multiple of 16", len(rel))
	}
	for i := 0; i < len(rel); i += 16 {
		off := binary.LittleEndian.Uint64(rel[i:])
		info := binary.LittleEndian.Uint64(rel[i+8:])
		symIdx, typ := info>>32, uint32(info)
		if symIdx == 0 || int(symIdx) > len(syms) {
			continue
		}
		// Symbols() leaves out the null symbol at index 0.
		sym := syms[symIdx-1]
		value := sym.Value
		if int(sym.Section) < len(f.Sections) && sym.Section != elf.SHN_UNDEF && f.Sections[sym.Section].Flags&elf.SHF_EXECINSTR != 0 {
			value += uint64(sym.Section) << 32
		}
		switch typ {
		case rBPF64Abs64:
			if off+8 > uint64(len(b)) {
				return fmt.Errorf("relocation at %d past the section's end", off)
			}
			binary.LittleEndian.PutUint64(b[off:], binary.LittleEndian.Uint64(b[off:])+value)
		case rBPF64Abs32, rBPF64NoDyld32:
			if off+4 > uint64(len(b)) {
				return fmt.Errorf("relocation at %d past the section's end", off)
			}
			binary.LittleEndian.PutUint32(b[off:], binary.LittleEndian.Uint32(b[off:])+uint32(value))
		default:
			return fmt.Errorf("relocation type %d is not one BPF objects use", typ)
		}
	}
	return nil
}

// index walks the DWARF for functions and the variables in them.
func (di *debugInfo) index() error {
	r := di.d.Reader()
	var cu *dwarf.Entry
	type scope struct {
		fn     *dwarfFunc
		ranges [][2]uint64
		inl    string
	}
	var stack []scope
	depth := 0
	var scopeAt []int // depth at which each stack entry was pushed
	for {
		e, err := r.Next()
		if err != nil {
			return fmt.Errorf("read DWARF: %w", err)
		}
		if e == nil {
			return nil
		}
		if e.Tag == 0 {
			depth--
			for len(scopeAt) > 0 && scopeAt[len(scopeAt)-1] >= depth {
				stack, scopeAt = stack[:len(stack)-1], scopeAt[:len(scopeAt)-1]
			}
			continue
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			cu = e
		case dwarf.TagSubprogram:
			ranges, _ := di.d.Ranges(e)
			if len(ranges) > 0 {
				name, _ := e.Val(dwarf.AttrName).(string)
				fn := &dwarfFunc{name: name, ranges: ranges, cu: cu}
				di.funcs = append(di.funcs, fn)
				if e.Children {
					stack, scopeAt = append(stack, scope{fn: fn}), append(scopeAt, depth)
				}
			}
		case dwarf.TagLexDwarfBlock, dwarf.TagInlinedSubroutine:
			if len(stack) > 0 && e.Children {
				ranges, _ := di.d.Ranges(e)
				sc := scope{fn: stack[len(stack)-1].fn, ranges: ranges, inl: stack[len(stack)-1].inl}
				if e.Tag == dwarf.TagInlinedSubroutine {
					sc.inl = di.originName(e)
				}
				stack, scopeAt = append(stack, sc), append(scopeAt, depth)
			}
		case dwarf.TagVariable, dwarf.TagFormalParameter:
			if len(stack) == 0 {
				break
			}
			sc := stack[len(stack)-1]
			v := di.variable(e, cu)
			if v == nil {
				break
			}
			v.scope, v.inlined = sc.ranges, sc.inl
			sc.fn.vars = append(sc.fn.vars, v)
		}
		if e.Children {
			depth++
		}
	}
}

// originName is the name of an inlined function.
func (di *debugInfo) originName(e *dwarf.Entry) string {
	if off, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
		r := di.d.Reader()
		r.Seek(off)
		if o, err := r.Next(); err == nil && o != nil {
			name, _ := o.Val(dwarf.AttrName).(string)
			return name
		}
	}
	return ""
}

// variable reads one variable's name, type and location.
func (di *debugInfo) variable(e *dwarf.Entry, cu *dwarf.Entry) *dwarfVar {
	v := &dwarfVar{param: e.Tag == dwarf.TagFormalParameter}
	src := e
	if off, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
		r := di.d.Reader()
		r.Seek(off)
		if o, err := r.Next(); err == nil && o != nil {
			src = o
		}
	}
	v.name, _ = src.Val(dwarf.AttrName).(string)
	if v.name == "" || len(v.name) > 4 && v.name[:4] == "____" {
		return nil // clang's hidden printk format strings
	}
	if off, ok := src.Val(dwarf.AttrType).(dwarf.Offset); ok {
		v.typ, _ = di.d.Type(off)
	}
	f := e.AttrField(dwarf.AttrLocation)
	if f == nil {
		return v // optimized out
	}
	switch f.Class {
	case dwarf.ClassExprLoc:
		v.loc, v.hasLoc = f.Val.([]byte), true
	case dwarf.ClassLocList:
		// DW_FORM_loclistx: Go hands over the index, unresolved (as a
		// uint64, whatever its documentation says of the class).
		var idx int64
		switch x := f.Val.(type) {
		case int64:
			idx = x
		case uint64:
			idx = int64(x)
		}
		v.locList, v.isList = di.loclistxOffset(cu, idx), true
	case dwarf.ClassLocListPtr:
		// DW_FORM_sec_offset: an offset into .debug_loclists.
		v.locList, _ = f.Val.(int64)
		v.isList = true
	}
	return v
}

// loclistxOffset turns a DW_FORM_loclistx index into an offset in
// .debug_loclists: the unit's DW_AT_loclists_base points at an array of
// 4-byte offsets relative to itself.
func (di *debugInfo) loclistxOffset(cu *dwarf.Entry, idx int64) int64 {
	base, ok := cu.Val(dwarf.AttrLoclistsBase).(int64)
	if !ok {
		base = 12
	}
	at := base + idx*4
	if at+4 > int64(len(di.loclists)) {
		return -1
	}
	return base + int64(binary.LittleEndian.Uint32(di.loclists[at:]))
}

// addrx reads entry idx of the unit's part of .debug_addr.
func (di *debugInfo) addrx(cu *dwarf.Entry, idx uint64) uint64 {
	base, ok := cu.Val(dwarf.AttrAddrBase).(int64)
	if !ok {
		base = 8
	}
	at := uint64(base) + idx*8
	if at+8 > uint64(len(di.addr)) {
		return 0
	}
	return binary.LittleEndian.Uint64(di.addr[at:])
}

// locAt returns the location expression of v at address pc (nil: none,
// the variable is optimized out there).
func (di *debugInfo) locAt(fn *dwarfFunc, v *dwarfVar, pc uint64) []byte {
	var out []byte
	di.walkLoc(fn, v, func(lo, hi uint64, e []byte, dflt bool) bool {
		if dflt || pc >= lo && pc < hi {
			out = e
			return false
		}
		return true
	})
	return out
}

// walkLoc calls visit with each entry of v's location (lo..hi in DWARF
// addresses; dflt for a default location, which holds everywhere else)
// until visit returns false.
func (di *debugInfo) walkLoc(fn *dwarfFunc, v *dwarfVar, visit func(lo, hi uint64, e []byte, dflt bool) bool) {
	if !v.isList {
		if v.hasLoc {
			visit(0, 0, v.loc, true)
		}
		return
	}
	if v.locList < 0 || v.locList >= int64(len(di.loclists)) {
		return
	}
	b := di.loclists[v.locList:]
	base := uint64(0)
	if fn.cu != nil {
		if lo, ok := fn.cu.Val(dwarf.AttrLowpc).(uint64); ok {
			base = lo
		}
	}
	uleb := func() uint64 {
		var v uint64
		for shift := uint(0); len(b) > 0; shift += 7 {
			c := b[0]
			b = b[1:]
			v |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
		}
		return v
	}
	expr := func() []byte {
		n := uleb()
		if n > uint64(len(b)) {
			b = nil
			return nil
		}
		e := b[:n]
		b = b[n:]
		return e
	}
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		switch kind {
		case 0x00: // DW_LLE_end_of_list
			return
		case 0x01: // DW_LLE_base_addressx
			base = di.addrx(fn.cu, uleb())
		case 0x02: // DW_LLE_startx_endx
			lo, hi := di.addrx(fn.cu, uleb()), di.addrx(fn.cu, uleb())
			if e := expr(); !visit(lo, hi, e, false) {
				return
			}
		case 0x03: // DW_LLE_startx_length
			lo := di.addrx(fn.cu, uleb())
			n := uleb()
			if e := expr(); !visit(lo, lo+n, e, false) {
				return
			}
		case 0x04: // DW_LLE_offset_pair
			lo, hi := base+uleb(), base+uleb()
			if e := expr(); !visit(lo, hi, e, false) {
				return
			}
		case 0x05: // DW_LLE_default_location
			if e := expr(); e != nil && !visit(0, 0, e, true) {
				return
			}
		case 0x06: // DW_LLE_base_address
			if len(b) < 8 {
				return
			}
			base = binary.LittleEndian.Uint64(b)
			b = b[8:]
		case 0x07, 0x08: // DW_LLE_start_end, DW_LLE_start_length
			if len(b) < 8 {
				return
			}
			lo := binary.LittleEndian.Uint64(b)
			b = b[8:]
			var hi uint64
			if kind == 0x07 {
				if len(b) < 8 {
					return
				}
				hi = binary.LittleEndian.Uint64(b)
				b = b[8:]
			} else {
				hi = lo + uleb()
			}
			if e := expr(); !visit(lo, hi, e, false) {
				return
			}
		default:
			return
		}
	}
	return
}

// funcAt finds the function whose ranges hold pc.
func (di *debugInfo) funcAt(pc uint64) *dwarfFunc {
	for _, fn := range di.funcs {
		if inRanges(fn.ranges, pc) {
			return fn
		}
	}
	return nil
}

func inRanges(ranges [][2]uint64, pc uint64) bool {
	for _, r := range ranges {
		if pc >= r[0] && pc < r[1] {
			return true
		}
	}
	return false
}
