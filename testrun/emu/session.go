// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Config says what a session runs and on what.
type Config struct {
	// Program is the program to run (Object.Program, or ForProgram for a
	// loaded one).
	Program *Program
	// Maps binds the program's maps; nil runs it on private maps made
	// from its object (empty, or the object's initial data).
	Maps *Maps
	// Packet is the input packet: the frame from its Ethernet header on,
	// as BPF_PROG_TEST_RUN's data_in (XDP metadata first when Ctx says
	// there is some).
	Packet []byte
	// Ctx is the context as BPF_PROG_TEST_RUN's ctx_in; nil is what
	// bpfsh's run sends when no ctx is given (xdp_md with data_end set,
	// a zero __sk_buff, ...).
	Ctx []byte
	// CPU is the CPU the program runs on: bpf_get_smp_processor_id and
	// per-CPU maps use it.
	CPU int
	// Time is the base of the emulated clock (bpf_ktime_get_ns returns
	// it plus one nanosecond per instruction executed); 0 takes
	// CLOCK_MONOTONIC when the session starts. Seed seeds
	// bpf_get_prandom_u32; 0 is 1.
	Time uint64
	Seed uint64
	// PidTgid is what bpf_get_current_pid_tgid returns.
	PidTgid uint64
	// NoJournal turns reverse execution off: plain runs go faster.
	NoJournal bool
	// JournalLimit bounds the undo journal in records (0: 2M, about
	// 80 MB); going back further replays from the start.
	JournalLimit int
	// MaxSteps bounds one command's instructions (0: 1<<32), so that a
	// program the emulator gets wrong cannot spin for ever.
	MaxSteps uint64
}

// Maps says where a session's maps come from.
type Maps struct {
	// ByName binds the object's maps, by the names the object gives them
	// (".rodata", "hx_flows"), to kernel maps. The session reads them and
	// never writes them (except Session.Commit).
	ByName map[string]*ebpf.Map
	// ByProgram binds other programs' maps in their order (programs
	// entered by tail calls); filled by Programs.
	ByProgram map[*Program][]*ebpf.Map
	// Private makes maps not in ByName exist only in the session, as the
	// object's spec describes them. PrivateReadOnly does so only for
	// read-only data (.rodata).
	Private         bool
	PrivateReadOnly bool
	// NoDrain forbids reading queues and stacks, which the kernel only
	// lets user space do by popping their values (the emulator pushes
	// them back at once); without it, only a queue's head is known.
	NoDrain bool
	// WalkLimit, when set, bounds how many keys of a kernel map a session
	// lists (a for_each walk, or counting the entries before an insert):
	// past it the session stops with an error rather than walk a
	// million-entry map key by key.
	WalkLimit int
	// Programs finds a tail call's target by its kernel program id: the
	// program and its maps in its order.
	Programs func(id ebpf.ProgramID) (*Program, []*ebpf.Map, error)
}

// Session is one program run under the engine's control: it can be
// stepped forwards and backwards, stopped at breakpoints and
// watchpoints, inspected and changed, and checked against the kernel.
// A Session is not safe for concurrent use.
type Session struct {
	cfg    Config
	m      *machine
	caches map[string]*cachedSource

	edits []edit

	bps     []*Breakpoint
	bpBits  map[*Program][]bool
	nextBP  int
	watches []*Watch
	hit     *WatchHit
	lastBP  int
	// replaying silences watchpoints while a replay rebuilds a state.
	replaying bool
}

// edit is a change the user made at a step: part of the session's
// history, applied again when execution passes that step.
type edit struct {
	step uint64
	kind uint8
	reg  uint8
	val  uint64
	addr uint64
	data []byte
	pc   int32
}

const (
	editReg uint8 = iota
	editMem
	editAnswer // r0 set at an unknown helper, which is then stepped over
)

// NewSession prepares cfg.Program to run: its maps bound, its packet and
// context laid out, stopped before its first instruction.
func NewSession(cfg Config) (*Session, error) {
	if cfg.Program == nil {
		return nil, errors.New("new session: no program")
	}
	if cfg.Time == 0 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err == nil {
			cfg.Time = uint64(ts.Nano())
		} else {
			cfg.Time = uint64(time.Now().UnixNano())
		}
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.MaxSteps == 0 {
		cfg.MaxSteps = 1 << 32
	}
	s := &Session{cfg: cfg, caches: map[string]*cachedSource{}, bpBits: map[*Program][]bool{}, nextBP: 1}
	m, err := s.newMachine()
	if err != nil {
		return nil, fmt.Errorf("new session of %s: %w", cfg.Program.Name, err)
	}
	s.m = m
	return s, nil
}

// newMachine builds the state before the first instruction; edits at
// step 0 are applied.
func (s *Session) newMachine() (*machine, error) {
	m := &machine{}
	m.j.limit = s.cfg.JournalLimit
	m.initMachine(s.cfg.Program)
	cfg := s.cfg
	e, err := newEnv(m, &cfg, s.caches)
	if err != nil {
		return nil, err
	}
	e.bpFor = s.bitsFor
	e.watchChanged = s.watchChanged
	e.applyWatches = s.applyWatches
	s.markWatches(m)
	m.bp = s.bitsFor(m.prog)
	m.bpOn = len(s.bps) > 0
	m.j.on = !s.cfg.NoJournal
	s.applyEdits(m, 0)
	return m, nil
}

// applyEdits applies the edits made at step.
func (s *Session) applyEdits(m *machine, step uint64) {
	for _, e := range s.edits {
		if e.step != step {
			continue
		}
		switch e.kind {
		case editReg:
			m.setReg(e.reg, e.val)
		case editMem:
			m.writeBytes(e.addr, e.data)
		case editAnswer:
			m.setReg(0, e.val)
			m.setSkip(e.pc)
		}
	}
}

// nextEdit is the step of the first edit after step (0: none).
func (s *Session) nextEdit(step uint64) uint64 {
	next := uint64(0)
	for _, e := range s.edits {
		if e.step > step && (next == 0 || e.step < next) {
			next = e.step
		}
	}
	return next
}

// addEdit records a change at the current step: the future past it is
// forgotten (it would have to be recomputed anyway).
func (s *Session) addEdit(e edit) {
	e.step = s.m.steps
	s.edits = slices.DeleteFunc(s.edits, func(x edit) bool { return x.step > e.step })
	s.edits = append(s.edits, e)
}

// Program is the program the session runs (the entry program; a tail
// call may be running another, see Func).
func (s *Session) Program() *Program { return s.cfg.Program }

// Steps is how many instructions have run.
func (s *Session) Steps() uint64 { return s.m.steps }

// PC is the slot of the next instruction (of the running program).
func (s *Session) PC() int { return int(s.m.pc) }

// Running is the program whose instructions run now: the entry program,
// or the one a tail call entered.
func (s *Session) Running() *Program { return s.m.prog }

// Done reports whether the program has returned, and Retval what.
func (s *Session) Done() bool     { return s.m.done }
func (s *Session) Retval() uint64 { return s.m.retval }

// Reg returns register r (0..10).
func (s *Session) Reg(r int) uint64 {
	if r < 0 || r > 10 {
		return 0
	}
	return s.m.r[r]
}

// Register is one register and what it points to.
type Register struct {
	Name  string   `json:"name"`
	Value uint64   `json:"value"`
	Ptr   *Pointer `json:"pointer,omitempty"`
}

// Regs returns r0..r10 with their provenance.
func (s *Session) Regs() []Register {
	out := make([]Register, 11)
	for i := range out {
		out[i] = Register{Name: fmt.Sprintf("r%d", i), Value: s.m.r[i]}
		if p, ok := s.m.pointer(s.m.r[i]); ok {
			out[i].Ptr = &p
		}
	}
	return out
}

// Describe says where v points, if it points into memory the session
// knows.
func (s *Session) Describe(v uint64) (Pointer, bool) { return s.m.pointer(v) }

// Answers are the results the user gave, in the order of the run, for
// calls the engine does not emulate (r0 set at an unknown helper). A call
// answered twice (after going back) counts with its last answer.
func (s *Session) Answers() []uint64 {
	var out []uint64
	last := uint64(0)
	for _, e := range s.edits {
		switch {
		case e.kind != editAnswer:
		case len(out) > 0 && e.step == last:
			out[len(out)-1] = e.val
		default:
			out, last = append(out, e.val), e.step
		}
	}
	return out
}

// runAnswering runs s on, answering each call the engine does not emulate
// with the next of answers while there are any.
func runAnswering(s *Session, answers []uint64) Stop {
	stop := s.Run()
	for stop.Reason == StopUnknownHelper && len(answers) > 0 {
		if err := s.SetReg(0, answers[0]); err != nil {
			return stop
		}
		answers = answers[1:]
		stop = s.Run()
	}
	return stop
}

// SetReg changes register r (0..9; r10 is the frame pointer) at the
// current step. Stopped at a helper the engine does not emulate, setting
// r0 answers the call: the next step steps over it.
func (s *Session) SetReg(r int, v uint64) error {
	if r < 0 || r > 9 {
		return fmt.Errorf("set r%d: only r0 to r9 can be set (r10 is the frame pointer)", r)
	}
	e := edit{kind: editReg, reg: uint8(r), val: v}
	if r == 0 && s.m.stop == StopUnknownHelper {
		e.kind, e.pc = editAnswer, s.m.pc
	}
	s.addEdit(e)
	s.m.setRegEdit(e)
	s.refreshWatches()
	return nil
}

func (m *machine) setRegEdit(e edit) {
	switch e.kind {
	case editAnswer:
		m.setReg(0, e.val)
		m.setSkip(e.pc)
	default:
		m.setReg(e.reg, e.val)
	}
}

// Read returns n bytes at addr (an address a register or Describe
// gave): memory as the program sees it now.
func (s *Session) Read(addr uint64, n int) ([]byte, error) {
	if n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("read %d bytes: too many", n)
	}
	r, off, ok := s.m.resolve(addr, uint32(n))
	if !ok {
		return nil, fmt.Errorf("read %d bytes at %s: %s", n, s.m.describeAddr(addr), s.m.describeAccess(addr, uint32(n), false))
	}
	// The context's bytes are its plain fields; computed ones (pointers)
	// read through Load.
	return append([]byte(nil), r.buf[off:off+uint32(n)]...), nil
}

// Load reads size (1, 2, 4, 8) bytes at addr exactly as a load
// instruction of the program would: context fields through the
// context's model (xdp_md.data gives a packet pointer).
func (s *Session) Load(addr uint64, size int) (uint64, error) {
	switch size {
	case 1, 2, 4, 8:
	default:
		return 0, fmt.Errorf("load of %d bytes: loads are 1, 2, 4 or 8 bytes", size)
	}
	m := s.m
	r, off, ok := m.resolve(addr, uint32(size))
	if !ok {
		return 0, fmt.Errorf("load %d bytes at %s: %s", size, m.describeAddr(addr), m.describeAccess(addr, uint32(size), false))
	}
	if r.ctx != nil {
		return r.ctx.load(m, off, uint8(size))
	}
	return field(r.buf, off, uint8(size)), nil
}

// Write changes memory at addr at the current step, as a store by the
// program would (context fields through the context's model).
func (s *Session) Write(addr uint64, b []byte) error {
	r, off, ok := s.m.resolve(addr, uint32(len(b)))
	if !ok {
		return fmt.Errorf("write %d bytes at %s: %s", len(b), s.m.describeAddr(addr), s.m.describeAccess(addr, uint32(len(b)), true))
	}
	if r.ro {
		return fmt.Errorf("write at %s: read-only memory", s.m.describeAddr(addr))
	}
	if r.ctx != nil {
		return fmt.Errorf("write at %s: set context fields with the program's own field sizes through a register instead", s.m.describeAddr(addr))
	}
	_ = off
	e := edit{kind: editMem, addr: addr, data: append([]byte(nil), b...)}
	s.addEdit(e)
	s.m.writeBytes(addr, e.data)
	s.refreshWatches()
	return nil
}

// FrameInfo is one frame of the call stack.
type FrameInfo struct {
	Depth int    `json:"depth"`
	Func  string `json:"func"`
	PC    int    `json:"pc"` // the next slot in this frame (the return slot for callers)
	Line  *SourceLine
	// Callback names the helper that called this frame back (bpf_loop),
	// with its iteration.
	Callback string `json:"callback,omitempty"`
	Program  string `json:"program"`
}

// Backtrace lists the frames, innermost first.
func (s *Session) Backtrace() []FrameInfo {
	m := s.m
	var out []FrameInfo
	pc := int(m.pc)
	for d := len(m.frames) - 1; d >= 0; d-- {
		f := m.frames[d]
		fi := FrameInfo{Depth: d, PC: pc, Program: f.prog.Name}
		if fn, ok := f.prog.FuncAt(pc); ok {
			fi.Func = fn.Name
		}
		if l, ok := f.prog.LineAt(pc); ok {
			fi.Line = &l
		}
		switch cb := f.cb.(type) {
		case *loop:
			fi.Callback = fmt.Sprintf("bpf_loop iteration %d of %d", cb.i, cb.n)
		case *forEach:
			fi.Callback = fmt.Sprintf("bpf_for_each_map_elem over %s, element %d", cb.v.name, cb.i)
		}
		out = append(out, fi)
		pc = int(f.retPC)
	}
	return out
}

// Events lists what the program did so far: helper calls, printk lines,
// ring buffer records, tail calls.
func (s *Session) Events() []Event { return slices.Clone(s.m.env.events) }

// Notes say why this run cannot be compared with the kernel's in full
// (the time, random numbers, LRU evictions).
func (s *Session) Notes() []string { return slices.Concat(s.m.env.notes, s.m.env.soft) }

// Close releases the session. Kernel maps stay as they are: the session
// never wrote them (unless Commit was called).
func (s *Session) Close() error { return nil }
