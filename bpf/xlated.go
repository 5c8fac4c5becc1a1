// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// XlatedInsn is one instruction of a program as the kernel runs it (after
// verification and rewriting), with what the program's BTF says about it.
type XlatedInsn struct {
	// Index is the instruction's slot; a 64-bit load takes two slots, so
	// the next instruction's Index is two more.
	Index int
	// Text is the instruction in bpftool's syntax, "(79) r2 = *(u64 *)(r1 +0)".
	Text string
	// Raw is the instruction's 8 (or 16) bytes.
	Raw []byte
	// Func is the prototype of the function that starts here, if one does,
	// as bpftool prints it: "int xdp_count(struct xdp_md * ctx)".
	Func string
	// Line is the C source line this instruction starts, if it starts one.
	Line *SourceLine
	// Map is the map a 64-bit load refers to.
	Map *MapName
}

// SourceLine is a line of C source from BTF line info.
type SourceLine struct {
	File string `json:"file"`
	Line uint32 `json:"line"`
	Col  uint32 `json:"col"`
	Src  string `json:"src"`
}

// MapName is a map referred to by id, with its name when it still exists.
type MapName struct {
	ID   uint32 `json:"id"`
	Name string `json:"name,omitempty"`
}

// Sizes of struct bpf_line_info and struct bpf_func_info.
const (
	lineInfoSize = 16
	funcInfoSize = 8
)

// ErrInsnsHidden is returned when the kernel withholds a program's
// instructions (not root, or kernel.kptr_restrict with bpf_jit_harden).
var ErrInsnsHidden = errors.New("the kernel hides this program's instructions; run as root, and check sysctl kernel.kptr_restrict and net.core.bpf_jit_harden")

// DumpXlated returns p's translated instructions, annotated as
// "bpftool prog dump xlated linum" annotates them: function prototypes and
// C source lines from the program's BTF (which needs CAP_SYS_ADMIN), call
// targets from /proc/kallsyms, and map ids (with names here).
func DumpXlated(p *ebpf.Program) ([]XlatedInsn, error) {
	x, err := ReadXlated(p)
	if err != nil {
		return nil, err
	}
	code, ksyms, lineInfos, funcInfos := x.Code, x.JitedKsyms, x.Lines, x.Funcs
	insns := decodeInsns(code)
	d := &disasm{call: callNamer(insns, ksyms)}
	mapNames := map[uint32]string{}
	var out []XlatedInsn
	nextLine, nextFunc := 0, 0
	var lastLine *btf.Line
	for i := 0; i < len(insns); i++ {
		x := XlatedInsn{Index: i, Text: d.format(insns, i)}
		end := i + 1
		if insns[i].isWide() {
			end = min(i+2, len(insns))
		}
		x.Raw = code[i*8 : end*8]
		for nextFunc < len(funcInfos) && int(funcInfos[nextFunc].Offset) <= i {
			if int(funcInfos[nextFunc].Offset) == i {
				x.Func = funcSignature(funcInfos[nextFunc].Func)
			}
			nextFunc++
		}
		// The line covering i is the last one starting at or before i; it
		// is shown where it first applies (bpftool's rule).
		for nextLine < len(lineInfos) && int(lineInfos[nextLine].Offset) <= i {
			nextLine++
		}
		if nextLine > 0 {
			if l := lineInfos[nextLine-1].Line; l != lastLine {
				lastLine = l
				x.Line = &SourceLine{File: l.FileName(), Line: l.LineNumber(), Col: l.LineColumn(), Src: strings.TrimLeft(l.Line(), " \t")}
			}
		}
		if in := insns[i]; in.isWide() && (in.Src == pseudoMapFD || in.Src == pseudoMapValue) {
			id := uint32(in.Imm)
			name, ok := mapNames[id]
			if !ok {
				name = MapNameByID(id)
				mapNames[id] = name
			}
			x.Map = &MapName{ID: id, Name: name}
		}
		out = append(out, x)
		i = end - 1
	}
	return out, nil
}

// Xlated is a loaded program's translated instructions as the kernel
// reports them (BPF_OBJ_GET_INFO_BY_FD), with the line and function info
// that go with them.
type Xlated struct {
	// Code is the instructions, 8 bytes a slot. 64-bit loads of maps carry
	// the map's id (src BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE); helper
	// calls carry the helper's address relative to __bpf_call_base.
	Code []byte
	// Lines and Funcs are the program's line and function info, offsets
	// in slots of Code; empty without BTF or CAP_SYS_ADMIN.
	Lines btf.LineOffsets
	Funcs btf.FuncOffsets
	// BTF is the program's BTF, nil when it has none.
	BTF *btf.Spec
	// JitedKsyms are the JITed functions' addresses (bpf-to-bpf calls).
	JitedKsyms []uint64
}

// ReadXlated reads p's translated instructions with their line and
// function info.
func ReadXlated(p *ebpf.Program) (*Xlated, error) {
	fd := p.FD()
	var info rawProgInfo
	if err := sysObjGetInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
		return nil, fmt.Errorf("program info: %w", err)
	}
	if info.XlatedProgLen == 0 {
		return nil, ErrInsnsHidden
	}
	code := make([]byte, info.XlatedProgLen)
	lines := make([]byte, lineInfoSize*int(info.NrLineInfo)+1)
	funcs := make([]byte, funcInfoSize*int(info.NrFuncInfo)+1)
	ksyms := make([]uint64, info.NrJitedKsyms+1)
	want := rawProgInfo{
		XlatedProgLen:   info.XlatedProgLen,
		XlatedProgInsns: uint64(uintptr(unsafe.Pointer(&code[0]))),
		NrLineInfo:      info.NrLineInfo,
		LineInfoRecSize: lineInfoSize,
		LineInfo:        uint64(uintptr(unsafe.Pointer(&lines[0]))),
		NrFuncInfo:      info.NrFuncInfo,
		FuncInfoRecSize: funcInfoSize,
		FuncInfo:        uint64(uintptr(unsafe.Pointer(&funcs[0]))),
		NrJitedKsyms:    info.NrJitedKsyms,
		JitedKsyms:      uint64(uintptr(unsafe.Pointer(&ksyms[0]))),
	}
	err := sysObjGetInfo(fd, unsafe.Pointer(&want), unsafe.Sizeof(want))
	runtime.KeepAlive(code)
	runtime.KeepAlive(lines)
	runtime.KeepAlive(funcs)
	runtime.KeepAlive(ksyms)
	if err != nil {
		return nil, fmt.Errorf("program %d instructions: %w", info.ID, err)
	}
	if want.XlatedProgInsns == 0 {
		return nil, ErrInsnsHidden
	}
	x := &Xlated{Code: code}
	if want.JitedKsyms != 0 {
		x.JitedKsyms = ksyms[:min(want.NrJitedKsyms, info.NrJitedKsyms)]
	}
	if info.BTFID != 0 {
		// Reading BTF needs CAP_SYS_ADMIN; without it there are simply no
		// source lines, as with bpftool.
		if spec, err := programBTF(info.BTFID); err == nil {
			x.BTF = spec
			if want.LineInfo != 0 && info.NrLineInfo > 0 {
				x.Lines, _ = btf.LoadLineInfos(bytes.NewReader(lines), binary.NativeEndian, min(want.NrLineInfo, info.NrLineInfo), spec)
			}
			if want.FuncInfo != 0 && info.NrFuncInfo > 0 {
				x.Funcs, _ = btf.LoadFuncInfos(bytes.NewReader(funcs), binary.NativeEndian, min(want.NrFuncInfo, info.NrFuncInfo), spec)
			}
		}
	}
	return x, nil
}

// KernelCallTargets names the kernel functions at __bpf_call_base + off
// for each of offs (the imm of a translated helper call), as
// /proc/kallsyms names them; an offset with no symbol is left out. It
// returns nil when the addresses are hidden (not root, kptr_restrict).
func KernelCallTargets(offs []int32) map[int32]string {
	ks := loadKernelSymbols()
	if ks.callBase == 0 {
		return nil
	}
	want := map[uint64]bool{}
	for _, o := range offs {
		want[uint64(int64(ks.callBase)+int64(o))] = true
	}
	names := ks.names(want)
	out := map[int32]string{}
	for _, o := range offs {
		if n, ok := names[uint64(int64(ks.callBase)+int64(o))]; ok {
			out[o] = n
		}
	}
	return out
}

// KernelSymbolAddress is the address /proc/kallsyms gives name, 0 when
// it is unknown or hidden.
func KernelSymbolAddress(name string) uint64 {
	addr, _ := loadKernelSymbols().addressOf(name)
	return addr
}

// programBTF loads the BTF object with id from the kernel.
func programBTF(id uint32) (*btf.Spec, error) {
	h, err := btf.NewHandleFromID(btf.ID(id))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.Spec(nil)
}

// callNamer returns the function that names call targets as bpftool does.
// Kernel symbols are read only when the program calls something that needs
// them.
func callNamer(insns []insn, ksyms []uint64) func(insn) string {
	var syms *kernelSymbols
	var names map[uint64]string
	target := func(in insn) (uint64, bool) {
		if in.Src == pseudoCall {
			if in.Imm >= 0 && int(in.Imm) < len(ksyms) {
				return ksyms[in.Imm], true
			}
			return 0, false
		}
		if syms.callBase == 0 {
			return 0, false
		}
		return uint64(int64(syms.callBase) + int64(in.Imm)), true
	}
	resolve := func() {
		syms = loadKernelSymbols()
		want := map[uint64]bool{}
		for _, in := range insns {
			if in.Code == clsJMP|opCALL {
				if addr, ok := target(in); ok {
					want[addr] = true
				}
			}
		}
		names = syms.names(want)
	}
	return func(in insn) string {
		if in.Src == 0 {
			if name := helperName(in.Imm); name != "" {
				return name
			}
		}
		// For bpf-to-bpf calls the kernel leaves the relative offset in
		// Off and the callee's index (into the JITed symbols) in Imm.
		if in.Src == pseudoCall && len(ksyms) == 0 {
			return fmt.Sprintf("%+d", in.Off) // interpreted: bpftool shows the offset only
		}
		if syms == nil {
			resolve()
		}
		addr, ok := target(in)
		if !ok {
			return ""
		}
		name, found := names[addr]
		switch {
		case in.Src == pseudoCall && found:
			return fmt.Sprintf("%+d#%s", in.Off, name)
		case in.Src == pseudoCall:
			return fmt.Sprintf("%+d#0x%x", in.Off, addr)
		case found:
			return name
		}
		return fmt.Sprintf("0x%x", addr)
	}
}

// funcSignature prints a function's prototype the way bpftool prints it
// above the function's first instruction: "int xdp_count(struct xdp_md * ctx)".
// It is "" for a type bpftool cannot print in this form.
func funcSignature(fn *btf.Func) string {
	var b strings.Builder
	if !typeOnly(&b, fn) {
		return ""
	}
	return b.String()
}

// typeOnly writes t as bpftool's btf_dumper_type_only does (a type name
// followed by a space, "* " for each pointer level).
func typeOnly(b *strings.Builder, t btf.Type) bool {
	switch t := t.(type) {
	case nil, *btf.Void:
		b.WriteString("void ")
	case *btf.Int:
		b.WriteString(t.Name + " ")
	case *btf.Typedef:
		b.WriteString(t.Name + " ")
	case *btf.Float:
		b.WriteString(t.Name + " ")
	case *btf.Struct:
		b.WriteString("struct " + t.Name + " ")
	case *btf.Union:
		b.WriteString("union " + t.Name + " ")
	case *btf.Enum:
		b.WriteString("enum " + t.Name + " ")
	case *btf.Fwd:
		kind := "struct"
		if t.Kind == btf.FwdUnion {
			kind = "union"
		}
		b.WriteString(kind + " " + t.Name + " ")
	case *btf.Array:
		if !typeOnly(b, t.Type) {
			return false
		}
		fmt.Fprintf(b, "[%d]", t.Nelems)
	case *btf.Pointer:
		if !typeOnly(b, t.Target) {
			return false
		}
		b.WriteString("* ")
	case *btf.Volatile:
		b.WriteString("volatile ")
		return typeOnly(b, t.Type)
	case *btf.Const:
		b.WriteString("const ")
		return typeOnly(b, t.Type)
	case *btf.Restrict:
		b.WriteString("restrict ")
		return typeOnly(b, t.Type)
	case *btf.FuncProto:
		return funcProto(b, t, "")
	case *btf.Func:
		proto, ok := t.Type.(*btf.FuncProto)
		if !ok {
			return false
		}
		return funcProto(b, proto, t.Name)
	default:
		return false
	}
	return true
}

func funcProto(b *strings.Builder, proto *btf.FuncProto, name string) bool {
	if !typeOnly(b, proto.Return) {
		return false
	}
	b.WriteString(name + "(")
	for i, p := range proto.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		if _, vararg := p.Type.(*btf.Void); vararg || p.Type == nil {
			b.WriteString("...")
			continue
		}
		if !typeOnly(b, p.Type) {
			return false
		}
		if p.Name != "" {
			b.WriteString(p.Name)
		} else {
			s := strings.TrimSuffix(b.String(), " ")
			b.Reset()
			b.WriteString(s)
		}
	}
	b.WriteString(")")
	return true
}
