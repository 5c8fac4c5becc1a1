// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/bpfsh/bpfsh/testrun/emu"
)

// loopProgram is a syscall program that runs a loop n times: loads and
// stores on the stack, ALU work and a conditional jump, about ten
// instructions an iteration.
func loopProgram(tb testing.TB, n int32) *emu.Program {
	tb.Helper()
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R6, 0),
		asm.Mov.Imm(asm.R7, 1),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R10, -8, asm.DWord).WithSymbol("loop"),
		asm.Add.Reg(asm.R1, asm.R7),
		asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
		asm.Mul.Imm(asm.R7, 3),
		asm.Xor.Reg32(asm.R7, asm.R6),
		asm.RSh.Imm(asm.R7, 1),
		asm.Add.Imm(asm.R6, 1),
		asm.JLT.Imm(asm.R6, n, "loop"),
		asm.LoadMem(asm.R0, asm.R10, -8, asm.DWord),
		asm.Return(),
	}
	p, err := emu.NewProgram(&ebpf.ProgramSpec{Name: "loop", Type: ebpf.Syscall, Instructions: insns, License: "GPL"})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkEmuLoop measures the interpreter's speed: emulated instructions
// per second on one core, with the undo journal on (as a debugging
// session runs) and off (as a plain run).
func BenchmarkEmuLoop(b *testing.B) {
	for _, c := range []struct {
		name    string
		journal bool
	}{{"journal", true}, {"nojournal", false}} {
		b.Run(c.name, func(b *testing.B) {
			p := loopProgram(b, 1_000_000)
			var steps uint64
			start := time.Now()
			for b.Loop() {
				s, err := emu.NewSession(emu.Config{Program: p, Ctx: make([]byte, 8), NoJournal: !c.journal})
				if err != nil {
					b.Fatal(err)
				}
				if st := s.Run(); st.Reason != emu.StopExit {
					b.Fatal(st)
				}
				steps += s.Steps()
			}
			b.ReportMetric(float64(steps)/time.Since(start).Seconds()/1e6, "Minsn/s")
		})
	}
}

// BenchmarkEmuEngineProgram runs hx_count (maps, a bpf_loop callback, a
// call, a printk) from session start to its end.
func BenchmarkEmuEngineProgram(b *testing.B) {
	p, err := engineObject(b).Program("hx_count")
	if err != nil {
		b.Fatal(err)
	}
	frame := udpFrame("bench")
	var steps uint64
	start := time.Now()
	for b.Loop() {
		s, err := emu.NewSession(emu.Config{Program: p, Packet: frame, NoJournal: true, Time: 1})
		if err != nil {
			b.Fatal(err)
		}
		if st := s.Run(); st.Reason != emu.StopExit {
			b.Fatal(st)
		}
		steps += s.Steps()
	}
	b.ReportMetric(float64(steps)/time.Since(start).Seconds()/1e6, "Minsn/s")
}
