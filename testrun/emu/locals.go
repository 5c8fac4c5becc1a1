// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// VarKind says where a variable's value is.
type VarKind uint8

// Variable kinds.
const (
	VarOptimizedOut VarKind = iota // no location here
	VarRegister                    // in a register
	VarMemory                      // in memory (a stack slot, mostly)
	VarComputed                    // a value DWARF computes (a register plus a constant)
	VarUnsupported                 // a location expression the engine does not read
)

// Var is a variable in scope at the current instruction of a frame.
type Var struct {
	Name  string `json:"name"`
	Param bool   `json:"param"`
	// Inlined names the inlined function the variable belongs to.
	Inlined string `json:"inlined,omitempty"`
	// TypeName is the C type ("struct flow_stats *"); Type the object's
	// BTF type of that name when it has one (for formatting values);
	// DWARF the DWARF type; Size the value's size in bytes.
	TypeName string     `json:"type"`
	Type     btf.Type   `json:"-"`
	DWARF    dwarf.Type `json:"-"`
	Size     int        `json:"size"`
	Kind     VarKind    `json:"kind"`
	// Reg is the register (VarRegister); Addr the address (VarMemory);
	// Value the value (VarRegister, VarComputed).
	Reg   int    `json:"reg,omitempty"`
	Addr  uint64 `json:"addr,omitempty"`
	Value uint64 `json:"value,omitempty"`
	// Where says it in words: "r6", "stack frame 0 -8", "r9+14",
	// "optimized out".
	Where string `json:"where"`
	// HeldIn is, for a variable optimized out here, the register that
	// holds its value all the same (-1: none known); HeldWhy says how that
	// is known, and Value is the register's value.
	HeldIn  int    `json:"-"`
	HeldWhy string `json:"held_why,omitempty"`
	// HeldReg is HeldIn's name ("r6"), for JSON.
	HeldReg string `json:"held_in,omitempty"`
}

// Locals lists the variables (parameters first) in scope at frame's
// current instruction (frame 0 is the innermost, as in Backtrace), with
// where their values are now. It needs the object's DWARF.
func (s *Session) Locals(frame int) ([]Var, error) {
	m := s.m
	if frame < 0 || frame >= len(m.frames) {
		return nil, fmt.Errorf("no frame %d: the stack has %d", frame, len(m.frames))
	}
	depth := len(m.frames) - 1 - frame
	f := m.frames[depth]
	pc := int(m.pc)
	if frame > 0 {
		pc = int(m.frames[depth+1].retPC) - 1 // the call instruction
	}
	p := f.prog
	if p.Object == nil {
		return nil, errors.New("locals: this program was rebuilt from the kernel's instructions, which carry no C variables; name its object to see them: debug REF object FILE.o")
	}
	di, err := p.Object.debug()
	if err != nil {
		return nil, fmt.Errorf("locals: %w", err)
	}
	addr, ok := p.dwarfAddr(di, pc)
	if !ok {
		return nil, fmt.Errorf("locals: instruction %d has no place in the object's DWARF", pc)
	}
	fn := di.funcAt(addr)
	if fn == nil {
		return nil, fmt.Errorf("locals: the DWARF describes no function at instruction %d", pc)
	}
	regs := s.frameRegs(depth)
	sp := regs[10] - uint64(p.frameSize(pc))
	var params, locals []Var
	for _, dv := range fn.vars {
		if dv.scope != nil && !inRanges(dv.scope, addr) {
			continue
		}
		v := Var{Name: dv.name, Param: dv.param, Inlined: dv.inlined, DWARF: dv.typ}
		if dv.typ != nil {
			v.TypeName, v.Size = cTypeName(dv.typ), int(dv.typ.Size())
			v.Type = p.Object.btfType(dv.typ)
		}
		s.place(&v, di.locAt(fn, dv, addr), regs, sp, depth)
		v.HeldIn = -1
		if v.Kind == VarOptimizedOut && frame == 0 {
			s.heldIn(&v, di, fn, dv, p, pc)
		}
		if v.Param {
			params = append(params, v)
		} else {
			locals = append(locals, v)
		}
	}
	return append(params, locals...), nil
}

// frameRegs are a frame's registers as far as they are known: all of
// them for the innermost frame; for callers, r6..r10 (which calls keep)
// from the frame above, and nothing else.
func (s *Session) frameRegs(depth int) [11]uint64 {
	m := s.m
	var regs [11]uint64
	if depth == len(m.frames)-1 {
		copy(regs[:], m.r[:11])
		return regs
	}
	copy(regs[6:], m.frames[depth+1].saved[:])
	return regs
}

// place evaluates a location expression.
func (s *Session) place(v *Var, expr []byte, regs [11]uint64, sp uint64, depth int) {
	if expr == nil {
		v.Kind, v.Where = VarOptimizedOut, "optimized out"
		return
	}
	outer := depth != len(s.m.frames)-1
	reg := func(n int) (uint64, bool) {
		if n == 10 {
			return sp, true
		}
		if n < 0 || n > 10 || outer && n < 6 {
			return 0, false
		}
		return regs[n], true
	}
	var stack []uint64
	b := expr
	sleb := func() int64 {
		var v int64
		var shift uint
		for len(b) > 0 {
			c := b[0]
			b = b[1:]
			v |= int64(c&0x7f) << shift
			shift += 7
			if c < 0x80 {
				if shift < 64 && c&0x40 != 0 {
					v |= -1 << shift
				}
				break
			}
		}
		return v
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
	unsupported := func(why string) {
		v.Kind, v.Where = VarUnsupported, "location not read by the engine: "+why
	}
	value := false
	for len(b) > 0 {
		op := b[0]
		b = b[1:]
		switch {
		case op >= 0x50 && op <= 0x5a: // DW_OP_reg0..10
			n := int(op - 0x50)
			if n == 10 || outer && n < 6 {
				unsupported(fmt.Sprintf("r%d of a caller", n))
				return
			}
			v.Kind, v.Reg, v.Value, v.Where = VarRegister, n, regs[n], fmt.Sprintf("r%d", n)
			return
		case op >= 0x70 && op <= 0x7a: // DW_OP_breg0..10
			n := int(op - 0x70)
			off := sleb()
			r, ok := reg(n)
			if !ok {
				unsupported(fmt.Sprintf("r%d of a caller", n))
				return
			}
			stack = append(stack, r+uint64(off))
		case op == 0x91: // DW_OP_fbreg: the frame base is LLVM's BPF SP
			stack = append(stack, sp+uint64(sleb()))
		case op >= 0x30 && op <= 0x4f: // DW_OP_lit0..31
			stack = append(stack, uint64(op-0x30))
		case op == 0x10: // DW_OP_constu
			stack = append(stack, uleb())
		case op == 0x11: // DW_OP_consts
			stack = append(stack, uint64(sleb()))
		case op == 0x23: // DW_OP_plus_uconst
			if len(stack) == 0 {
				unsupported("plus_uconst on an empty stack")
				return
			}
			stack[len(stack)-1] += uleb()
		case op == 0x9f: // DW_OP_stack_value
			value = true
		default:
			unsupported(fmt.Sprintf("DWARF operation 0x%02x", op))
			return
		}
	}
	if len(stack) == 0 {
		unsupported("an empty expression")
		return
	}
	top := stack[len(stack)-1]
	if value {
		v.Kind, v.Value, v.Where = VarComputed, top, s.m.valueText(top)
		return
	}
	v.Kind, v.Addr, v.Where = VarMemory, top, s.m.describeAddr(top)
}

// VarValue reads a variable's bytes (Size of them): a register's low
// bytes, memory, or the computed value.
func (s *Session) VarValue(v Var) ([]byte, error) {
	size := max(v.Size, 1)
	switch v.Kind {
	case VarRegister, VarComputed:
		b := binary.LittleEndian.AppendUint64(nil, v.Value)
		if size <= 8 {
			return b[:size], nil
		}
		return nil, fmt.Errorf("%s: a %d-byte value in a register", v.Name, size)
	case VarMemory:
		return s.Read(v.Addr, size)
	}
	return nil, fmt.Errorf("%s: %s", v.Name, v.Where)
}

// dwarfAddr is the DWARF address of slot pc: its function's section in
// the upper half, the byte offset in that section in the lower.
func (p *Program) dwarfAddr(di *debugInfo, pc int) (uint64, bool) {
	f, ok := p.FuncAt(pc)
	if !ok {
		return 0, false
	}
	sym, ok := di.syms[f.Name]
	if !ok {
		return 0, false
	}
	return uint64(sym.section)<<32 | (sym.value + uint64(pc-f.Start)*8), true
}

// PCForDWARF maps a DWARF address of the object to a slot of p, if one of
// p's functions holds it.
func (p *Program) PCForDWARF(addr uint64) (int, bool) {
	if p.Object == nil {
		return 0, false
	}
	di, err := p.Object.debug()
	if err != nil {
		return 0, false
	}
	for _, f := range p.funcs {
		sym, ok := di.syms[f.Name]
		if !ok || uint64(sym.section) != addr>>32 {
			continue
		}
		lo := sym.value
		hi := lo + uint64(f.End-f.Start)*8
		if off := addr & 0xffffffff; off >= lo && off < hi {
			return f.Start + int((off-lo)/8), true
		}
	}
	return 0, false
}

// frameSize is the stack size LLVM gave the function holding pc, which
// its DWARF counts from: LLVM's BPF backend describes stack slots from
// the bottom of the frame (r10 - size), not from r10. BTF does not record
// the size, so it is read off the code: the deepest r10-relative slot the
// function touches, rounded up to 8 bytes.
func (p *Program) frameSize(pc int) int {
	f, ok := p.FuncAt(pc)
	if !ok {
		return 0
	}
	deepest := 0
	fromR10 := map[uint8]bool{}
	for i := f.Start; i < f.End; i++ {
		in := &p.insns[i]
		switch {
		case in.op >= xLdxB && in.op <= xLdxSW && in.src == 10,
			in.op >= xStB && in.op <= xAtomicDW && in.dst == 10:
			if in.off < 0 {
				deepest = max(deepest, -int(in.off))
			}
		case in.op == xMov64X && in.src == 10:
			fromR10[in.dst] = true
			continue
		case (in.op == xAdd64K) && fromR10[in.dst]:
			if in.imm < 0 {
				deepest = max(deepest, -int(in.imm))
			}
			continue
		}
		if in.wreg != noReg {
			delete(fromR10, in.wreg)
		}
	}
	return (deepest + 7) &^ 7
}

// btfType finds the object's BTF type for a DWARF type, by name.
func (o *Object) btfType(t dwarf.Type) btf.Type {
	if o.spec == nil || o.spec.Types == nil || t == nil {
		return nil
	}
	find := func(name string, typ any) btf.Type {
		switch x := typ.(type) {
		case **btf.Struct:
			if o.spec.Types.TypeByName(name, x) == nil {
				return *x
			}
		case **btf.Union:
			if o.spec.Types.TypeByName(name, x) == nil {
				return *x
			}
		case **btf.Typedef:
			if o.spec.Types.TypeByName(name, x) == nil {
				return *x
			}
		case **btf.Int:
			if o.spec.Types.TypeByName(name, x) == nil {
				return *x
			}
		case **btf.Enum:
			if o.spec.Types.TypeByName(name, x) == nil {
				return *x
			}
		}
		return nil
	}
	switch u := t.(type) {
	case *dwarf.PtrType:
		target := o.btfType(u.Type)
		if target == nil {
			target = &btf.Void{}
		}
		return &btf.Pointer{Target: target}
	case *dwarf.StructType:
		if u.Kind == "union" {
			var x *btf.Union
			return find(u.StructName, &x)
		}
		var x *btf.Struct
		return find(u.StructName, &x)
	case *dwarf.TypedefType:
		var x *btf.Typedef
		if r := find(u.Name, &x); r != nil {
			return r
		}
		return o.btfType(u.Type)
	case *dwarf.QualType:
		return o.btfType(u.Type)
	case *dwarf.ArrayType:
		elem := o.btfType(u.Type)
		if elem == nil || u.Count < 0 {
			return nil
		}
		return &btf.Array{Index: &btf.Int{Size: 4}, Type: elem, Nelems: uint32(u.Count)}
	case *dwarf.EnumType:
		var x *btf.Enum
		return find(u.EnumName, &x)
	case *dwarf.IntType, *dwarf.UintType, *dwarf.CharType, *dwarf.UcharType, *dwarf.BoolType:
		var x *btf.Int
		if r := find(t.Common().Name, &x); r != nil {
			return r
		}
		enc := btf.Unsigned
		switch t.(type) {
		case *dwarf.IntType, *dwarf.CharType:
			enc = btf.Signed
		}
		return &btf.Int{Name: t.Common().Name, Size: uint32(t.Size()), Encoding: enc}
	}
	return nil
}

// cTypeName spells a DWARF type as C does ("struct xdp_md *"; Go's
// String says "*struct xdp_md").
func cTypeName(t dwarf.Type) string {
	switch u := t.(type) {
	case *dwarf.PtrType:
		return cTypeName(u.Type) + " *"
	case *dwarf.QualType:
		return u.Qual + " " + cTypeName(u.Type)
	case *dwarf.ArrayType:
		return fmt.Sprintf("%s[%d]", cTypeName(u.Type), u.Count)
	case *dwarf.StructType:
		if u.StructName == "" {
			return u.Kind + " {...}"
		}
		return u.Kind + " " + u.StructName
	case *dwarf.EnumType:
		return "enum " + u.EnumName
	case *dwarf.VoidType:
		return "void"
	case nil:
		return "void"
	}
	return t.String()
}

// heldIn looks for a register that holds an optimized-out variable's value
// at pc: the register DWARF gives as its location elsewhere in the
// function, when
//   - the session executed an instruction of that location's range in
//     this frame and nothing wrote the register since (the value's last
//     known location, from the undo journal), or
//   - the location starts a little further on, reached from pc in
//     straight-line code that writes the register nowhere.
func (s *Session) heldIn(v *Var, di *debugInfo, fn *dwarfFunc, dv *dwarfVar, p *Program, pc int) {
	type regRange struct {
		lo, hi int // slots
		reg    int
	}
	f, ok := p.FuncAt(pc)
	if !ok {
		return
	}
	base, ok := p.dwarfAddr(di, f.Start)
	if !ok {
		return
	}
	var ranges []regRange
	di.walkLoc(fn, dv, func(lo, hi uint64, e []byte, dflt bool) bool {
		if dflt || len(e) != 1 || e[0] < 0x50 || e[0] > 0x59 || lo < base || lo>>32 != base>>32 {
			return true
		}
		ranges = append(ranges, regRange{lo: f.Start + int(lo-base)/8, hi: f.Start + int(hi-base)/8, reg: int(e[0] - 0x50)})
		return true
	})
	if len(ranges) == 0 {
		return
	}
	m := s.m
	set := func(reg int, why string) {
		v.HeldIn, v.HeldWhy, v.Value, v.HeldReg = reg, why, m.r[reg], fmt.Sprintf("r%d", reg)
		v.Where = fmt.Sprintf("optimized out; r%d holds its value (%s)", reg, why)
	}
	// The last known location: walk the journal back while in this frame.
	if m.j.on {
		depth := uint8(len(m.frames))
		var written uint16
		var pending uint16
		steps := uint64(0)
		for i := m.j.n - 1; i >= 0 && m.j.n-1-i < 1<<16; i-- {
			r := m.j.ring[(m.j.head+i)&m.j.mask]
			switch r.kind {
			case recReg:
				pending |= 1 << r.reg
				continue
			case recStep:
			default:
				continue
			}
			steps++
			mine := pending
			pending = 0
			if r.reg != noReg {
				mine |= 1 << r.reg
			}
			if r.size < depth {
				return // the frame was not there yet
			}
			if r.size > depth {
				written |= 0x3f // a callee: r0..r5 are not kept
				continue
			}
			if int(r.pc) < len(p.insns) {
				if op := p.insns[r.pc].op; op == xCallHelper || op == xCallLocal || op == xCallKfunc {
					mine |= 0x3f
				}
			}
			for _, rr := range ranges {
				if int(r.pc) >= rr.lo && int(r.pc) < rr.hi && (written|mine)&(1<<rr.reg) == 0 {
					set(rr.reg, fmt.Sprintf("its location at instruction %d, %d step(s) ago; not written since", r.pc, steps))
					return
				}
			}
			written |= mine
		}
	}
	// The next location, straight ahead.
	for _, rr := range ranges {
		if rr.lo <= pc || rr.lo-pc > 16 {
			continue
		}
		clean := true
		for q := pc; q < rr.lo && clean; q++ {
			in := p.insns[q]
			switch {
			case in.op == xFiller:
			case in.wreg == uint8(rr.reg):
				clean = false
			case in.op == xCallHelper || in.op == xCallLocal || in.op == xCallKfunc || in.op == xExit:
				clean = false
			case in.op >= xJa && in.op <= xJset32X:
				clean = false // a jump
			}
		}
		if clean {
			set(rr.reg, fmt.Sprintf("its location from instruction %d on, which straight-line code reaches without writing r%d", rr.lo, rr.reg))
			return
		}
	}
}
