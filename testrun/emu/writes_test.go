// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/bpfsh/bpfsh/testrun/emu"
)

// writtenNames runs MapWrites on p and returns the names of the maps it
// says a run may write.
func writtenNames(t *testing.T, p *emu.Program) []string {
	t.Helper()
	w, err := p.MapWrites()
	if err != nil {
		t.Fatalf("MapWrites: %v", err)
	}
	var out []string
	for i, m := range p.Maps() {
		if w[i] {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out
}

// The fixture's xdp_count writes hits (update, and an atomic add through
// a lookup's pointer), bytes and last (stores through a lookup's pointer)
// and lens (push); it only looks keys up in seen.
func TestMapWritesFixture(t *testing.T) {
	progs, err := os.ReadFile("../fixture/progs_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := emu.LoadObject("progs", progs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := obj.Program("xdp_count")
	if err != nil {
		t.Fatal(err)
	}
	got := writtenNames(t, p)
	if want := []string{"bytes", "hits", "last", "lens"}; !slices.Equal(got, want) {
		t.Errorf("xdp_count writes %v, want %v (seen is only looked up)", got, want)
	}
	var names []string
	for _, m := range p.Maps() {
		names = append(names, m.Name)
	}
	if !slices.Contains(names, "seen") {
		t.Errorf("xdp_count's maps %v lack seen", names)
	}

	// big's xdp_big changes one entry in place (through the pointer a
	// lookup returned) and updates another.
	data, err := os.ReadFile("../fixture/big_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	big, err := emu.LoadObject("big", data)
	if err != nil {
		t.Fatal(err)
	}
	bp, err := big.Program("xdp_big")
	if err != nil {
		t.Fatal(err)
	}
	if got := writtenNames(t, bp); !slices.Equal(got, []string{"big"}) {
		t.Errorf("xdp_big writes %v, want [big]", got)
	}
}

// asmProgram builds an XDP program over maps "a" and "b" (a first: every
// program below loads a before b).
func asmProgram(t *testing.T, insns asm.Instructions) *emu.Program {
	t.Helper()
	p, err := emu.NewProgram(&ebpf.ProgramSpec{Name: "w", Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatalf("NewProgram: %v", err)
	}
	return p
}

// lookup puts the pointer bpf_map_lookup_elem returns for key 0 of map in
// r0 (the key on the stack at -4).
func lookup(m string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, 0).WithReference(m),
		asm.FnMapLookupElem.Call(),
	}
}

func join(parts ...asm.Instructions) asm.Instructions {
	var out asm.Instructions
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var ret0 = asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}

// Each way a program can write a map is seen, and lookups alone are not
// writes.
func TestMapWritesPaths(t *testing.T) {
	nullCheck := asm.JEq.Imm(asm.R0, 0, "out")
	out := asm.Mov.Imm(asm.R0, 2).WithSymbol("out")
	cases := []struct {
		name  string
		insns asm.Instructions
		want  []string
	}{
		{"lookups only", join(lookup("a"), lookup("b"), ret0), nil},
		{"store through a lookup's pointer", join(lookup("a"), lookup("b"), asm.Instructions{
			nullCheck, asm.StoreImm(asm.R0, 0, 1, asm.Word), out, asm.Return()}), []string{"b"}},
		{"atomic add through a lookup's pointer, moved to another register", join(lookup("a"), asm.Instructions{
			asm.Mov.Reg(asm.R7, asm.R0), asm.Add.Imm(asm.R7, 8), lookup("b")[0], lookup("b")[1], lookup("b")[2], lookup("b")[3], lookup("b")[4],
			asm.JEq.Imm(asm.R7, 0, "out"), asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R7, asm.R1, asm.DWord), out, asm.Return()}), []string{"a"}},
		{"pointer spilled to the stack and reloaded", join(lookup("a"), asm.Instructions{
			asm.StoreMem(asm.R10, -16, asm.R0, asm.DWord), asm.Mov.Imm(asm.R0, 0),
			asm.LoadMem(asm.R3, asm.R10, -16, asm.DWord), asm.JEq.Imm(asm.R3, 0, "out"),
			asm.StoreImm(asm.R3, 0, 1, asm.Word), out, asm.Return()}), []string{"a"}},
		{"update", join(asm.Instructions{
			asm.StoreImm(asm.R10, -4, 0, asm.Word), asm.StoreImm(asm.R10, -16, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -4),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -16),
			asm.Mov.Imm(asm.R4, 0),
			asm.LoadMapPtr(asm.R1, 0).WithReference("a"), asm.FnMapUpdateElem.Call()}, lookup("b"), ret0), []string{"a"}},
		{"value pointer of b given as update's value: b is read", join(lookup("b"), asm.Instructions{
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Reg(asm.R3, asm.R0), asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -4), asm.Mov.Imm(asm.R4, 0),
			asm.LoadMapPtr(asm.R1, 0).WithReference("a"), asm.FnMapUpdateElem.Call(), out, asm.Return()}), []string{"a"}},
		{"value pointer given to a helper that writes through it", join(lookup("a"), asm.Instructions{
			asm.JEq.Imm(asm.R0, 0, "out"), asm.Mov.Reg(asm.R1, asm.R0), asm.Mov.Imm(asm.R2, 8), asm.Mov.Imm(asm.R3, 0),
			asm.FnProbeReadKernel.Call(), lookup("b")[0], lookup("b")[1], lookup("b")[2], lookup("b")[3], lookup("b")[4],
			out, asm.Return()}), []string{"a"}},
		{"pointer handed to a subprogram that stores through it", join(lookup("a"), lookup("b"), asm.Instructions{
			asm.JEq.Imm(asm.R0, 0, "out"), asm.Mov.Reg(asm.R1, asm.R0), asm.Call.Label("store"),
			out, asm.Return(),
			asm.StoreImm(asm.R1, 0, 7, asm.Word).WithSymbol("store"), asm.Mov.Imm(asm.R0, 0), asm.Return()}), []string{"b"}},
		{"pointer a subprogram returns, stored through by the caller", join(asm.Instructions{
			asm.Call.Label("get"), asm.JEq.Imm(asm.R0, 0, "out"), asm.StoreImm(asm.R0, 0, 7, asm.Word),
			out, asm.Return()},
			asm.Instructions{asm.StoreImm(asm.R10, -4, 0, asm.Word).WithSymbol("get")}, lookup("b")[1:], asm.Instructions{asm.Return()},
			asm.Instructions{asm.LoadMapPtr(asm.R1, 0).WithReference("a").WithSymbol("unused"), asm.Mov.Imm(asm.R0, 0), asm.Return()}),
			[]string{"b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := writtenNames(t, asmProgram(t, c.insns))
			if !slices.Equal(got, c.want) {
				t.Errorf("written %v, want %v", got, c.want)
			}
		})
	}
}

// A tail call may run a program that writes any map: the check gives up
// rather than guess.
func TestMapWritesGivesUpOnTailCalls(t *testing.T) {
	p := asmProgram(t, join(lookup("a"), asm.Instructions{
		asm.Mov.Imm(asm.R1, 0), asm.LoadMapPtr(asm.R2, 0).WithReference("b"), asm.Mov.Imm(asm.R3, 0),
		asm.FnTailCall.Call()}, ret0))
	if _, err := p.MapWrites(); err == nil || !strings.Contains(err.Error(), "tail calls") {
		t.Errorf("err %v, want one about tail calls", err)
	}
}

// The helper ids the check names are the kernel's (cilium/ebpf tags
// Linux helpers with platform 0).
func TestMapWritesHelperIDs(t *testing.T) {
	if asm.FnMapLookupElem != 1 || asm.FnTailCall != 12 {
		t.Errorf("helper ids %d %d: the check compares raw call immediates with asm.BuiltinFunc", asm.FnMapLookupElem, asm.FnTailCall)
	}
}
