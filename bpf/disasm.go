// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/asm"
)

// This file prints eBPF instructions in the kernel verifier's syntax, which
// is also what "bpftool prog dump xlated" prints ("r1 = *(u32 *)(r2 +4)"),
// so that dumps from bpfsh and bpftool can be compared line by line.

// insn is one raw 8-byte eBPF instruction.
type insn struct {
	Code uint8
	Dst  uint8
	Src  uint8
	Off  int16
	Imm  int32
}

// decodeInsns splits a raw instruction stream in the host's byte order.
func decodeInsns(b []byte) []insn {
	bo := binary.NativeEndian
	little := bo.Uint16([]byte{1, 0}) == 1
	out := make([]insn, len(b)/8)
	for i := range out {
		r := b[i*8 : i*8+8]
		in := insn{Code: r[0], Off: int16(bo.Uint16(r[2:4])), Imm: int32(bo.Uint32(r[4:8]))}
		if little {
			in.Dst, in.Src = r[1]&0x0f, r[1]>>4
		} else {
			in.Dst, in.Src = r[1]>>4, r[1]&0x0f
		}
		out[i] = in
	}
	return out
}

// Parts of an opcode (include/uapi/linux/bpf_common.h and bpf.h).
const (
	clsLD, clsLDX, clsST, clsSTX, clsALU, clsJMP, clsJMP32, clsALU64 = 0, 1, 2, 3, 4, 5, 6, 7

	sizeW, sizeH, sizeB, sizeDW = 0x00, 0x08, 0x10, 0x18

	modeIMM, modeABS, modeIND, modeMEM, modeMEMSX, modeATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xc0

	srcX = 0x08

	opNEG, opMOV, opDIV, opMOD, opEND = 0x80, 0xb0, 0x30, 0x90, 0xd0
	opJA, opCALL, opEXIT, opJCOND     = 0x00, 0x80, 0x90, 0xe0

	atomicFETCH, atomicXCHG, atomicCMPXCHG = 0x01, 0xe1, 0xf1
	atomicLoadAcq, atomicStoreRel          = 0x100, 0x110

	pseudoMapFD, pseudoMapValue, pseudoBTFID, pseudoFunc, pseudoMapIdx, pseudoMapIdxValue = 1, 2, 3, 4, 5, 6
	pseudoCall, pseudoKfuncCall                                                           = 1, 2
)

var aluOps = map[uint8]string{
	0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=",
	0x70: ">>=", 0x80: "neg", 0x90: "%=", 0xa0: "^=", 0xb0: "=", 0xc0: "s>>=", 0xd0: "endian",
}

var jmpOps = map[uint8]string{
	0x00: "jmp", 0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>", 0x70: "s>=",
	0x80: "call", 0x90: "exit", 0xa0: "<", 0xb0: "<=", 0xc0: "s<", 0xd0: "s<=",
}

var atomicOps = map[uint8]string{0x00: "add", 0x50: "and", 0x40: "or", 0xa0: "xor"}

var ldstSizes = map[uint8]string{sizeW: "u32", sizeH: "u16", sizeB: "u8", sizeDW: "u64"}
var ldsxSizes = map[uint8]string{sizeW: "s32", sizeH: "s16", sizeB: "s8"}

// disasm names what instructions refer to: the callbacks bpftool gives the
// kernel's printer.
type disasm struct {
	// call names the target of a call instruction the way bpftool does
	// ("bpf_map_lookup_elem", "+2#bpf_prog_..._sub"); "" if unknown.
	call func(in insn) string
}

// format prints instruction i of insns (the second half of a 16-byte load
// is read from insns[i+1]).
func (d *disasm) format(insns []insn, i int) string {
	in := insns[i]
	class := in.Code & 0x07
	size := in.Code & 0x18
	mode := in.Code & 0xe0
	op := in.Code & 0xf0
	switch class {
	case clsALU, clsALU64:
		r := byte('r')
		if class == clsALU {
			r = 'w'
		}
		switch {
		case op == opEND && class == clsALU64:
			return fmt.Sprintf("(%02x) r%d = bswap%d r%d", in.Code, in.Dst, in.Imm, in.Dst)
		case op == opEND:
			order := "le"
			if in.Code&srcX != 0 {
				order = "be"
			}
			return fmt.Sprintf("(%02x) r%d = %s%d r%d", in.Code, in.Dst, order, in.Imm, in.Dst)
		case op == opNEG:
			return fmt.Sprintf("(%02x) %c%d = -%c%d", in.Code, r, in.Dst, r, in.Dst)
		case in.Code == clsALU64|opMOV|srcX && in.Off == 1:
			return fmt.Sprintf("(%02x) r%d = addr_space_cast(r%d, %d, %d)", in.Code, in.Dst, in.Src, uint32(in.Imm)>>16, uint16(in.Imm))
		case in.Code == clsALU64|opMOV|srcX && in.Off == -1:
			return fmt.Sprintf("(%02x) r%d = &(void __percpu *)(r%d)", in.Code, in.Dst, in.Src)
		}
		name := aluOps[op]
		if (op == opDIV || op == opMOD) && in.Off == 1 {
			name = "s" + name
		}
		if in.Code&srcX != 0 {
			sx := ""
			if op == opMOV {
				sx = map[int16]string{8: "(s8)", 16: "(s16)", 32: "(s32)"}[in.Off]
			}
			return fmt.Sprintf("(%02x) %c%d %s %s%c%d", in.Code, r, in.Dst, name, sx, r, in.Src)
		}
		return fmt.Sprintf("(%02x) %c%d %s %d", in.Code, r, in.Dst, name, in.Imm)

	case clsSTX:
		sz := ldstSizes[size]
		switch {
		case mode == modeMEM:
			return fmt.Sprintf("(%02x) *(%s *)(r%d %+d) = r%d", in.Code, sz, in.Dst, in.Off, in.Src)
		case mode != modeATOMIC:
		case in.Imm == 0x00 || in.Imm == 0x50 || in.Imm == 0x40 || in.Imm == 0xa0:
			return fmt.Sprintf("(%02x) lock *(%s *)(r%d %+d) %s r%d", in.Code, sz, in.Dst, in.Off, aluOps[uint8(in.Imm)], in.Src)
		case in.Imm&^0xf0 == atomicFETCH && atomicOps[uint8(in.Imm&0xf0)] != "" && in.Imm < 0x100:
			return fmt.Sprintf("(%02x) r%d = atomic%s_fetch_%s((%s *)(r%d %+d), r%d)", in.Code, in.Src, bits64(size), atomicOps[uint8(in.Imm&0xf0)], sz, in.Dst, in.Off, in.Src)
		case in.Imm == atomicCMPXCHG:
			return fmt.Sprintf("(%02x) r0 = atomic%s_cmpxchg((%s *)(r%d %+d), r0, r%d)", in.Code, bits64(size), sz, in.Dst, in.Off, in.Src)
		case in.Imm == atomicXCHG:
			return fmt.Sprintf("(%02x) r%d = atomic%s_xchg((%s *)(r%d %+d), r%d)", in.Code, in.Src, bits64(size), sz, in.Dst, in.Off, in.Src)
		case in.Imm == atomicLoadAcq:
			return fmt.Sprintf("(%02x) r%d = load_acquire((%s *)(r%d %+d))", in.Code, in.Dst, sz, in.Src, in.Off)
		case in.Imm == atomicStoreRel:
			return fmt.Sprintf("(%02x) store_release((%s *)(r%d %+d), r%d)", in.Code, sz, in.Dst, in.Off, in.Src)
		}
		return fmt.Sprintf("BUG_%02x", in.Code)

	case clsST:
		switch mode {
		case modeMEM:
			return fmt.Sprintf("(%02x) *(%s *)(r%d %+d) = %d", in.Code, ldstSizes[size], in.Dst, in.Off, in.Imm)
		case 0xc0: // BPF_NOSPEC, kernel-internal
			return fmt.Sprintf("(%02x) nospec", in.Code)
		}
		return fmt.Sprintf("BUG_st_%02x", in.Code)

	case clsLDX:
		switch mode {
		case modeMEM:
			return fmt.Sprintf("(%02x) r%d = *(%s *)(r%d %+d)", in.Code, in.Dst, ldstSizes[size], in.Src, in.Off)
		case modeMEMSX:
			return fmt.Sprintf("(%02x) r%d = *(%s *)(r%d %+d)", in.Code, in.Dst, ldsxSizes[size], in.Src, in.Off)
		}
		return fmt.Sprintf("BUG_ldx_%02x", in.Code)

	case clsLD:
		switch {
		case mode == modeABS:
			return fmt.Sprintf("(%02x) r0 = *(%s *)skb[%d]", in.Code, ldstSizes[size], in.Imm)
		case mode == modeIND:
			return fmt.Sprintf("(%02x) r0 = *(%s *)skb[r%d + %d]", in.Code, ldstSizes[size], in.Src, in.Imm)
		case mode == modeIMM && size == sizeDW:
			var next insn
			if i+1 < len(insns) {
				next = insns[i+1]
			}
			return fmt.Sprintf("(%02x) r%d = %s", in.Code, in.Dst, imm64(in, next))
		}
		return fmt.Sprintf("BUG_ld_%02x", in.Code)
	}

	// BPF_JMP and BPF_JMP32.
	r := byte('r')
	if class == clsJMP32 {
		r = 'w'
	}
	switch {
	case op == opCALL:
		name := ""
		if d.call != nil {
			name = d.call(in)
		}
		if in.Src == pseudoCall {
			if name == "" {
				name = fmt.Sprintf("%+d", in.Imm)
			}
			return fmt.Sprintf("(%02x) call pc%s", in.Code, name)
		}
		if name == "" {
			name = "unknown"
			if in.Src == pseudoKfuncCall {
				name = "kernel-function"
			}
		}
		return fmt.Sprintf("(%02x) call %s#%d", in.Code, name, in.Imm)
	case in.Code == clsJMP|opJA:
		return fmt.Sprintf("(%02x) goto pc%+d", in.Code, in.Off)
	case in.Code == clsJMP|opJCOND && in.Src == 0:
		return fmt.Sprintf("(%02x) may_goto pc%+d", in.Code, in.Off)
	case in.Code == clsJMP32|opJA:
		return fmt.Sprintf("(%02x) gotol pc%+d", in.Code, in.Imm)
	case in.Code == clsJMP|opEXIT:
		return fmt.Sprintf("(%02x) exit", in.Code)
	case in.Code&srcX != 0:
		return fmt.Sprintf("(%02x) if %c%d %s %c%d goto pc%+d", in.Code, r, in.Dst, jmpOps[op], r, in.Src, in.Off)
	}
	return fmt.Sprintf("(%02x) if %c%d %s 0x%x goto pc%+d", in.Code, r, in.Dst, jmpOps[op], uint32(in.Imm), in.Off)
}

func bits64(size uint8) string {
	if size == sizeDW {
		return "64"
	}
	return ""
}

// imm64 prints the value of a 16-byte load as bpftool does: the kernel has
// already replaced map file descriptors by map ids in the translated program.
func imm64(in, next insn) string {
	switch in.Src {
	case pseudoMapFD:
		return fmt.Sprintf("map[id:%d]", uint32(in.Imm))
	case pseudoMapValue:
		return fmt.Sprintf("map[id:%d][0]+%d", uint32(in.Imm), uint32(next.Imm))
	case pseudoMapIdxValue:
		return fmt.Sprintf("map[idx:%d]+%d", uint32(in.Imm), uint32(next.Imm))
	case pseudoFunc:
		return fmt.Sprintf("subprog[%+d]", in.Imm)
	}
	return fmt.Sprintf("0x%x", uint64(uint32(next.Imm))<<32|uint64(uint32(in.Imm)))
}

// isWide reports whether in takes two instruction slots (a 64-bit load).
func (in insn) isWide() bool { return in.Code == clsLD|modeIMM|sizeDW }

// helperName is the name of helper function id as bpftool prints it
// ("bpf_map_lookup_elem"), or "" for an id it does not know. cilium/ebpf
// names each helper after the kernel's own name in CamelCase
// (FnMapLookupElem for map_lookup_elem), which this undoes.
func helperName(id int32) string {
	if id < 0 || id >= maxHelperID {
		return ""
	}
	s := asm.BuiltinFunc(id).String()
	camel, ok := strings.CutPrefix(s, "Fn")
	if !ok {
		return ""
	}
	var b strings.Builder
	b.WriteString("bpf")
	for _, c := range camel {
		if c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// maxHelperID is __BPF_FUNC_MAX_ID: the helper list has been frozen since
// Linux 6.1 (new kernel functions are kfuncs), at the same value in the
// kernel and in bpftool.
const maxHelperID = 212
