// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/testrun/emu"
)

// engineObject is testdata/engine.bpf.o, the engine tests' program.
func engineObject(t testing.TB) *emu.Object {
	t.Helper()
	data, err := os.ReadFile("testdata/engine.bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := emu.LoadObject("testdata/engine.bpf.o", data)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// engineSession starts hx_count (or another program of the object) on a
// UDP frame, with the object's maps private to the session.
func engineSession(t testing.TB, prog string, cfg emu.Config) *emu.Session {
	t.Helper()
	p, err := engineObject(t).Program(prog)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Program = p
	if cfg.Packet == nil {
		cfg.Packet = udpFrame("engine")
	}
	if cfg.Time == 0 {
		cfg.Time = 1000
	}
	s, err := emu.NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// state is what a step leaves, for comparing steps: registers, the pc,
// the stack, the packet and the map entry the program writes, events.
func state(t testing.TB, s *emu.Session) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "step %d pc %d done %v ret %d\n", s.Steps(), s.PC(), s.Done(), s.Retval())
	for _, r := range s.Regs() {
		fmt.Fprintf(&b, "%s=%x ", r.Name, r.Value)
	}
	for _, f := range s.Backtrace() {
		fmt.Fprintf(&b, "\n%d %s %d %s", f.Depth, f.Func, f.PC, f.Callback)
	}
	if fp := s.Reg(10); fp != 0 {
		if mem, err := s.Read(fp-64, 64); err == nil {
			fmt.Fprintf(&b, "\nstack %x", mem)
		}
	}
	res := s.Result()
	fmt.Fprintf(&b, "\npacket %x\nmaps %x\nevents %d", res.Packet, res.Maps, len(res.Events))
	return b.String()
}

// TestEngineReverseToStartAndForward steps hx_count to its end recording
// every state, goes back instruction by instruction to the start checking
// each state on the way, and forwards again to the same states: with the
// journal, and with a journal so small that going back replays from the
// start.
func TestEngineReverseToStartAndForward(t *testing.T) {
	for _, limit := range []int{0, 40} {
		t.Run(fmt.Sprintf("journal %d", limit), func(t *testing.T) {
			s := engineSession(t, "hx_count", emu.Config{JournalLimit: limit})
			states := []string{state(t, s)}
			for !s.Done() {
				st := s.StepInsn(1)
				if st.Reason != emu.StopStep && st.Reason != emu.StopExit {
					t.Fatalf("stepi: %+v", st)
				}
				states = append(states, state(t, s))
			}
			if len(states) < 100 {
				t.Fatalf("only %d steps", len(states))
			}
			for i := len(states) - 2; i >= 0; i-- {
				if _, err := s.ReverseStepInsn(1); err != nil {
					t.Fatal(err)
				}
				if got := state(t, s); got != states[i] {
					t.Fatalf("back at step %d:\n%s\nwant\n%s", i, got, states[i])
				}
			}
			if st, _ := s.ReverseStepInsn(1); st.Reason != emu.StopStart {
				t.Errorf("reverse-stepi at the start: %+v", st)
			}
			for i := 1; i < len(states); i++ {
				s.StepInsn(1)
				if got := state(t, s); got != states[i] {
					t.Fatalf("forwards again at step %d:\n%s\nwant\n%s", i, got, states[i])
				}
			}
			// reverse-continue with no breakpoints goes to the start;
			// GoTo goes anywhere.
			if st, err := s.ReverseContinue(); err != nil || st.Reason != emu.StopStart || s.Steps() != 0 {
				t.Errorf("reverse-continue: %+v %v", st, err)
			}
			if _, err := s.GoTo(uint64(len(states) / 2)); err != nil || state(t, s) != states[len(states)/2] {
				t.Errorf("goto %d: %v", len(states)/2, err)
			}
		})
	}
}

// TestEngineBreakInLoopCallback stops in bpf_loop's callback at every
// call, by function and by line, with and without a condition, and
// backwards too.
func TestEngineBreakInLoopCallback(t *testing.T) {
	s := engineSession(t, "hx_count", emu.Config{})
	if _, err := s.Break(emu.Location{PC: -1, Func: "add_step"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	calls := 0
	for {
		st := s.Continue()
		if st.Reason == emu.StopExit {
			break
		}
		if st.Reason != emu.StopBreakpoint || st.Func != "add_step" {
			t.Fatalf("continue: %+v", st)
		}
		bt := s.Backtrace()
		if len(bt) != 2 || bt[0].Func != "add_step" || !strings.HasPrefix(bt[0].Callback, fmt.Sprintf("bpf_loop iteration %d of 20", calls)) || bt[1].Func != "hx_count" {
			t.Fatalf("backtrace in the callback: %+v", bt)
		}
		if got := s.Reg(1); got != uint64(calls) {
			t.Errorf("call %d: r1 (the index) = %d", calls, got)
		}
		calls++
	}
	// sum 3*(0+1+...+i) passes 100 at i = 8: nine calls.
	if calls != 9 {
		t.Errorf("the callback ran %d times, want 9", calls)
	}
	// Backwards: reverse-continue visits the same calls in reverse.
	for i := 8; i >= 0; i-- {
		st, err := s.ReverseContinue()
		if err != nil || st.Reason != emu.StopBreakpoint || s.Reg(1) != uint64(i) {
			t.Fatalf("reverse-continue %d: %+v r1=%d %v", i, st, s.Reg(1), err)
		}
	}
	if st, _ := s.ReverseContinue(); st.Reason != emu.StopStart {
		t.Fatalf("reverse-continue past the first call: %+v", st)
	}

	// A line breakpoint with a condition: only when i is 5.
	s = engineSession(t, "hx_count", emu.Config{})
	loc, err := emu.ParseLocation("engine.bpf.c:38")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Break(loc, func(s *emu.Session) bool { return s.Reg(1) == 5 }, "i == 5")
	if err != nil {
		t.Fatal(err)
	}
	st := s.Continue()
	if st.Reason != emu.StopBreakpoint || st.Line == nil || st.Line.Line != 38 || s.Reg(1) != 5 {
		t.Fatalf("conditional breakpoint: %+v r1=%d", st, s.Reg(1))
	}
	if st = s.Continue(); st.Reason != emu.StopExit || s.Breakpoints()[0].Hits != 1 {
		t.Fatalf("after the conditional breakpoint: %+v, hits %d", st, s.Breakpoints()[0].Hits)
	}
	s.DeleteBreakpoint(b.ID)
}

// TestEngineWatchMapField watches hx_flows[saddr].packets: it changes when
// the entry is made and when the program counts the packet.
func TestEngineWatchMapField(t *testing.T) {
	s := engineSession(t, "hx_count", emu.Config{})
	key := []byte{10, 0, 0, 1}
	w, err := s.WatchMapValue("hx_flows", key, 0, 8, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	st := s.Continue()
	if st.Reason != emu.StopWatch || st.Watch.OldPresent || !st.Watch.NewPresent || !bytes.Equal(st.Watch.New, make([]byte, 8)) {
		t.Fatalf("the entry's creation: %+v %+v", st, st.Watch)
	}
	st = s.Continue()
	if st.Reason != emu.StopWatch || binary.LittleEndian.Uint64(st.Watch.Old) != 0 || binary.LittleEndian.Uint64(st.Watch.New) != 1 {
		t.Fatalf("packets++: %+v %+v", st, st.Watch)
	}
	if st.Line == nil || !strings.Contains(st.Line.Text, "") {
		t.Errorf("stopped without a line: %+v", st)
	}
	after := s.Steps()
	if st = s.Continue(); st.Reason != emu.StopExit {
		t.Fatalf("to the end: %+v", st)
	}
	// Backwards, the watch stops before the instruction that counted.
	st, err = s.ReverseContinue()
	if err != nil || st.Reason != emu.StopWatch || s.Steps() != after-1 || binary.LittleEndian.Uint64(st.Watch.New) != 1 {
		t.Fatalf("reverse-continue to the count: %+v %v (step %d, want %d)", st, err, s.Steps(), after-1)
	}
	if s.Watches()[0].ID != w.ID {
		t.Errorf("watches: %+v", s.Watches())
	}

	// An address watch on a stack slot: the loop state's sum, by its
	// variable.
	s = engineSession(t, "hx_count", emu.Config{})
	loc, _ := emu.ParseLocation("engine.bpf.c:66")
	s.Break(loc, nil, "")
	if st := s.Continue(); st.Reason != emu.StopBreakpoint {
		t.Fatalf("to line 66: %+v", st)
	}
	var ls emu.Var
	locals, err := s.Locals(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range locals {
		if v.Name == "ls" {
			ls = v
		}
	}
	if ls.Kind != emu.VarMemory {
		t.Fatalf("ls: %+v", ls)
	}
	if _, err := s.WatchAddr(ls.Addr, 4, nil, ""); err != nil {
		t.Fatal(err)
	}
	if st := s.Continue(); st.Reason != emu.StopWatch || st.Func != "add_step" {
		t.Fatalf("watch on ls.sum: %+v", st)
	}
}

// TestEngineUnknownHelper: hx_unknown calls bpf_check_mtu, which the
// emulator does not emulate; the session stops there and names it, the
// user answers with r0, and the run goes on.
func TestEngineUnknownHelper(t *testing.T) {
	s := engineSession(t, "hx_unknown", emu.Config{})
	st := s.Continue()
	if st.Reason != emu.StopUnknownHelper || !strings.Contains(st.Message, "bpf_check_mtu") {
		t.Fatalf("continue: %+v", st)
	}
	at := s.Steps()
	if err := s.SetReg(0, 0); err != nil {
		t.Fatal(err)
	}
	if st := s.StepInsn(1); st.Reason != emu.StopStep || s.Steps() != at+1 {
		t.Fatalf("stepi over the answered call: %+v", st)
	}
	if st := s.Continue(); st.Reason != emu.StopExit || st.Retval != 0 {
		// mtu stays 0: XDP_ABORTED.
		t.Fatalf("to the end: %+v", st)
	}
	want := state(t, s)
	// Back over the answered call and forwards again: the answer holds.
	if _, err := s.GoTo(at - 1); err != nil {
		t.Fatal(err)
	}
	if st := s.Continue(); st.Reason != emu.StopExit || state(t, s) != want {
		t.Fatalf("again after going back: %+v", st)
	}
	if !slicesContains(emu.SupportedHelpers(), "bpf_loop") || slicesContains(emu.SupportedHelpers(), "bpf_check_mtu") {
		t.Error("SupportedHelpers lists the wrong helpers")
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestEngineSetRegThenStepi changes a register and steps: the instruction
// sees the new value, and going back undoes it.
func TestEngineSetRegThenStepi(t *testing.T) {
	s := engineSession(t, "hx_count", emu.Config{})
	// Slot 0 is r9 = *(u32 *)(r1 + 0): data from the context.
	st := s.StepInsn(1)
	if st.Reason != emu.StopStep {
		t.Fatal(st)
	}
	data := s.Reg(9)
	if p, ok := s.Describe(data); !ok || p.Text != "pkt+0" {
		t.Fatalf("r9 = %x (%+v), want the packet's start", data, p)
	}
	// Slot 1 is r7 = *(u32 *)(r1 + 4): aim r1 four bytes later, at
	// data_meta, and r7 gets data_meta (a pointer to the packet's start,
	// there being no metadata).
	if err := s.SetReg(1, s.Reg(1)+4); err != nil {
		t.Fatal(err)
	}
	s.StepInsn(1)
	if p, ok := s.Describe(s.Reg(7)); !ok || p.Text != "pkt+0" {
		t.Fatalf("r7 after set r1 = r1 + 4: %x (%+v), want data_meta", s.Reg(7), p)
	}
	s.ReverseStepInsn(1)
	if p, _ := s.Describe(s.Reg(1)); p.Text != "ctx (struct xdp_md)+4" {
		t.Fatalf("r1 after reverse-stepi: %+v", p)
	}
	s.StepInsn(1)
	if p, _ := s.Describe(s.Reg(7)); p.Text != "pkt+0" {
		t.Fatalf("stepping forwards again: r7 %+v", p)
	}
	if err := s.SetReg(10, 0); err == nil {
		t.Error("set r10 was allowed")
	}
}

// TestEngineSourceStepping: step enters mix and the callback, next steps
// over them, finish returns, until leaves, reverse-step comes back.
func TestEngineSourceStepping(t *testing.T) {
	s := engineSession(t, "hx_count", emu.Config{})
	loc, _ := emu.ParseLocation("engine.bpf.c:66")
	s.Break(loc, nil, "")
	s.Continue()
	s.DeleteBreakpoint(1)
	// Line 66 is the bpf_loop call: next runs all the callbacks.
	st := s.Next()
	if st.Reason != emu.StopStep || st.Line == nil || st.Line.Line != 67 || st.Func != "hx_count" {
		t.Fatalf("next over bpf_loop: %+v", st)
	}
	// Back: reverse-next comes back to the bpf_loop line.
	if st, err := s.ReverseNext(); err != nil || st.Line == nil || st.Line.Line != 66 {
		t.Fatalf("reverse-next: %+v %v", st, err)
	}
	// Step goes into the callback.
	st = s.Step()
	if st.Func != "add_step" || len(s.Backtrace()) != 2 {
		t.Fatalf("step into the callback: %+v", st)
	}
	st, err := s.Finish()
	if err != nil || len(s.Backtrace()) != 2 || s.Backtrace()[0].Func != "add_step" || !strings.Contains(s.Backtrace()[0].Callback, "iteration 1") {
		t.Fatalf("finish from the callback's first call: %+v %v %+v", st, err, s.Backtrace())
	}
	// Up to mix and into it.
	loc, _ = emu.ParseLocation("engine.bpf.c:76")
	if st, err := s.Advance(loc); err != nil || st.Line == nil {
		t.Fatalf("advance to line 76: %+v %v", st, err)
	}
	for s.Backtrace()[0].Func != "mix" && !s.Done() {
		s.Step()
	}
	if s.Done() {
		t.Fatal("never stepped into mix")
	}
	if _, err := s.Finish(); err != nil || s.Backtrace()[0].Func != "hx_count" {
		t.Fatalf("finish from mix: %v %+v", err, s.Backtrace())
	}
	if st, err := s.ReverseFinish(); err != nil || s.Backtrace()[0].Func != "hx_count" {
		t.Fatalf("reverse-finish: %+v %v", st, err)
	}
	if st := s.Until(); st.Reason != emu.StopStep && st.Reason != emu.StopExit {
		t.Fatalf("until: %+v", st)
	}
	if st, err := s.ReverseStep(); err != nil || st.Line == nil {
		t.Fatalf("reverse-step: %+v %v", st, err)
	}
}

// TestEngineLocals reads variables from the object's DWARF: parameters,
// stack slots, registers, computed values.
func TestEngineLocals(t *testing.T) {
	s := engineSession(t, "hx_count", emu.Config{})
	loc, _ := emu.ParseLocation("engine.bpf.c:72")
	if _, err := s.Break(loc, nil, ""); err != nil {
		t.Fatal(err)
	}
	if st := s.Continue(); st.Reason != emu.StopBreakpoint {
		t.Fatalf("to line 72: %+v", st)
	}
	vars, err := s.Locals(0)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]emu.Var{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	if ctx := byName["ctx"]; !ctx.Param || ctx.TypeName != "struct xdp_md *" {
		t.Errorf("ctx: %+v", ctx)
	}
	saddr, ok := byName["saddr"]
	if !ok || saddr.Kind == emu.VarOptimizedOut {
		t.Fatalf("saddr: %+v (all: %+v)", saddr, vars)
	}
	b, err := s.VarValue(saddr)
	if err != nil || !bytes.Equal(b, []byte{10, 0, 0, 1}) {
		t.Errorf("saddr = % x %v, want 10.0.0.1 (%+v)", b, err, saddr)
	}
	ls := byName["ls"]
	b, err = s.VarValue(ls)
	if err != nil || binary.LittleEndian.Uint32(b) != 108 || binary.LittleEndian.Uint32(b[4:]) != 9 {
		t.Errorf("ls = % x %v (%+v), want sum 108, calls 9", b, err, ls)
	}
	if ls.TypeName != "struct loop_state" || ls.Type == nil {
		t.Errorf("ls's type: %q %v", ls.TypeName, ls.Type)
	}
	st := byName["st"]
	if p, ok := s.Describe(st.Value); st.Kind != emu.VarRegister || !ok || !strings.HasPrefix(p.Text, "&hx_flows[") {
		t.Errorf("st: %+v %+v", st, p)
	}
	if ip := byName["ip"]; ip.Kind != emu.VarComputed || !strings.HasPrefix(ip.Where, "pkt+14") {
		t.Errorf("ip: %+v", ip)
	}
	// In the callback, its parameters.
	s = engineSession(t, "hx_count", emu.Config{})
	s.Break(emu.Location{PC: -1, Func: "add_step"}, nil, "")
	s.Continue()
	s.Continue()
	vars, err = s.Locals(0)
	if err != nil || len(vars) < 2 || vars[0].Name != "i" || vars[0].Value != 1 {
		t.Fatalf("add_step's locals: %+v %v", vars, err)
	}
	if outer, err := s.Locals(1); err != nil || len(outer) == 0 {
		t.Fatalf("the caller's locals: %+v %v", outer, err)
	}
}
