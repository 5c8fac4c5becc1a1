// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"os"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/bpfsh/bpfsh/testrun/emu"
)

// Only a program that calls a kfunc, has a may_goto or uses an arena may
// leave lines in its BPF streams: the fixture's xdp_stream (which calls
// bpf_stream_vprintk) may, xdp_count (helpers only) may not.
func TestMayWriteStreams(t *testing.T) {
	for _, c := range []struct {
		file, obj, prog string
		want            bool
	}{
		{"../fixture/progs_bpfel.o", "progs", "xdp_count", false},
		{"../fixture/progs_bpfel.o", "progs", "xdp_pass", false},
		{"../fixture/stream_bpfel.o", "stream", "xdp_stream", true},
	} {
		data, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := emu.LoadObject(c.obj, data)
		if err != nil {
			t.Fatal(err)
		}
		p, err := obj.Program(c.prog)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.MayWriteStreams(); got != c.want {
			t.Errorf("%s: MayWriteStreams %v, want %v", c.prog, got, c.want)
		}
	}
	plain := asmProgram(t, asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()})
	if plain.MayWriteStreams() {
		t.Errorf("a program of a mov and an exit may write streams, says the check")
	}
	// may_goto (BPF_JMP|BPF_JCOND): the kernel reports a loop that runs
	// out of time on the program's stderr.
	mayGoto := asmProgram(t, asm.Instructions{
		{OpCode: asm.OpCode(0xe5), Offset: 0},
		asm.Mov.Imm(asm.R0, 2), asm.Return()})
	if !mayGoto.MayWriteStreams() {
		t.Errorf("a program with may_goto cannot write streams, says the check")
	}
}
