// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"
)

// machine is the emulated CPU and memory of one session: registers,
// frames, regions, the journal, and the environment (maps, packet,
// context, helpers) the program runs in.
type machine struct {
	// r holds r0..r10; r[11] is the may_goto budget; r[15] absorbs the
	// journal's "no register" index so the hot loop needs no branch.
	r      [16]uint64
	pc     int32
	prog   *Program
	insns  []insn
	frames []frame
	// stacks[d] is the stack region of frame depth d, reused by every
	// frame at that depth as the kernel reuses its stack.
	stacks  [maxFrames]int32
	regions []*region
	steps   uint64
	j       journal

	stop    StopReason
	stopMsg string
	// stopCall names the call the engine does not emulate
	// (StopUnknownHelper).
	stopCall string
	faultv   *Fault
	retval   uint64
	done     bool // the entry function returned
	// skipCallAt, when >= 0, is a helper call the user answered by
	// setting r0: it is stepped over once.
	skipCallAt int32

	// Breakpoints of the current program (nil: none) and whether the
	// session watches memory.
	bp           []bool
	bpOn         bool
	skipBP       bool // the next run does not stop at a breakpoint where it starts
	exitDepth    int  // the depth of the last exit in this run (-1: none)
	watchTouched bool

	env *env
}

// maxFrames is MAX_CALL_FRAMES: the entry function and seven calls deep.
const maxFrames = 8

// StopReason says why a run stopped.
type StopReason uint8

// Stop reasons.
const (
	StopNone          StopReason = iota
	StopExit                     // the program returned
	StopBreakpoint               // a breakpoint's slot is next
	StopWatch                    // a watched byte changed
	StopFault                    // the emulator could not serve an access (its bug)
	StopUnknownHelper            // a helper or kfunc the emulator does not know is next
	StopLimit                    // the instruction budget ran out
	StopStep                     // a step command reached its goal
	StopStart                    // reverse execution reached the start
	StopHelper                   // a helper asked to stop (e.g. it cannot be emulated with these arguments)
)

var stopNames = [...]string{"running", "exited", "breakpoint", "watchpoint", "emulator fault", "unknown helper", "instruction limit", "step done", "start of the program", "helper stop"}

// String names the reason.
func (s StopReason) String() string {
	if int(s) < len(stopNames) {
		return stopNames[s]
	}
	return fmt.Sprintf("stop %d", s)
}

// frame is one function activation.
type frame struct {
	prog  *Program
	fn    int32     // the function's first slot
	retPC int32     // where the caller resumes
	saved [5]uint64 // the caller's r6..r10
	depth int
	// cb is set for a callback a helper (bpf_loop, for_each_map_elem)
	// calls: when it returns, cb decides whether to call it again.
	cb callback
}

// callback is the state of a helper that calls a BPF function back.
type callback interface {
	// next is called when the callback returns r0. It either prepares
	// another call (arguments in r1..r5) and returns true, or sets the
	// helper's result in r0 and returns false. Changes are journaled.
	next(m *machine, r0 uint64) bool
	// helper names the helper ("bpf_loop").
	helper() string
}

// codeRegion is region 0: addresses of subprograms (callbacks) are
// regionAddr(0, slot).
const codeRegion = 0

// initMachine prepares registers, stacks and frame 0 for prog.
func (m *machine) initMachine(prog *Program) {
	m.regions = m.regions[:0]
	m.regions = append(m.regions, &region{kind: RegionNone, name: "code"})
	for d := range maxFrames {
		m.stacks[d] = int32(len(m.regions))
		m.regions = append(m.regions, &region{id: m.stacks[d], kind: RegionStack, buf: make([]byte, stackSize), lo: 0, hi: stackSize, name: fmt.Sprintf("stack frame %d", d), frame: d})
	}
	m.prog, m.insns, m.pc = prog, prog.insns, 0
	m.frames = append(m.frames[:0], frame{prog: prog, fn: 0, retPC: -1})
	m.r = [16]uint64{}
	m.r[10] = regionAddr(m.stacks[0], stackSize)
	m.r[11] = mayGotoBudget
	m.skipCallAt = -1
}

// stackSize is MAX_BPF_STACK.
const stackSize = 512

// mayGotoBudget is BPF_MAX_LOOPS: how often may_goto falls through before
// it jumps.
const mayGotoBudget = 8 * 1024 * 1024

// fault stops the run with an emulator fault at the current instruction.
func (m *machine) fault(msg string) {
	if m.stop == StopFault {
		return
	}
	m.faultv = &Fault{PC: int(m.pc), Step: m.steps, Msg: msg}
	m.stop, m.stopMsg = StopFault, m.faultv.Error()
}

// pushFrame enters a function: the caller's r6..r10 are kept, r10 points
// at the top of the new frame's stack.
func (m *machine) pushFrame(f frame) bool {
	if len(m.frames) >= maxFrames {
		m.fault(fmt.Sprintf("call depth over %d frames", maxFrames))
		return false
	}
	f.depth = len(m.frames)
	copy(f.saved[:], m.r[6:11])
	n := len(m.frames)
	m.frames = append(m.frames, f)
	if m.j.on {
		m.j.fn(func() { m.frames = m.frames[:n] })
	}
	m.setReg(10, regionAddr(m.stacks[f.depth], stackSize))
	return true
}

// popFrame leaves the current function: the caller's registers come back.
func (m *machine) popFrame() frame {
	n := len(m.frames) - 1
	f := m.frames[n]
	m.frames = m.frames[:n]
	if m.j.on {
		m.j.fn(func() { m.frames = append(m.frames[:n], f) })
	}
	for i := range 5 {
		m.setReg(uint8(6+i), f.saved[i])
	}
	if f.prog != m.frames[n-1].prog || m.prog != m.frames[n-1].prog {
		m.switchProg(m.frames[n-1].prog)
	}
	return f
}

// switchProg makes p the running program (tail calls, returns from a
// tail-called callee's frame), journaled.
func (m *machine) switchProg(p *Program) {
	old := m.prog
	if old == p {
		return
	}
	if m.j.on {
		m.j.fn(func() { m.setProgNoJournal(old) })
	}
	m.setProgNoJournal(p)
}

func (m *machine) setProgNoJournal(p *Program) {
	m.prog, m.insns = p, p.insns
	if m.env != nil && m.env.bpFor != nil {
		m.bp = m.env.bpFor(p)
	}
}
