// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/testrun"
)

// Differential is a testrun.RunObserver that runs every test run it sees
// through the emulator as well, on the same maps just before the kernel
// runs it, and compares the two: the return value, the output packet and
// context, every map entry, ring buffer record and queue value, and the
// bpf_printk lines. Install it with testrun.SetRunObserver; each run's
// verdict is a DiffCase.
//
// The emulator runs twice, with different clocks and random seeds: what
// differs between its two runs depends on the time or randomness and is
// left out of the comparison (and said so). The kernel's run is pinned to
// the CPU the emulator assumes.
type Differential struct {
	// Objects are objects to find the programs in, besides the built-ins
	// and the registered ones.
	Objects []*Object
	// OnCase, when set, is called with each case as it is decided.
	OnCase func(*DiffCase)
	// Answers are results for calls the engine does not emulate, used in
	// turn as the emulated run reaches them (a debug session's set r0).
	Answers []uint64
	// Xlated emulates every program as rebuilt from the kernel's
	// translated instructions (FromKernel) instead of from its object:
	// the kernel runs the program as it was loaded, the emulator what
	// bpfsh made of the kernel's rewriting of it.
	Xlated bool

	mu    sync.Mutex
	cases []*DiffCase

	// fixed, when set, is the program every run is emulated as, on the
	// maps fixedMaps opens (the kernel check of a rebuilt program).
	fixed     *Program
	fixedMaps func() (*Maps, error)
}

// DiffCase is one test run held against the emulator.
type DiffCase struct {
	Program string
	Type    ebpf.ProgramType
	DataIn  []byte
	CtxIn   []byte
	// Comparison is the verdict; nil when the run was not compared
	// (Skipped says why) or the emulator failed (Err).
	Comparison *Comparison
	Err        error
	Skipped    string
	// Steps is how many instructions the emulator ran.
	Steps uint64
	// Config is the emulated run's configuration (its clock, seed, CPU
	// and input) and Emu its result: a debugging session started from
	// Config on the same maps replays exactly this run.
	Config Config  `json:"-"`
	Emu    *Result `json:"-"`
}

// Agree reports whether the case passed: compared, and the kernel agrees.
func (c *DiffCase) Agree() bool { return c.Comparison != nil && c.Comparison.Agree }

// String is one line about the case.
func (c *DiffCase) String() string {
	switch {
	case c.Err != nil:
		return fmt.Sprintf("%s: the emulator failed: %v", c.Program, c.Err)
	case c.Comparison == nil:
		return fmt.Sprintf("%s: not compared: %s", c.Program, c.Skipped)
	}
	return fmt.Sprintf("%s: %s", c.Program, c.Comparison.Summary())
}

// Cases returns the cases so far.
func (d *Differential) Cases() []*DiffCase {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*DiffCase(nil), d.cases...)
}

type diffState struct {
	c       *DiffCase
	maps    *Maps
	before  map[string]*mapSnap
	rings   map[string]uint64
	emu     *Result
	alt     *Result
	hard    []string
	restore func()
}

// Before emulates the run about to happen.
func (d *Differential) Before(r *testrun.ObservedRun) {
	st := &diffState{c: &DiffCase{Type: r.Type, DataIn: r.DataIn, CtxIn: r.CtxIn}}
	r.State = st
	if info, err := r.Program.Info(); err == nil {
		st.c.Program = info.Name
	}
	var prog *Program
	var maps *Maps
	var err error
	switch {
	case d.fixed != nil:
		prog = d.fixed
		maps, err = d.fixedMaps()
	case d.Xlated:
		prog, maps, err = FromKernel(r.Program)
		if err != nil {
			st.c.Err = err
			return
		}
	default:
		prog, maps, err = ForProgram(r.Program, d.Objects...)
	}
	if err != nil {
		st.c.Skipped = err.Error()
		return
	}
	st.c.Program = prog.Name
	st.maps = maps
	cpu := r.CPU
	if r.Flags&1 == 0 { // without BPF_F_TEST_RUN_ON_CPU: here, pinned
		cpu, st.restore = pinThread()
	}
	st.before, st.rings = snapshot(maps.ByName)
	now := monotonicNow()
	cfg := Config{Program: prog, Maps: maps, Packet: r.DataIn, Ctx: r.CtxIn, CPU: int(cpu), Time: now, Seed: 1, NoJournal: true, PidTgid: uint64(unix.Getpid())<<32 | uint64(unix.Gettid())}
	if r.Type == ebpf.Syscall || r.Type == ebpf.RawTracepoint || r.Type == ebpf.SkLookup {
		cfg.Packet = nil
	}
	s, err := NewSession(cfg)
	if err != nil {
		st.c.Err = err
		return
	}
	st.c.Config = cfg
	st.c.Config.Maps = nil
	stop := runAnswering(s, d.Answers)
	st.c.Steps = s.Steps()
	if stop.Reason != StopExit {
		st.c.Err = &RunError{Stop: stop}
		return
	}
	st.emu = s.Result()
	st.c.Emu = st.emu
	st.hard = s.m.env.notes
	// The second run, later and with another seed. The clock is ahead by
	// 0x0102030405 ns (4.3 s): every one of the low five bytes of a time
	// differs, whatever the carries, so that the byte mask catches it.
	cfg.Time, cfg.Seed = now+altClockAhead, 2
	s2, err := NewSession(cfg)
	if err != nil {
		st.c.Err = err
		return
	}
	if stop := runAnswering(s2, d.Answers); stop.Reason != StopExit {
		st.c.Err = fmt.Errorf("second run: %w", &RunError{Stop: stop})
		return
	}
	st.alt = s2.Result()
}

// After compares with what the kernel did.
func (d *Differential) After(r *testrun.ObservedRun) {
	st, _ := r.State.(*diffState)
	if st == nil {
		return
	}
	if st.restore != nil {
		st.restore()
	}
	defer func() {
		if st.maps != nil {
			st.maps.Close()
		}
		d.mu.Lock()
		d.cases = append(d.cases, st.c)
		d.mu.Unlock()
		if d.OnCase != nil {
			d.OnCase(st.c)
		}
	}()
	if st.c.Err != nil || st.c.Skipped != "" {
		return
	}
	if r.Err != nil {
		st.c.Skipped = "the kernel refused the run: " + r.Err.Error()
		return
	}
	k := &kernelRun{retval: uint64(r.Retval), dataOut: r.DataOut, ctxOut: r.CtxOut, traceOK: r.Trace}
	for _, l := range r.Lines {
		k.trace = append(k.trace, l.Text)
	}
	switch r.Type {
	case ebpf.RawTracepoint, ebpf.SkLookup:
		k.dataOut = nil
	}
	if r.CtxOut == nil {
		k.noCtxOut = true
	}
	kernelAfter(st.maps.ByName, st.before, st.rings, st.emu, k)
	st.c.Comparison = compare(st.c.Program, st.emu, st.alt, st.before, k, st.hard)
}

// altClockAhead is how far the second emulated run's clock is ahead.
const altClockAhead = 0x0102030405

// pinThread pins the calling (locked) thread to the CPU it is allowed
// first, returning it and how to undo the pinning.
func pinThread() (uint32, func()) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return 0, func() {}
	}
	cpu := 0
	for i := 0; i < 1024; i++ {
		if old.IsSet(i) {
			cpu = i
			break
		}
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return uint32(cpu), func() {}
	}
	return uint32(cpu), func() { unix.SchedSetaffinity(0, &old) }
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
