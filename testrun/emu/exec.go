// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"math/bits"
)

// run executes at most n instructions. It stops early when the program
// exits, when an instruction cannot be emulated (the step is then undone,
// so the state is the one before it), when a breakpoint's slot comes next
// (except at the first instruction, so that a run can leave a
// breakpoint), or when a watched byte changes (after the store).
//
// This is the hot loop: it allocates nothing per instruction (the
// journal's slice grows amortized) and dispatches on one byte.
func (m *machine) run(n uint64) {
	m.stop = StopNone
	if m.done {
		m.stop = StopExit
		return
	}
	r := &m.r
	m.exitDepth = -1
	skip := m.skipBP
	m.skipBP = false
	for i := uint64(0); i < n; i++ {
		pc := m.pc
		if m.watchTouched {
			// The last instruction (a store, a helper) wrote watched
			// memory: stop after it if a watched value changed.
			m.watchTouched = false
			if m.env.watchChanged(m) {
				m.stop = StopWatch
				return
			}
		}
		if m.bpOn && (i > 0 || !skip) && m.bp != nil && m.bp[pc] {
			m.stop = StopBreakpoint
			return
		}
		in := &m.insns[pc]
		if m.j.on {
			// The step record, written in place: push does not inline.
			j := &m.j
			if j.n == len(j.ring) {
				j.makeRoom()
			}
			e := &j.ring[(j.head+j.n)&j.mask]
			e.kind, e.pc, e.reg, e.old, e.size = recStep, pc, in.wreg, r[in.wreg&15], uint8(len(m.frames))
			j.n++
		}
		m.steps++
		d, s := in.dst, in.src
		switch in.op {
		// ALU64.
		case xAdd64K:
			r[d] += uint64(int64(in.imm))
		case xAdd64X:
			r[d] += r[s]
		case xSub64K:
			r[d] -= uint64(int64(in.imm))
		case xSub64X:
			r[d] -= r[s]
		case xMul64K:
			r[d] *= uint64(int64(in.imm))
		case xMul64X:
			r[d] *= r[s]
		case xDiv64K:
			r[d] = udiv64(r[d], uint64(int64(in.imm)))
		case xDiv64X:
			r[d] = udiv64(r[d], r[s])
		case xSDiv64K:
			r[d] = sdiv64(r[d], uint64(int64(in.imm)))
		case xSDiv64X:
			r[d] = sdiv64(r[d], r[s])
		case xMod64K:
			r[d] = umod64(r[d], uint64(int64(in.imm)))
		case xMod64X:
			r[d] = umod64(r[d], r[s])
		case xSMod64K:
			r[d] = smod64(r[d], uint64(int64(in.imm)))
		case xSMod64X:
			r[d] = smod64(r[d], r[s])
		case xOr64K:
			r[d] |= uint64(int64(in.imm))
		case xOr64X:
			r[d] |= r[s]
		case xAnd64K:
			r[d] &= uint64(int64(in.imm))
		case xAnd64X:
			r[d] &= r[s]
		case xXor64K:
			r[d] ^= uint64(int64(in.imm))
		case xXor64X:
			r[d] ^= r[s]
		case xLsh64K:
			r[d] <<= uint64(in.imm) & 63
		case xLsh64X:
			r[d] <<= r[s] & 63
		case xRsh64K:
			r[d] >>= uint64(in.imm) & 63
		case xRsh64X:
			r[d] >>= r[s] & 63
		case xArsh64K:
			r[d] = uint64(int64(r[d]) >> (uint64(in.imm) & 63))
		case xArsh64X:
			r[d] = uint64(int64(r[d]) >> (r[s] & 63))
		case xNeg64:
			r[d] = -r[d]
		case xMov64K:
			r[d] = uint64(int64(in.imm))
		case xMov64X:
			r[d] = r[s]
		case xMovSX8to64:
			r[d] = uint64(int64(int8(r[s])))
		case xMovSX16to64:
			r[d] = uint64(int64(int16(r[s])))
		case xMovSX32to64:
			r[d] = uint64(int64(int32(r[s])))
		case xBswap16, xBe16:
			r[d] = uint64(bits.ReverseBytes16(uint16(r[d])))
		case xBswap32, xBe32:
			r[d] = uint64(bits.ReverseBytes32(uint32(r[d])))
		case xBswap64, xBe64:
			r[d] = bits.ReverseBytes64(r[d])
		case xLe16:
			r[d] = uint64(uint16(r[d]))
		case xLe32:
			r[d] = uint64(uint32(r[d]))
		case xLe64:

		// ALU32: the result is zero-extended into the 64-bit register.
		case xAdd32K:
			r[d] = uint64(uint32(r[d]) + uint32(in.imm))
		case xAdd32X:
			r[d] = uint64(uint32(r[d]) + uint32(r[s]))
		case xSub32K:
			r[d] = uint64(uint32(r[d]) - uint32(in.imm))
		case xSub32X:
			r[d] = uint64(uint32(r[d]) - uint32(r[s]))
		case xMul32K:
			r[d] = uint64(uint32(r[d]) * uint32(in.imm))
		case xMul32X:
			r[d] = uint64(uint32(r[d]) * uint32(r[s]))
		case xDiv32K:
			r[d] = udiv32(r[d], uint32(in.imm))
		case xDiv32X:
			r[d] = udiv32(r[d], uint32(r[s]))
		case xSDiv32K:
			r[d] = sdiv32(r[d], uint32(in.imm))
		case xSDiv32X:
			r[d] = sdiv32(r[d], uint32(r[s]))
		case xMod32K:
			r[d] = umod32(r[d], uint32(in.imm))
		case xMod32X:
			r[d] = umod32(r[d], uint32(r[s]))
		case xSMod32K:
			r[d] = smod32(r[d], uint32(in.imm))
		case xSMod32X:
			r[d] = smod32(r[d], uint32(r[s]))
		case xOr32K:
			r[d] = uint64(uint32(r[d]) | uint32(in.imm))
		case xOr32X:
			r[d] = uint64(uint32(r[d]) | uint32(r[s]))
		case xAnd32K:
			r[d] = uint64(uint32(r[d]) & uint32(in.imm))
		case xAnd32X:
			r[d] = uint64(uint32(r[d]) & uint32(r[s]))
		case xXor32K:
			r[d] = uint64(uint32(r[d]) ^ uint32(in.imm))
		case xXor32X:
			r[d] = uint64(uint32(r[d]) ^ uint32(r[s]))
		case xLsh32K:
			r[d] = uint64(uint32(r[d]) << (uint32(in.imm) & 31))
		case xLsh32X:
			r[d] = uint64(uint32(r[d]) << (uint32(r[s]) & 31))
		case xRsh32K:
			r[d] = uint64(uint32(r[d]) >> (uint32(in.imm) & 31))
		case xRsh32X:
			r[d] = uint64(uint32(r[d]) >> (uint32(r[s]) & 31))
		case xArsh32K:
			r[d] = uint64(uint32(int32(uint32(r[d])) >> (uint32(in.imm) & 31)))
		case xArsh32X:
			r[d] = uint64(uint32(int32(uint32(r[d])) >> (uint32(r[s]) & 31)))
		case xNeg32:
			r[d] = uint64(-uint32(r[d]))
		case xMov32K:
			r[d] = uint64(uint32(in.imm))
		case xMov32X:
			r[d] = uint64(uint32(r[s]))
		case xMovSX8to32:
			r[d] = uint64(uint32(int32(int8(r[s]))))
		case xMovSX16to32:
			r[d] = uint64(uint32(int32(int16(r[s]))))

		// Jumps.
		case xJa:
			m.pc = in.target
			continue
		case xJeq64K:
			if r[d] == uint64(int64(in.imm)) {
				m.pc = in.target
				continue
			}
		case xJeq64X:
			if r[d] == r[s] {
				m.pc = in.target
				continue
			}
		case xJne64K:
			if r[d] != uint64(int64(in.imm)) {
				m.pc = in.target
				continue
			}
		case xJne64X:
			if r[d] != r[s] {
				m.pc = in.target
				continue
			}
		case xJgt64K:
			if r[d] > uint64(int64(in.imm)) {
				m.pc = in.target
				continue
			}
		case xJgt64X:
			if r[d] > r[s] {
				m.pc = in.target
				continue
			}
		case xJge64K:
			if r[d] >= uint64(int64(in.imm)) {
				m.pc = in.target
				continue
			}
		case xJge64X:
			if r[d] >= r[s] {
				m.pc = in.target
				continue
			}
		case xJlt64K:
			if r[d] < uint64(int64(in.imm)) {
				m.pc = in.target
				continue
			}
		case xJlt64X:
			if r[d] < r[s] {
				m.pc = in.target
				continue
			}
		case xJle64K:
			if r[d] <= uint64(int64(in.imm)) {
				m.pc = in.target
				continue
			}
		case xJle64X:
			if r[d] <= r[s] {
				m.pc = in.target
				continue
			}
		case xJsgt64K:
			if int64(r[d]) > int64(in.imm) {
				m.pc = in.target
				continue
			}
		case xJsgt64X:
			if int64(r[d]) > int64(r[s]) {
				m.pc = in.target
				continue
			}
		case xJsge64K:
			if int64(r[d]) >= int64(in.imm) {
				m.pc = in.target
				continue
			}
		case xJsge64X:
			if int64(r[d]) >= int64(r[s]) {
				m.pc = in.target
				continue
			}
		case xJslt64K:
			if int64(r[d]) < int64(in.imm) {
				m.pc = in.target
				continue
			}
		case xJslt64X:
			if int64(r[d]) < int64(r[s]) {
				m.pc = in.target
				continue
			}
		case xJsle64K:
			if int64(r[d]) <= int64(in.imm) {
				m.pc = in.target
				continue
			}
		case xJsle64X:
			if int64(r[d]) <= int64(r[s]) {
				m.pc = in.target
				continue
			}
		case xJset64K:
			if r[d]&uint64(int64(in.imm)) != 0 {
				m.pc = in.target
				continue
			}
		case xJset64X:
			if r[d]&r[s] != 0 {
				m.pc = in.target
				continue
			}
		case xJeq32K:
			if uint32(r[d]) == uint32(in.imm) {
				m.pc = in.target
				continue
			}
		case xJeq32X:
			if uint32(r[d]) == uint32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJne32K:
			if uint32(r[d]) != uint32(in.imm) {
				m.pc = in.target
				continue
			}
		case xJne32X:
			if uint32(r[d]) != uint32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJgt32K:
			if uint32(r[d]) > uint32(in.imm) {
				m.pc = in.target
				continue
			}
		case xJgt32X:
			if uint32(r[d]) > uint32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJge32K:
			if uint32(r[d]) >= uint32(in.imm) {
				m.pc = in.target
				continue
			}
		case xJge32X:
			if uint32(r[d]) >= uint32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJlt32K:
			if uint32(r[d]) < uint32(in.imm) {
				m.pc = in.target
				continue
			}
		case xJlt32X:
			if uint32(r[d]) < uint32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJle32K:
			if uint32(r[d]) <= uint32(in.imm) {
				m.pc = in.target
				continue
			}
		case xJle32X:
			if uint32(r[d]) <= uint32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJsgt32K:
			if int32(r[d]) > in.imm {
				m.pc = in.target
				continue
			}
		case xJsgt32X:
			if int32(r[d]) > int32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJsge32K:
			if int32(r[d]) >= in.imm {
				m.pc = in.target
				continue
			}
		case xJsge32X:
			if int32(r[d]) >= int32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJslt32K:
			if int32(r[d]) < in.imm {
				m.pc = in.target
				continue
			}
		case xJslt32X:
			if int32(r[d]) < int32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJsle32K:
			if int32(r[d]) <= in.imm {
				m.pc = in.target
				continue
			}
		case xJsle32X:
			if int32(r[d]) <= int32(r[s]) {
				m.pc = in.target
				continue
			}
		case xJset32K:
			if uint32(r[d])&uint32(in.imm) != 0 {
				m.pc = in.target
				continue
			}
		case xJset32X:
			if uint32(r[d])&uint32(r[s]) != 0 {
				m.pc = in.target
				continue
			}
		case xMayGoto:
			// The kernel gives each program run BPF_MAX_LOOPS passes
			// through its may_goto instructions, then jumps.
			if r[11] == 0 {
				m.pc = in.target
				continue
			}
			m.setReg(11, r[11]-1)

		// Loads and stores.
		case xLdxB, xLdxH, xLdxW, xLdxDW:
			v, ok := m.load(r[s]+uint64(int64(in.off)), in.size)
			if !ok {
				m.abortStep()
				return
			}
			r[d] = v
		case xLdxSB:
			v, ok := m.load(r[s]+uint64(int64(in.off)), 1)
			if !ok {
				m.abortStep()
				return
			}
			r[d] = uint64(int64(int8(v)))
		case xLdxSH:
			v, ok := m.load(r[s]+uint64(int64(in.off)), 2)
			if !ok {
				m.abortStep()
				return
			}
			r[d] = uint64(int64(int16(v)))
		case xLdxSW:
			v, ok := m.load(r[s]+uint64(int64(in.off)), 4)
			if !ok {
				m.abortStep()
				return
			}
			r[d] = uint64(int64(int32(v)))
		case xStB, xStH, xStW, xStDW:
			if !m.store(r[d]+uint64(int64(in.off)), in.size, uint64(int64(in.imm))) {
				m.abortStep()
				return
			}
		case xStxB, xStxH, xStxW, xStxDW:
			if !m.store(r[d]+uint64(int64(in.off)), in.size, r[s]) {
				m.abortStep()
				return
			}
		case xAtomicW, xAtomicDW:
			if !m.atomic(in) {
				m.abortStep()
				return
			}
		case xLoadAcq:
			v, ok := m.load(r[s]+uint64(int64(in.off)), in.size)
			if !ok {
				m.abortStep()
				return
			}
			r[d] = v
		case xStoreRel:
			if !m.store(r[d]+uint64(int64(in.off)), in.size, r[s]) {
				m.abortStep()
				return
			}

		// 64-bit immediates.
		case xLdImm64:
			r[d] = in.imm64
			m.pc = pc + 2
			continue
		case xLdMap:
			a, ok := m.env.mapAddr(m, in.ref)
			if !ok {
				m.abortStep()
				return
			}
			r[d] = a
			m.pc = pc + 2
			continue
		case xLdMapValue:
			a, ok := m.env.mapValueAddr(m, in.ref, in.imm64)
			if !ok {
				m.abortStep()
				return
			}
			r[d] = a
			m.pc = pc + 2
			continue
		case xLdFunc:
			r[d] = regionAddr(codeRegion, uint32(in.target))
			m.pc = pc + 2
			continue
		case xLdBTFID:
			m.fault("the program loads the address of a kernel object (BPF_PSEUDO_BTF_ID), which the emulator does not model")
			m.abortStep()
			return
		case xLdAbs, xLdInd:
			if !m.ldAbs(in) {
				if m.stop == StopFault {
					m.abortStep()
				}
				return
			}

		// Calls and exits set the next slot themselves.
		case xCallHelper:
			if !m.callHelper(in) {
				return
			}
			continue
		case xCallKfunc:
			if !m.callKfunc(in) {
				return
			}
			continue
		case xCallLocal:
			if !m.pushFrame(frame{prog: m.prog, fn: in.target, retPC: pc + 1}) {
				m.abortStep()
				return
			}
			m.pc = in.target
			continue
		case xExit:
			if !m.exit() {
				return
			}
			continue

		case xFiller:
			m.fault("execution reached the second half of a 64-bit load")
			m.abortStep()
			return
		default:
			m.fault("an instruction the decoder let through is not implemented")
			m.abortStep()
			return
		}
		m.pc = pc + 1
	}
	if m.watchTouched {
		m.watchTouched = false
		if m.env.watchChanged(m) {
			m.stop = StopWatch
			return
		}
	}
	if m.stop == StopNone {
		m.stop = StopLimit
	}
}

// abortStep undoes the instruction that could not complete, so that the
// session shows the state before it, at its slot.
func (m *machine) abortStep() {
	pc := m.pc
	if m.j.on && m.j.n > 0 {
		m.undoStep()
	} else {
		m.steps--
	}
	m.pc = pc
	if m.faultv != nil {
		m.faultv.Step = m.steps
	}
}

// exit returns from the current function: from the entry function the
// program is done; from a callback, the helper that called it decides
// whether to call it again.
func (m *machine) exit() bool {
	m.exitDepth = len(m.frames) - 1
	if len(m.frames) == 1 {
		if m.j.on {
			old := m.retval
			m.j.fn(func() { m.retval, m.done = old, false })
		}
		// The pc stays on the exit: the program's last instruction.
		m.retval, m.done = m.r[0], true
		m.stop = StopExit
		return false
	}
	f := &m.frames[len(m.frames)-1]
	if f.cb != nil {
		if f.cb.next(m, m.r[0]) {
			m.pc = f.fn
			return m.stop == StopNone
		}
		popped := m.popFrame()
		m.pc = popped.retPC
		return m.stop == StopNone
	}
	popped := m.popFrame()
	m.pc = popped.retPC
	return true
}

// atomic performs an atomic read-modify-write.
func (m *machine) atomic(in *insn) bool {
	addr := m.r[in.dst] + uint64(int64(in.off))
	size := in.size
	old, ok := m.load(addr, size)
	if !ok {
		return false
	}
	src := m.r[in.src]
	mask := ^uint64(0)
	if size == 4 {
		mask = 0xffffffff
		src &= mask
	}
	var nv uint64
	write := true
	switch in.aop {
	case aAdd, aFetchAdd:
		nv = old + src
	case aOr, aFetchOr:
		nv = old | src
	case aAnd, aFetchAnd:
		nv = old & src
	case aXor, aFetchXor:
		nv = old ^ src
	case aXchg:
		nv = src
	case aCmpxchg:
		if old != m.r[0]&mask {
			write = false
		}
		nv = src
	}
	if write && !m.store(addr, size, nv&mask) {
		return false
	}
	switch in.aop {
	case aFetchAdd, aFetchOr, aFetchAnd, aFetchXor, aXchg:
		m.r[in.src] = old
	case aCmpxchg:
		m.r[0] = old
	}
	return true
}

// ldAbs runs the legacy packet loads (BPF_LD|BPF_ABS/IND): r0 gets size
// bytes at the offset from skb->data, big-endian; out of range, the
// program ends returning 0, as the kernel's interpreter and JITs do.
func (m *machine) ldAbs(in *insn) bool {
	p := m.env.pkt
	if p == nil || m.env.skb == nil {
		m.fault("a legacy packet load (LD_ABS/LD_IND) in a program without an skb")
		return false
	}
	off := int64(in.imm)
	if in.op == xLdInd {
		off = int64(int32(uint32(m.r[in.src]) + uint32(in.imm)))
	}
	n := int64(in.size)
	if off < 0 || off+n > int64(p.end-p.data) {
		if m.j.on {
			old := m.retval
			m.j.fn(func() { m.retval, m.done = old, false })
		}
		m.r[0] = 0
		m.retval, m.done = 0, true
		m.stop = StopExit
		return false
	}
	b := m.regions[p.region].buf[int64(p.data)+off:]
	switch n {
	case 1:
		m.r[0] = uint64(b[0])
	case 2:
		m.r[0] = uint64(binary.BigEndian.Uint16(b))
	default:
		m.r[0] = uint64(binary.BigEndian.Uint32(b))
	}
	return true
}

func udiv64(a, b uint64) uint64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func umod64(a, b uint64) uint64 {
	if b == 0 {
		return a
	}
	return a % b
}

// sdiv64 and smod64 follow the verifier's rewrite of signed division:
// by zero gives 0 (div) or leaves dst (mod); by -1 negates (div) or gives
// 0 (mod), so that INT_MIN / -1 does not trap.
func sdiv64(a, b uint64) uint64 {
	switch int64(b) {
	case 0:
		return 0
	case -1:
		return -a
	}
	return uint64(int64(a) / int64(b))
}

func smod64(a, b uint64) uint64 {
	switch int64(b) {
	case 0:
		return a
	case -1:
		return 0
	}
	return uint64(int64(a) % int64(b))
}

// The 32-bit forms work on the low halves; mod by zero leaves dst's low
// half, zero-extended, as the verifier's rewrite (w_dst = w_dst) does.
func udiv32(a uint64, b uint32) uint64 {
	if b == 0 {
		return 0
	}
	return uint64(uint32(a) / b)
}

func umod32(a uint64, b uint32) uint64 {
	if b == 0 {
		return uint64(uint32(a))
	}
	return uint64(uint32(a) % b)
}

func sdiv32(a uint64, b uint32) uint64 {
	switch int32(b) {
	case 0:
		return 0
	case -1:
		return uint64(-uint32(a))
	}
	return uint64(uint32(int32(uint32(a)) / int32(b)))
}

func smod32(a uint64, b uint32) uint64 {
	switch int32(b) {
	case 0:
		return uint64(uint32(a))
	case -1:
		return 0
	}
	return uint64(uint32(int32(uint32(a)) % int32(b)))
}
