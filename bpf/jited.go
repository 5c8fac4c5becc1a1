// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// JitedFunc is one function of a program's machine code, as the JIT
// compiler left it: "bpftool prog dump jited" shows the same.
type JitedFunc struct {
	// Name is the function's kernel symbol, bpf_prog_TAG_NAME (or
	// bpf_prog_TAG_F for a subprogram); "" when kallsyms hides it.
	Name string `json:"name"`
	// Proto is its C prototype from the program's BTF, if it has one.
	Proto string `json:"proto,omitempty"`
	// Addr is where it starts in the kernel; 0 when hidden.
	Addr  uint64      `json:"addr,omitempty"`
	Insns []JitedInsn `json:"insns"`
	// Arch is the machine the code is for (GOARCH).
	Arch string `json:"arch"`
}

// JitedInsn is one machine instruction.
type JitedInsn struct {
	// Off is its offset from the start of its function.
	Off int `json:"pc"`
	// Text is the instruction in GNU (AT&T) syntax, as bpftool prints it.
	Text string `json:"text"`
	// Raw is the instruction's bytes.
	Raw []byte `json:"-"`
	// Line is the C source line that starts here, if one does.
	Line *SourceLine `json:"line,omitempty"`
}

// ErrNotJited is returned for a program the kernel runs in its
// interpreter (net.core.bpf_jit_enable=0): there is no machine code.
var ErrNotJited = fmt.Errorf("the program is not JIT-compiled (net.core.bpf_jit_enable is 0, or the JIT refused it): there is no machine code to dump; prog dump shows its BPF instructions")

// DumpJited returns p's JIT-compiled machine code, disassembled for the
// machine bpfsh runs on (x86-64 and arm64; others get raw bytes), split
// into its functions, with the C source line each part came from where the
// program's BTF says (line info needs CAP_SYS_ADMIN) and call targets named
// from /proc/kallsyms.
func DumpJited(p *ebpf.Program) ([]JitedFunc, error) {
	fd := p.FD()
	var info rawProgInfo
	if err := sysObjGetInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
		return nil, fmt.Errorf("program info: %w", err)
	}
	if info.JitedProgLen == 0 {
		if info.XlatedProgLen == 0 {
			return nil, ErrInsnsHidden
		}
		return nil, ErrNotJited
	}
	code := make([]byte, info.JitedProgLen)
	ksyms := make([]uint64, info.NrJitedKsyms+1)
	lens := make([]uint32, info.NrJitedFuncLens+1)
	lines := make([]byte, lineInfoSize*int(info.NrLineInfo)+1)
	jlines := make([]uint64, info.NrJitedLineInfo+1)
	funcs := make([]byte, funcInfoSize*int(info.NrFuncInfo)+1)
	want := rawProgInfo{
		JitedProgLen:         info.JitedProgLen,
		JitedProgInsns:       uint64(uintptr(unsafe.Pointer(&code[0]))),
		NrJitedKsyms:         info.NrJitedKsyms,
		JitedKsyms:           uint64(uintptr(unsafe.Pointer(&ksyms[0]))),
		NrJitedFuncLens:      info.NrJitedFuncLens,
		JitedFuncLens:        uint64(uintptr(unsafe.Pointer(&lens[0]))),
		NrLineInfo:           info.NrLineInfo,
		LineInfoRecSize:      lineInfoSize,
		LineInfo:             uint64(uintptr(unsafe.Pointer(&lines[0]))),
		NrJitedLineInfo:      info.NrJitedLineInfo,
		JitedLineInfoRecSize: 8,
		JitedLineInfo:        uint64(uintptr(unsafe.Pointer(&jlines[0]))),
		NrFuncInfo:           info.NrFuncInfo,
		FuncInfoRecSize:      funcInfoSize,
		FuncInfo:             uint64(uintptr(unsafe.Pointer(&funcs[0]))),
	}
	err := sysObjGetInfo(fd, unsafe.Pointer(&want), unsafe.Sizeof(want))
	runtime.KeepAlive(code)
	runtime.KeepAlive(ksyms)
	runtime.KeepAlive(lens)
	runtime.KeepAlive(lines)
	runtime.KeepAlive(jlines)
	runtime.KeepAlive(funcs)
	if err != nil {
		return nil, fmt.Errorf("program %d machine code: %w", info.ID, err)
	}
	if want.JitedProgInsns == 0 {
		return nil, ErrInsnsHidden
	}
	code = code[:min(want.JitedProgLen, info.JitedProgLen)]
	if want.JitedKsyms == 0 {
		ksyms = nil // hidden by kptr_restrict
	} else {
		ksyms = ksyms[:min(want.NrJitedKsyms, info.NrJitedKsyms)]
	}
	lens = lens[:min(want.NrJitedFuncLens, info.NrJitedFuncLens)]
	if want.JitedLineInfo == 0 {
		jlines = nil
	} else {
		jlines = jlines[:min(want.NrJitedLineInfo, info.NrJitedLineInfo)]
	}

	// The functions: their lengths, or one function of all the code.
	type part struct {
		addr     uint64
		from, to int
	}
	var parts []part
	off := 0
	for i, n := range lens {
		p := part{from: off, to: min(off+int(n), len(code))}
		if i < len(ksyms) {
			p.addr = ksyms[i]
		}
		parts = append(parts, p)
		off += int(n)
	}
	if len(parts) == 0 || off != len(code) {
		parts = []part{{from: 0, to: len(code)}}
		if len(ksyms) > 0 {
			parts[0].addr = ksyms[0]
		}
	}

	var lineInfos btf.LineOffsets
	var funcInfos btf.FuncOffsets
	if info.BTFID != 0 {
		if spec, err := programBTF(info.BTFID); err == nil {
			if want.LineInfo != 0 && info.NrLineInfo > 0 {
				lineInfos, _ = btf.LoadLineInfos(bytes.NewReader(lines), binary.NativeEndian, min(want.NrLineInfo, info.NrLineInfo), spec)
			}
			if want.FuncInfo != 0 && info.NrFuncInfo > 0 {
				funcInfos, _ = btf.LoadFuncInfos(bytes.NewReader(funcs), binary.NativeEndian, min(want.NrFuncInfo, info.NrFuncInfo), spec)
			}
		}
	}
	// Line i of the xlated line info starts at machine address jlines[i].
	lineAt := make([]map[int]*btf.Line, len(parts))
	for i := range lineInfos {
		if i >= len(jlines) {
			break
		}
		a := jlines[i]
		for k, p := range parts {
			if p.addr != 0 && a >= p.addr && a < p.addr+uint64(p.to-p.from) {
				if lineAt[k] == nil {
					lineAt[k] = map[int]*btf.Line{}
				}
				if _, dup := lineAt[k][int(a-p.addr)]; !dup {
					lineAt[k][int(a-p.addr)] = lineInfos[i].Line
				}
				break
			}
		}
	}

	syms := loadKernelSymbols()
	want2 := map[uint64]bool{}
	for _, p := range parts {
		if p.addr != 0 {
			want2[p.addr] = true
		}
	}
	decoded := make([][]decodedInsn, len(parts))
	for k, p := range parts {
		decoded[k] = disassemble(code[p.from:p.to], p.addr)
		for _, d := range decoded[k] {
			if d.target != 0 {
				want2[d.target] = true
			}
		}
	}
	names := syms.names(want2)
	lookup := func(addr uint64) (string, uint64) {
		if n, ok := names[addr]; ok {
			return n, addr
		}
		return "", 0
	}

	var out []JitedFunc
	for k, p := range parts {
		f := JitedFunc{Name: names[p.addr], Addr: p.addr, Arch: runtime.GOARCH}
		if k < len(funcInfos) {
			f.Proto = funcSignature(funcInfos[k].Func)
		}
		var last *btf.Line
		for _, d := range decoded[k] {
			in := JitedInsn{Off: d.off, Raw: d.raw, Text: d.format(lookup)}
			// The line covering an instruction is the last one starting
			// at or before it, shown where it first applies.
			for o := d.off; o < d.off+len(d.raw); o++ {
				if l, ok := lineAt[k][o]; ok && l != last {
					last = l
					in.Line = &SourceLine{File: l.FileName(), Line: l.LineNumber(), Col: l.LineColumn(), Src: strings.TrimLeft(l.Line(), " \t")}
					break
				}
			}
			f.Insns = append(f.Insns, in)
		}
		out = append(out, f)
	}
	return out, nil
}

// decodedInsn is one machine instruction before it is printed.
type decodedInsn struct {
	off    int
	raw    []byte
	target uint64 // a call or jump's absolute target, when known
	format func(lookup func(uint64) (string, uint64)) string
}

// disassemble decodes code, which starts at addr in the kernel (0: not
// known), for the machine bpfsh runs on.
func disassemble(code []byte, addr uint64) []decodedInsn {
	var out []decodedInsn
	for off := 0; off < len(code); {
		d := decodedInsn{off: off}
		switch runtime.GOARCH {
		case "amd64":
			inst, err := x86asm.Decode(code[off:], 64)
			if err != nil || inst.Len == 0 {
				d.raw = code[off : off+1]
				d.format = func(func(uint64) (string, uint64)) string { return "(bad)" }
				break
			}
			d.raw = code[off : off+inst.Len]
			pc := uint64(off)
			for _, a := range inst.Args {
				if rel, ok := a.(x86asm.Rel); ok && addr != 0 {
					d.target = uint64(int64(addr) + int64(off) + int64(inst.Len) + int64(rel))
				}
			}
			// Offsets count from the function's start, as bpftool shows
			// them, so a jump within it reads "jmp 0x5c"; a call out of it
			// is named from its absolute address.
			d.format = func(lookup func(uint64) (string, uint64)) string {
				rel := func(t uint64) (string, uint64) {
					if addr == 0 || lookup == nil {
						return "", 0
					}
					if name, _ := lookup(addr + t); name != "" {
						return name, t
					}
					return "", 0
				}
				return x86asm.GNUSyntax(inst, pc, rel)
			}
		case "arm64":
			n := min(4, len(code)-off)
			d.raw = code[off : off+n]
			inst, err := arm64asm.Decode(d.raw)
			if err != nil {
				d.format = func(func(uint64) (string, uint64)) string { return "(bad)" }
				break
			}
			d.format = func(func(uint64) (string, uint64)) string { return arm64asm.GNUSyntax(inst) }
		default:
			n := min(16, len(code)-off)
			d.raw = code[off : off+n]
			d.format = func(func(uint64) (string, uint64)) string {
				return "(bpfsh has no disassembler for " + runtime.GOARCH + ")"
			}
		}
		out = append(out, d)
		off += len(d.raw)
	}
	return out
}
