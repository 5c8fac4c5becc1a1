// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/packet"

	_ "github.com/bpfsh/bpfsh/bpf/kv"
)

// TestStepLatency steps kv's xdp_kv (the largest shipped program) through
// a SET line by line, forwards and back, and wants every step to answer
// in under 50 ms, as a debugger at a prompt must.
func TestStepLatency(t *testing.T) {
	elf, ok := bpf.Builtin("kv")
	if !ok {
		t.Skip("kv is not built in")
	}
	obj, err := emu.LoadObject("builtin kv", elf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := obj.Program("xdp_kv")
	if err != nil {
		t.Fatal(err)
	}
	frame, err := packet.Build(`Ether()/IPv4()/UDP()/KV(op=SET, key="alice", value="100")`)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := emu.NewSession(emu.Config{Program: p, Packet: frame, Maps: &emu.Maps{Private: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("session start: %v", time.Since(start))
	var worst time.Duration
	steps := 0
	timed := func(what string, f func() emu.Stop) emu.Stop {
		t0 := time.Now()
		st := f()
		if d := time.Since(t0); d > worst {
			worst = d
		}
		if d := time.Since(t0); d > 50*time.Millisecond {
			t.Errorf("%s at step %d took %v", what, st.Step, d)
		}
		steps++
		return st
	}
	for !s.Done() {
		if st := timed("step", s.Step); st.Reason != emu.StopStep && st.Reason != emu.StopExit {
			t.Fatalf("step stopped: %+v", st)
		}
	}
	end := s.Steps()
	for s.Steps() > 0 {
		timed("reverse-step", func() emu.Stop {
			st, err := s.ReverseStep()
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	}
	if st := timed("continue", s.Continue); st.Reason != emu.StopExit || s.Steps() != end {
		t.Fatalf("forwards again: %+v after %d instructions, want the end after %d", st, s.Steps(), end)
	}
	t.Logf("%d steps over %d instructions; the slowest answered in %v", steps, end, worst)
}
