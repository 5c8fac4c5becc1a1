// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"errors"
	"fmt"
)

// Stop is where a command left the program and why.
type Stop struct {
	Reason StopReason  `json:"reason"`
	PC     int         `json:"pc"`
	Step   uint64      `json:"step"`
	Func   string      `json:"func,omitempty"`
	Line   *SourceLine `json:"line,omitempty"`
	// Breakpoint is the id of the breakpoint reached (StopBreakpoint).
	Breakpoint int `json:"breakpoint,omitempty"`
	// Watch is the watched value that changed (StopWatch).
	Watch *WatchHit `json:"watch,omitempty"`
	// Retval is what the program returned (StopExit).
	Retval uint64 `json:"retval,omitempty"`
	// Message explains an emulator fault or an unknown helper.
	Message string `json:"message,omitempty"`
	// Call names the helper or kernel function the engine does not
	// emulate (StopUnknownHelper).
	Call string `json:"call,omitempty"`
}

// ErrNoReverse is returned by reverse commands of a session started with
// NoJournal.
var ErrNoReverse = errors.New("reverse execution is off in this session (it was started with NoJournal)")

func (s *Session) stopHere(reason StopReason) Stop {
	m := s.m
	st := Stop{Reason: reason, PC: int(m.pc), Step: m.steps}
	if f, ok := m.prog.FuncAt(int(m.pc)); ok {
		st.Func = f.Name
	}
	if l, ok := m.prog.LineAt(int(m.pc)); ok {
		st.Line = &l
	}
	switch reason {
	case StopExit:
		st.Retval = m.retval
	case StopFault, StopUnknownHelper, StopHelper:
		st.Message = m.stopMsg
		if reason == StopUnknownHelper {
			st.Call = m.stopCall
		}
	case StopBreakpoint:
		st.Breakpoint = s.lastBP
	case StopWatch:
		st.Watch = s.hit
	}
	return st
}

// depth is the current frame depth (0: the entry function).
func (m *machine) depth() int { return len(m.frames) - 1 }

// lineKey identifies a source line; "" when the slot has none.
func (m *machine) lineKey(pc int32) string {
	if int(pc) >= len(m.prog.lines) || m.prog.lines[pc] == nil {
		return ""
	}
	l := m.prog.lines[pc]
	return fmt.Sprintf("%s:%d", l.FileName(), l.LineNumber())
}

func (m *machine) lineNumber(pc int32) int {
	if int(pc) >= len(m.prog.lines) || m.prog.lines[pc] == nil {
		return 0
	}
	return int(m.prog.lines[pc].LineNumber())
}

func (m *machine) atLineStart() bool {
	return int(m.pc) < len(m.prog.lineStart) && m.prog.lineStart[m.pc]
}

// forward runs until the program stops by itself, a breakpoint or watch
// stops it, or pred (checked after every instruction when set) says the
// command is done. Without pred the machine runs in chunks at full speed.
func (s *Session) forward(pred func() bool) Stop {
	m := s.m
	s.hit, s.lastBP = nil, 0
	start := m.steps
	m.skipBP = true
	m.bpOn = len(s.bps) > 0
	m.bp = s.bitsFor(m.prog)
	for {
		if m.done {
			return s.stopHere(StopExit)
		}
		used := m.steps - start
		if used >= s.cfg.MaxSteps {
			return s.stopHere(StopLimit)
		}
		n := s.cfg.MaxSteps - used
		if pred != nil {
			n = 1
		}
		if e := s.nextEdit(m.steps); e != 0 && e-m.steps < n {
			n = e - m.steps
		}
		pc := m.pc
		if pred != nil && m.bpOn && !m.skipBP && m.bp != nil && m.bp[pc] {
			m.stop = StopBreakpoint
		} else {
			m.run(n)
		}
		s.applyEdits(m, m.steps)
		switch m.stop {
		case StopLimit:
			if pred != nil && pred() {
				return s.stopHere(StopStep)
			}
			continue
		case StopBreakpoint:
			if s.breakHere() {
				return s.stopHere(StopBreakpoint)
			}
			m.skipBP = true
			continue
		case StopWatch:
			if s.hit != nil && s.hit.w.Cond != nil && !s.hit.w.Cond(s) {
				continue
			}
			if s.hit != nil {
				s.hit.w.Hits++
			}
			return s.stopHere(StopWatch)
		case StopExit:
			return s.stopHere(StopExit)
		default:
			return s.stopHere(m.stop)
		}
	}
}

// StepInsn executes n instructions (stepi n), stopping early where a
// breakpoint or watchpoint says.
func (s *Session) StepInsn(n int) Stop {
	target := s.m.steps + uint64(max(n, 1))
	return s.forward(func() bool { return s.m.steps >= target })
}

// NextInsn executes n instructions, running calls (and callbacks) to
// their return as one (nexti n).
func (s *Session) NextInsn(n int) Stop {
	var st Stop
	for range max(n, 1) {
		d0 := s.m.depth()
		st = s.forward(func() bool { return s.m.depth() <= d0 })
		if st.Reason != StopStep {
			return st
		}
	}
	return st
}

// hasLines reports whether the running program has line info.
func (s *Session) hasLines() bool {
	for _, l := range s.m.prog.lines {
		if l != nil {
			return true
		}
	}
	return false
}

// Step runs to the start of the next source line, entering calls and
// callbacks (gdb's step). Without line info it steps one instruction.
func (s *Session) Step() Stop {
	m := s.m
	if !s.hasLines() {
		return s.StepInsn(1)
	}
	l0, d0 := m.lineKey(m.pc), m.depth()
	return s.forward(func() bool {
		return m.atLineStart() && (m.lineKey(m.pc) != l0 || m.depth() != d0)
	})
}

// Next runs to the start of the next source line in this function or its
// callers, running calls as one (gdb's next).
func (s *Session) Next() Stop {
	m := s.m
	if !s.hasLines() {
		return s.NextInsn(1)
	}
	l0, d0 := m.lineKey(m.pc), m.depth()
	return s.forward(func() bool {
		d := m.depth()
		return d <= d0 && m.atLineStart() && (m.lineKey(m.pc) != l0 || d < d0)
	})
}

// Finish runs until the current function returns (for a callback, until
// this call of it returns to the helper).
func (s *Session) Finish() (Stop, error) {
	m := s.m
	d0 := m.depth()
	if d0 == 0 {
		return Stop{}, errors.New("finish: the entry function has no caller; continue runs it to its end")
	}
	st := s.forward(func() bool {
		return m.depth() < d0 || s.m.exitDepth == d0
	})
	return st, nil
}

// Until runs to a source line after the current one in this function, or
// until it returns (gdb's until: out of loops).
func (s *Session) Until() Stop {
	m := s.m
	if !s.hasLines() {
		return s.NextInsn(1)
	}
	n0, d0 := m.lineNumber(m.pc), m.depth()
	return s.forward(func() bool {
		d := m.depth()
		return d < d0 || d == d0 && m.atLineStart() && m.lineNumber(m.pc) > n0
	})
}

// Advance runs until loc is reached or the current function returns
// (gdb's until LOCATION / advance).
func (s *Session) Advance(loc Location) (Stop, error) {
	m := s.m
	d0 := m.depth()
	pcs, err := s.resolve(m.prog, loc)
	if err != nil {
		return Stop{}, err
	}
	set := map[int32]bool{}
	for _, pc := range pcs {
		set[int32(pc)] = true
	}
	return s.forward(func() bool { return set[m.pc] || m.depth() < d0 }), nil
}

// Continue runs until a breakpoint, a watchpoint, the program's end, or
// something the emulator cannot do.
func (s *Session) Continue() Stop { return s.forward(nil) }

// Run runs the program to its end without stopping at breakpoints:
// what a plain run (not a debugging session) does.
func (s *Session) Run() Stop {
	bps := s.bps
	s.bps = nil
	s.bpBits = map[*Program][]bool{}
	defer func() { s.bps = bps; s.bpBits = map[*Program][]bool{} }()
	return s.forward(nil)
}

// stepBack undoes one instruction, replaying from the start when the
// journal no longer reaches back that far.
func (s *Session) stepBack() error {
	m := s.m
	if s.cfg.NoJournal {
		return ErrNoReverse
	}
	if m.steps == 0 {
		return nil
	}
	if !m.canUndo() {
		target := m.steps
		window := uint64(maxJournalSteps(s.cfg.JournalLimit))
		from := uint64(0)
		if target > window {
			from = target - window
		}
		if err := s.replay(target, from); err != nil {
			return err
		}
		m = s.m
	}
	if !m.undoStep() {
		return fmt.Errorf("reverse: the journal lost its step at %d", m.steps)
	}
	m.stop = StopNone
	return nil
}

// maxJournalSteps is how many steps a replay journals: a quarter of the
// journal's records, so that most steps' records fit.
func maxJournalSteps(limit int) int {
	if limit == 0 {
		limit = maxJournal
	}
	return max(limit/4, 1)
}

// replay rebuilds the session's state at step target by running the
// program again from the start (with the same map reads and edits),
// journaling from step from on.
func (s *Session) replay(target, from uint64) error {
	m, err := s.newMachine()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	m.bpOn = false
	m.j.on = false
	quiet := s.replaying
	s.replaying = true
	defer func() { s.replaying = quiet }()
	runTo := func(t uint64) {
		for m.steps < t && !m.done {
			n := t - m.steps
			if e := s.nextEdit(m.steps); e != 0 && e-m.steps < n {
				n = e - m.steps
			}
			m.skipBP = true
			m.run(n)
			s.applyEdits(m, m.steps)
			if m.stop != StopLimit && m.stop != StopWatch && m.stop != StopNone {
				break
			}
		}
	}
	runTo(from)
	m.j.on = !s.cfg.NoJournal
	m.j.steps = m.steps
	runTo(target)
	if m.steps != target {
		return fmt.Errorf("replay: reached step %d of %d (%s); the emulator is not deterministic here, which is its bug", m.steps, target, m.stop)
	}
	s.m = m
	return nil
}

// backward steps back until pred (checked after every undone
// instruction) says stop, or the start is reached.
func (s *Session) backward(pred func() bool) (Stop, error) {
	s.hit, s.lastBP = nil, 0
	for {
		if s.m.steps == 0 {
			s.refreshWatches()
			return s.stopHere(StopStart), nil
		}
		before := s.watchValues()
		if err := s.stepBack(); err != nil {
			return Stop{}, err
		}
		if w := s.watchDiff(before); w != nil {
			s.hit = w
			s.refreshWatches()
			return s.stopHere(StopWatch), nil
		}
		if pred() {
			s.refreshWatches()
			return s.stopHere(StopStep), nil
		}
	}
}

// ReverseStepInsn undoes n instructions (reverse-stepi).
func (s *Session) ReverseStepInsn(n int) (Stop, error) {
	target := int64(s.m.steps) - int64(max(n, 1))
	return s.backward(func() bool { return int64(s.m.steps) <= target })
}

// ReverseStep goes back to the start of the previous source line
// executed, entering calls backwards (reverse-step).
func (s *Session) ReverseStep() (Stop, error) {
	return s.reverseLine(false)
}

// ReverseNext is ReverseStep that goes back over calls as one
// (reverse-next).
func (s *Session) ReverseNext() (Stop, error) {
	return s.reverseLine(true)
}

func (s *Session) reverseLine(overCalls bool) (Stop, error) {
	if !s.hasLines() {
		return s.ReverseStepInsn(1)
	}
	m := func() *machine { return s.m }
	l0, d0 := m().lineKey(m().pc), m().depth()
	// Back into the previous line.
	st, err := s.backward(func() bool {
		d := m().depth()
		if overCalls && d > d0 {
			return false
		}
		return m().lineKey(m().pc) != l0 || d != d0
	})
	if err != nil || st.Reason != StopStep {
		return st, err
	}
	// Back to that line's first instruction in this run of it.
	l1, d1 := m().lineKey(m().pc), m().depth()
	st, err = s.backward(func() bool {
		d := m().depth()
		if overCalls && d > d1 {
			return false
		}
		return m().lineKey(m().pc) != l1 || d != d1
	})
	if err != nil || st.Reason == StopWatch {
		return st, err
	}
	if st.Reason == StopStep {
		// One too far: forwards again by one instruction.
		m().bpOn = false
		m().skipBP = true
		m().run(1)
		s.refreshWatches()
	}
	return s.stopHere(StopStep), nil
}

// ReverseFinish goes back to where the current function was called.
func (s *Session) ReverseFinish() (Stop, error) {
	d0 := s.m.depth()
	if d0 == 0 {
		return s.backward(func() bool { return false })
	}
	return s.backward(func() bool { return s.m.depth() < d0 })
}

// ReverseContinue goes back until a breakpoint's instruction is reached
// (its condition true), a watched value changes, or the start.
func (s *Session) ReverseContinue() (Stop, error) {
	s.lastBP = 0
	st, err := s.backward(func() bool {
		m := s.m
		bits := s.bitsFor(m.prog)
		return bits != nil && bits[m.pc] && s.breakHere()
	})
	if err == nil && st.Reason == StopStep {
		st = s.stopHere(StopBreakpoint)
	}
	return st, err
}

// GoTo moves to the state after step instructions, forwards or back
// (without stopping at breakpoints).
func (s *Session) GoTo(step uint64) (Stop, error) {
	m := s.m
	switch {
	case step == m.steps:
		return s.stopHere(StopStep), nil
	case step > m.steps:
		bps := s.bps
		s.bps = nil
		s.bpBits = map[*Program][]bool{}
		defer func() { s.bps = bps; s.bpBits = map[*Program][]bool{} }()
		return s.forward(func() bool { return s.m.steps >= step }), nil
	}
	if s.cfg.NoJournal {
		return Stop{}, ErrNoReverse
	}
	if step < m.j.steps || !m.j.on {
		window := uint64(maxJournalSteps(s.cfg.JournalLimit))
		if err := s.replay(step, step-min(step, window)); err != nil {
			return Stop{}, err
		}
		s.refreshWatches()
		return s.stopHere(StopStep), nil
	}
	for s.m.steps > step {
		if err := s.stepBack(); err != nil {
			return Stop{}, err
		}
	}
	s.refreshWatches()
	return s.stopHere(StopStep), nil
}
