// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Program is one program the engine can run: its instructions decoded,
// with what the object says about them (functions, source lines, the maps
// each 64-bit load refers to). Programs are immutable and may be shared by
// sessions.
type Program struct {
	// Name is the program's name in its object; Type its program type.
	Name string
	Type ebpf.ProgramType
	// Object is the object it came from (nil for a program rebuilt from
	// the kernel's translated instructions).
	Object *Object

	insns []insn
	// lines[pc] is the source line covering slot pc (nil: none known);
	// lineStart[pc] says a line starts at pc.
	lines     []*btf.Line
	lineStart []bool
	// funcs are the functions in slot order; funcAt[pc] indexes funcs.
	funcs  []Func
	funcAt []int32
	// maps are the maps the program refers to, in the order of first
	// reference: the kernel's order of the program's map ids.
	maps []MapRef
	// kfuncs names the kernel functions calls refer to (insn.ref).
	kfuncs []string
	// spec is the program as the object holds it (linked), for tags.
	spec *ebpf.ProgramSpec
	// xlated is set for programs rebuilt from the kernel's translated
	// instructions: their maps are known by id only.
	xlated bool
	// reload is how to load a rebuilt program again (the kernel check).
	reload *xlatedReload
	// notes say, for a rebuilt program, what was undone at a slot.
	notes map[int]string
	// raw is the encoded program; disasm its text, made on first use.
	raw    []byte
	disasm *disasmText
}

type disasmText struct {
	once sync.Once
	text []string
}

// Func is one function of a program: the entry point or a subprogram
// (called, or a callback of bpf_loop and friends).
type Func struct {
	Name  string
	Start int // first slot
	End   int // one past the last slot
	// BTF is the function's BTF (prototype), when the object has it.
	BTF *btf.Func
}

// MapRef is a map a program refers to, as its object declares it.
type MapRef struct {
	Name string // the name in the object (".rodata", "hx_flows")
	Spec *ebpf.MapSpec
	// ID is the kernel map's id, for programs rebuilt from the kernel.
	ID ebpf.MapID
}

// Len is the program's length in slots (a 64-bit load takes two).
func (p *Program) Len() int { return len(p.insns) }

// Funcs lists the program's functions in slot order.
func (p *Program) Funcs() []Func { return slices.Clone(p.funcs) }

// Maps lists the maps the program refers to, in the kernel's order.
func (p *Program) Maps() []MapRef { return slices.Clone(p.maps) }

// FuncAt returns the function slot pc belongs to.
func (p *Program) FuncAt(pc int) (Func, bool) {
	if pc < 0 || pc >= len(p.funcAt) || p.funcAt[pc] < 0 {
		return Func{}, false
	}
	return p.funcs[p.funcAt[pc]], true
}

// LineAt returns the source line covering slot pc, if the object has
// line info.
func (p *Program) LineAt(pc int) (SourceLine, bool) {
	if pc < 0 || pc >= len(p.lines) || p.lines[pc] == nil {
		return SourceLine{}, false
	}
	return lineOf(p.lines[pc]), true
}

// SourceLine is a line of C source.
type SourceLine struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	Text string `json:"text"`
}

func lineOf(l *btf.Line) SourceLine {
	return SourceLine{File: l.FileName(), Line: int(l.LineNumber()), Col: int(l.LineColumn()), Text: l.Line()}
}

// newProgram decodes spec (a program of obj, linked with its
// subprograms, as cilium/ebpf's CollectionSpec holds it).
func newProgram(obj *Object, spec *ebpf.ProgramSpec) (*Program, error) {
	insns := slices.Clone(spec.Instructions)
	// Marshal resolves calls and callback loads to slot offsets in our
	// copy, as loading does.
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("program %s: encode its instructions: %w", spec.Name, err)
	}
	raw := splitRaw(buf.Bytes())
	dec, err := decodeInsns(raw)
	if err != nil {
		return nil, fmt.Errorf("program %s: %w", spec.Name, err)
	}
	p := &Program{Name: spec.Name, Type: spec.Type, Object: obj, insns: dec, spec: spec, raw: buf.Bytes(), disasm: &disasmText{}}
	p.lines = make([]*btf.Line, len(dec))
	p.lineStart = make([]bool, len(dec))
	p.funcAt = make([]int32, len(dec))
	mapIdx := map[string]int32{}
	kfIdx := map[string]int32{}
	var cur *btf.Line
	iter := insns.Iterate()
	for iter.Next() {
		pc := int(iter.Offset)
		ins := iter.Ins
		if sym := ins.Symbol(); sym != "" {
			p.funcs = append(p.funcs, Func{Name: sym, Start: pc, BTF: btf.FuncMetadata(ins)})
		}
		// Line 0 is code the compiler made up (spills, block
		// boundaries): it belongs to no line, so it keeps the line
		// before, as gdb treats it.
		if src, ok := ins.Source().(*btf.Line); ok && src != nil && src.LineNumber() != 0 {
			cur = src
			p.lineStart[pc] = true
		}
		p.lines[pc] = cur
		if pc+1 < len(dec) && dec[pc].op >= xLdImm64 && dec[pc].op <= xLdBTFID {
			p.lines[pc+1] = cur
		}
		switch {
		case ins.IsLoadFromMap():
			name := ins.Reference()
			if name == "" {
				return nil, fmt.Errorf("program %s: instruction %d loads a map the object does not name", spec.Name, pc)
			}
			i, ok := mapIdx[name]
			if !ok {
				i = int32(len(p.maps))
				mapIdx[name] = i
				ref := MapRef{Name: name}
				if obj != nil {
					ref.Spec = obj.spec.Maps[name]
				}
				p.maps = append(p.maps, ref)
			}
			dec[pc].ref = i
		case ins.IsKfuncCall():
			name := ins.Reference()
			i, ok := kfIdx[name]
			if !ok {
				i = int32(len(p.kfuncs))
				kfIdx[name] = i
				p.kfuncs = append(p.kfuncs, name)
			}
			dec[pc].ref = i
		}
		if btf.CORERelocationMetadata(ins) != nil {
			return nil, fmt.Errorf("program %s: instruction %d needs a CO-RE relocation, which the emulator does not apply yet", spec.Name, pc)
		}
	}
	p.index()
	return p, nil
}

// index fills function bounds and funcAt.
func (p *Program) index() {
	sort.Slice(p.funcs, func(i, j int) bool { return p.funcs[i].Start < p.funcs[j].Start })
	if len(p.funcs) == 0 || p.funcs[0].Start != 0 {
		p.funcs = append([]Func{{Name: p.Name, Start: 0}}, p.funcs...)
	}
	for i := range p.funcs {
		end := len(p.insns)
		if i+1 < len(p.funcs) {
			end = p.funcs[i+1].Start
		}
		p.funcs[i].End = end
		for pc := p.funcs[i].Start; pc < end; pc++ {
			p.funcAt[pc] = int32(i)
		}
	}
}

// funcByName finds a function.
func (p *Program) funcByName(name string) (Func, bool) {
	for _, f := range p.funcs {
		if f.Name == name {
			return f, true
		}
	}
	return Func{}, false
}

// hasTag reports whether the kernel's tag of a loaded program is this
// program's: it is how a loaded program is matched to the object it came
// from.
func (p *Program) hasTag(tag string) bool {
	if p.spec == nil || tag == "" {
		return false
	}
	insns := slices.Clone(p.spec.Instructions)
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		return false
	}
	ok, err := insns.HasTag(tag, binary.LittleEndian)
	return err == nil && ok
}

// helperName is the kernel's name of helper id ("bpf_map_lookup_elem").
func helperName(id int32) string {
	s := asm.BuiltinFunc(id).String()
	camel, ok := stringsCutPrefix(s, "Fn")
	if !ok {
		return fmt.Sprintf("helper#%d", id)
	}
	var b []byte
	b = append(b, "bpf"...)
	for _, c := range []byte(camel) {
		if c >= 'A' && c <= 'Z' {
			b = append(b, '_', c+'a'-'A')
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func stringsCutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

// NewProgram decodes a program that comes with no object: instructions
// assembled in Go (cilium/ebpf's asm). Its maps, if any, are bound by
// name (Maps.ByName) to the references its instructions make.
func NewProgram(spec *ebpf.ProgramSpec) (*Program, error) {
	p, err := newProgram(nil, spec)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Insn is slot pc's instruction in the verifier's syntax ("r2 = *(u32
// *)(r1 +4)"), with the map a map load refers to named.
func (p *Program) Insn(pc int) string {
	if p.disasm == nil {
		return ""
	}
	d := p.disasm
	d.once.Do(func() {
		if p.raw != nil {
			d.text = bpf.FormatInsns(p.raw)
		}
	})
	if pc < 0 || pc >= len(d.text) {
		return ""
	}
	s := d.text[pc]
	if pc < len(p.insns) && (p.insns[pc].op == xLdMap || p.insns[pc].op == xLdMapValue) {
		if ref := p.insns[pc].ref; int(ref) < len(p.maps) {
			// An object's instructions carry no map id yet (the loader
			// puts a file descriptor there): name the map instead of
			// showing id 0.
			if named := strings.Replace(s, "map[id:0]", "map["+p.maps[ref].Name+"]", 1); named != s {
				s = named
			} else {
				s = fmt.Sprintf("%s  ; %s", s, p.maps[ref].Name)
			}
		}
	}
	if n, ok := p.notes[pc]; ok {
		s = fmt.Sprintf("%s  ; %s", s, n)
	}
	return s
}
