// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"fmt"
)

// xop is the engine's own opcode. BPF spreads one operation over the
// opcode byte and the off or imm fields (sdiv is DIV with off 1, movsx is
// MOV with off 8/16/32, atomics put their operation in imm, 64-bit
// immediates say in src what they load); decoding folds all of that into
// one byte once, so that the interpreter dispatches on a single switch.
type xop uint8

const (
	xInvalid xop = iota
	xFiller      // the second slot of a 64-bit load: never executed

	// ALU64, immediate (K) and register (X) operands.
	xAdd64K
	xAdd64X
	xSub64K
	xSub64X
	xMul64K
	xMul64X
	xDiv64K
	xDiv64X
	xSDiv64K
	xSDiv64X
	xMod64K
	xMod64X
	xSMod64K
	xSMod64X
	xOr64K
	xOr64X
	xAnd64K
	xAnd64X
	xXor64K
	xXor64X
	xLsh64K
	xLsh64X
	xRsh64K
	xRsh64X
	xArsh64K
	xArsh64X
	xNeg64
	xMov64K
	xMov64X
	xMovSX8to64
	xMovSX16to64
	xMovSX32to64
	xBswap16
	xBswap32
	xBswap64

	// ALU32.
	xAdd32K
	xAdd32X
	xSub32K
	xSub32X
	xMul32K
	xMul32X
	xDiv32K
	xDiv32X
	xSDiv32K
	xSDiv32X
	xMod32K
	xMod32X
	xSMod32K
	xSMod32X
	xOr32K
	xOr32X
	xAnd32K
	xAnd32X
	xXor32K
	xXor32X
	xLsh32K
	xLsh32X
	xRsh32K
	xRsh32X
	xArsh32K
	xArsh32X
	xNeg32
	xMov32K
	xMov32X
	xMovSX8to32
	xMovSX16to32
	xLe16
	xLe32
	xLe64
	xBe16
	xBe32
	xBe64

	// Jumps. Conditional jumps come in 64-bit (JMP) and 32-bit (JMP32)
	// forms, each with K and X.
	xJa
	xJeq64K
	xJeq64X
	xJne64K
	xJne64X
	xJgt64K
	xJgt64X
	xJge64K
	xJge64X
	xJlt64K
	xJlt64X
	xJle64K
	xJle64X
	xJsgt64K
	xJsgt64X
	xJsge64K
	xJsge64X
	xJslt64K
	xJslt64X
	xJsle64K
	xJsle64X
	xJset64K
	xJset64X
	xJeq32K
	xJeq32X
	xJne32K
	xJne32X
	xJgt32K
	xJgt32X
	xJge32K
	xJge32X
	xJlt32K
	xJlt32X
	xJle32K
	xJle32X
	xJsgt32K
	xJsgt32X
	xJsge32K
	xJsge32X
	xJslt32K
	xJslt32X
	xJsle32K
	xJsle32X
	xJset32K
	xJset32X
	xCallHelper
	xCallLocal
	xCallKfunc
	xExit
	xMayGoto

	// Memory.
	xLdxB
	xLdxH
	xLdxW
	xLdxDW
	xLdxSB
	xLdxSH
	xLdxSW
	xStB
	xStH
	xStW
	xStDW
	xStxB
	xStxH
	xStxW
	xStxDW
	xAtomicW // the operation is in insn.aop
	xAtomicDW
	xLoadAcq // load-acquire: size in insn.size
	xStoreRel

	// 64-bit immediates.
	xLdImm64    // a constant
	xLdMap      // a map's address (BPF_PSEUDO_MAP_FD / _IDX)
	xLdMapValue // an address inside a map's value (BPF_PSEUDO_MAP_VALUE / _IDX_VALUE)
	xLdFunc     // a subprogram's address (BPF_PSEUDO_FUNC), for callbacks
	xLdBTFID    // a kernel object's address (BPF_PSEUDO_BTF_ID): not emulated

	// Legacy packet loads (cBPF heritage, socket filters and TC).
	xLdAbs
	xLdInd
)

// Atomic operations, in insn.aop.
const (
	aAdd uint8 = iota
	aOr
	aAnd
	aXor
	aFetchAdd
	aFetchOr
	aFetchAnd
	aFetchXor
	aXchg
	aCmpxchg
)

// insn is one decoded instruction. pc indexes are raw slots, as in the
// kernel and bpftool: a 64-bit load takes two, and the second holds
// xFiller.
type insn struct {
	op   xop
	dst  uint8
	src  uint8
	size uint8 // access size in bytes for loads, stores and atomics
	aop  uint8 // the atomic operation
	off  int16
	imm  int32
	// imm64 is the constant of a 64-bit load, or for xLdMapValue the
	// offset into the value.
	imm64 uint64
	// target is the absolute slot a jump goes to or a local call enters,
	// and for xLdFunc the subprogram's first slot.
	target int32
	// ref indexes the program's map references (xLdMap, xLdMapValue) or
	// its kfunc names (xCallKfunc).
	ref int32
	// wreg is the register the instruction writes (noReg: none), so
	// that the journal's step record can keep its old value.
	wreg uint8
	// raw is the instruction's bytes as the kernel sees them (first slot).
	raw [8]byte
}

// BPF opcode parts (include/uapi/linux/bpf_common.h, bpf.h).
const (
	clsLD, clsLDX, clsST, clsSTX, clsALU, clsJMP, clsJMP32, clsALU64 = 0, 1, 2, 3, 4, 5, 6, 7

	szW, szH, szB, szDW = 0x00, 0x08, 0x10, 0x18

	mIMM, mABS, mIND, mMEM, mMEMSX, mATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xc0

	srcX = 0x08

	pseudoMapFD, pseudoMapValue, pseudoBTFID, pseudoFunc, pseudoMapIdx, pseudoMapIdxValue = 1, 2, 3, 4, 5, 6
	pseudoCall, pseudoKfuncCall                                                           = 1, 2
)

var sizeBytes = [4]uint8{4, 2, 1, 8} // indexed by size>>3

// rawInsn is one 8-byte slot.
type rawInsn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
	bytes    [8]byte
}

func splitRaw(b []byte) []rawInsn {
	out := make([]rawInsn, len(b)/8)
	for i := range out {
		r := b[i*8 : i*8+8]
		out[i] = rawInsn{code: r[0], dst: r[1] & 0xf, src: r[1] >> 4,
			off: int16(binary.LittleEndian.Uint16(r[2:])), imm: int32(binary.LittleEndian.Uint32(r[4:]))}
		copy(out[i].bytes[:], r)
	}
	return out
}

var aluOps64 = map[uint8][2]xop{
	0x00: {xAdd64K, xAdd64X}, 0x10: {xSub64K, xSub64X}, 0x20: {xMul64K, xMul64X},
	0x30: {xDiv64K, xDiv64X}, 0x40: {xOr64K, xOr64X}, 0x50: {xAnd64K, xAnd64X},
	0x60: {xLsh64K, xLsh64X}, 0x70: {xRsh64K, xRsh64X}, 0x90: {xMod64K, xMod64X},
	0xa0: {xXor64K, xXor64X}, 0xb0: {xMov64K, xMov64X}, 0xc0: {xArsh64K, xArsh64X},
}

var aluOps32 = map[uint8][2]xop{
	0x00: {xAdd32K, xAdd32X}, 0x10: {xSub32K, xSub32X}, 0x20: {xMul32K, xMul32X},
	0x30: {xDiv32K, xDiv32X}, 0x40: {xOr32K, xOr32X}, 0x50: {xAnd32K, xAnd32X},
	0x60: {xLsh32K, xLsh32X}, 0x70: {xRsh32K, xRsh32X}, 0x90: {xMod32K, xMod32X},
	0xa0: {xXor32K, xXor32X}, 0xb0: {xMov32K, xMov32X}, 0xc0: {xArsh32K, xArsh32X},
}

// jmpOps maps a jump operation to its 64-bit K form; X is K+1 and the
// 32-bit forms are the same distance from xJeq32K.
var jmpOps = map[uint8]xop{
	0x10: xJeq64K, 0x50: xJne64K, 0x20: xJgt64K, 0x30: xJge64K, 0xa0: xJlt64K, 0xb0: xJle64K,
	0x60: xJsgt64K, 0x70: xJsge64K, 0xc0: xJslt64K, 0xd0: xJsle64K, 0x40: xJset64K,
}

// decodeInsns turns raw slots into the engine's instructions. Jumps get
// absolute targets; anything the engine does not know is refused here,
// with the slot, rather than met halfway through a run.
func decodeInsns(raw []rawInsn) ([]insn, error) {
	out := make([]insn, len(raw))
	for pc := 0; pc < len(raw); pc++ {
		r := raw[pc]
		in := insn{dst: r.dst, src: r.src, off: r.off, imm: r.imm, raw: r.bytes, ref: -1}
		cls := r.code & 7
		op := r.code & 0xf0
		x := r.code&srcX != 0
		pick := func(kx [2]xop) xop {
			if x {
				return kx[1]
			}
			return kx[0]
		}
		bad := func(why string) error {
			return fmt.Errorf("instruction %d (opcode 0x%02x): %s", pc, r.code, why)
		}
		switch cls {
		case clsALU64, clsALU:
			table := aluOps64
			if cls == clsALU {
				table = aluOps32
			}
			switch op {
			case 0x80: // NEG
				in.op = xNeg64
				if cls == clsALU {
					in.op = xNeg32
				}
			case 0xd0: // END
				switch {
				case cls == clsALU64:
					in.op = map[int32]xop{16: xBswap16, 32: xBswap32, 64: xBswap64}[r.imm]
				case x:
					in.op = map[int32]xop{16: xBe16, 32: xBe32, 64: xBe64}[r.imm]
				default:
					in.op = map[int32]xop{16: xLe16, 32: xLe32, 64: xLe64}[r.imm]
				}
				if in.op == xInvalid {
					return nil, bad(fmt.Sprintf("byte swap of %d bits", r.imm))
				}
			default:
				kx, ok := table[op]
				if !ok {
					return nil, bad("unknown ALU operation")
				}
				in.op = pick(kx)
				switch {
				case (op == 0x30 || op == 0x90) && r.off == 1: // sdiv, smod
					in.op += xSDiv64K - xDiv64K
				case (op == 0x30 || op == 0x90) && r.off != 0:
					return nil, bad("division with an unknown offset")
				case op == 0xb0 && x && r.off != 0:
					switch {
					case cls == clsALU64 && r.off == 8:
						in.op = xMovSX8to64
					case cls == clsALU64 && r.off == 16:
						in.op = xMovSX16to64
					case cls == clsALU64 && r.off == 32:
						in.op = xMovSX32to64
					case cls == clsALU && r.off == 8:
						in.op = xMovSX8to32
					case cls == clsALU && r.off == 16:
						in.op = xMovSX16to32
					case cls == clsALU64 && r.off == 1:
						return nil, bad("addr_space_cast (BPF arenas) is not emulated")
					default:
						return nil, bad(fmt.Sprintf("mov with offset %d", r.off))
					}
				}
			}
		case clsJMP, clsJMP32:
			switch {
			case op == 0x00 && cls == clsJMP: // JA
				in.op, in.target = xJa, int32(pc+1+int(r.off))
			case op == 0x00: // JMP32|JA: gotol, the offset in imm
				in.op, in.target = xJa, int32(pc+1+int(r.imm))
			case op == 0x80 && cls == clsJMP: // CALL
				switch r.src {
				case 0:
					in.op = xCallHelper
				case pseudoCall:
					in.op, in.target = xCallLocal, int32(pc+1+int(r.imm))
				case pseudoKfuncCall:
					in.op = xCallKfunc
				default:
					return nil, bad(fmt.Sprintf("call with src %d", r.src))
				}
			case op == 0x90 && cls == clsJMP:
				in.op = xExit
			case op == 0xe0 && cls == clsJMP && r.src == 0: // JCOND: may_goto
				in.op, in.target = xMayGoto, int32(pc+1+int(r.off))
			default:
				k, ok := jmpOps[op]
				if !ok {
					return nil, bad("unknown jump")
				}
				if cls == clsJMP32 {
					k += xJeq32K - xJeq64K
				}
				if x {
					k++
				}
				in.op, in.target = k, int32(pc+1+int(r.off))
			}
			if in.op != xCallHelper && in.op != xCallKfunc && in.op != xExit && (in.target < 0 || int(in.target) >= len(raw)) {
				return nil, bad(fmt.Sprintf("jumps to %d, outside the program", in.target))
			}
		case clsLDX:
			in.size = sizeBytes[(r.code&0x18)>>3]
			switch r.code & 0xe0 {
			case mMEM:
				in.op = [4]xop{xLdxW, xLdxH, xLdxB, xLdxDW}[(r.code&0x18)>>3]
			case mMEMSX:
				in.op = [4]xop{xLdxSW, xLdxSH, xLdxSB, xInvalid}[(r.code&0x18)>>3]
				if in.op == xInvalid {
					return nil, bad("sign-extending load of 8 bytes")
				}
			default:
				return nil, bad("unknown load mode")
			}
		case clsST:
			in.size = sizeBytes[(r.code&0x18)>>3]
			if r.code&0xe0 != mMEM {
				return nil, bad("unknown store mode")
			}
			in.op = [4]xop{xStW, xStH, xStB, xStDW}[(r.code&0x18)>>3]
		case clsSTX:
			in.size = sizeBytes[(r.code&0x18)>>3]
			switch r.code & 0xe0 {
			case mMEM:
				in.op = [4]xop{xStxW, xStxH, xStxB, xStxDW}[(r.code&0x18)>>3]
			case mATOMIC:
				switch r.imm {
				case 0x100:
					in.op = xLoadAcq
				case 0x110:
					in.op = xStoreRel
				default:
					a, ok := map[int32]uint8{0x00: aAdd, 0x40: aOr, 0x50: aAnd, 0xa0: aXor,
						0x01: aFetchAdd, 0x41: aFetchOr, 0x51: aFetchAnd, 0xa1: aFetchXor,
						0xe1: aXchg, 0xf1: aCmpxchg}[r.imm]
					if !ok {
						return nil, bad(fmt.Sprintf("unknown atomic operation 0x%x", r.imm))
					}
					switch in.size {
					case 4:
						in.op = xAtomicW
					case 8:
						in.op = xAtomicDW
					default:
						return nil, bad("atomic operation on 1 or 2 bytes")
					}
					in.aop = a
				}
			default:
				return nil, bad("unknown store mode")
			}
		case clsLD:
			in.size = sizeBytes[(r.code&0x18)>>3]
			switch r.code & 0xe0 {
			case mIMM:
				if r.code&0x18 != szDW || pc+1 >= len(raw) {
					return nil, bad("a 64-bit load without its second half")
				}
				hi := raw[pc+1]
				in.imm64 = uint64(uint32(r.imm)) | uint64(uint32(hi.imm))<<32
				switch r.src {
				case 0:
					in.op = xLdImm64
				case pseudoMapFD, pseudoMapIdx:
					in.op = xLdMap
				case pseudoMapValue, pseudoMapIdxValue:
					in.op, in.imm64 = xLdMapValue, uint64(uint32(hi.imm))
				case pseudoFunc:
					in.op, in.target = xLdFunc, int32(pc+1+int(r.imm))
				case pseudoBTFID:
					in.op = xLdBTFID
				default:
					return nil, bad(fmt.Sprintf("64-bit load with src %d", r.src))
				}
				in.wreg = in.dst
				out[pc] = in
				pc++
				out[pc] = insn{op: xFiller, ref: -1, raw: hi.bytes, wreg: noReg}
				continue
			case mABS:
				in.op = xLdAbs
			case mIND:
				in.op = xLdInd
			default:
				return nil, bad("unknown load mode")
			}
		}
		if in.op == xInvalid {
			return nil, bad("unknown instruction")
		}
		in.wreg = writtenReg(&in)
		out[pc] = in
	}
	return out, nil
}

// writtenReg is the register an instruction writes, for the journal.
func writtenReg(in *insn) uint8 {
	switch {
	case in.op >= xAdd64K && in.op <= xBe64, in.op >= xLdxB && in.op <= xLdxSW, in.op == xLoadAcq,
		in.op >= xLdImm64 && in.op <= xLdBTFID:
		return in.dst
	case in.op == xLdAbs || in.op == xLdInd || in.op == xCallHelper || in.op == xCallKfunc:
		return 0
	case in.op == xAtomicW || in.op == xAtomicDW:
		switch in.aop {
		case aFetchAdd, aFetchOr, aFetchAnd, aFetchXor, aXchg:
			return in.src
		case aCmpxchg:
			return 0
		}
	}
	return noReg
}
