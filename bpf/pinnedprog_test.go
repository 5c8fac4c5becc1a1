// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// A pin opened again is the program pinned there now: after the pin is
// replaced by another program, or by a map, the second open says so.
func TestLoadPinnedProgramAgain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir, err := os.MkdirTemp("/sys/fs/bpf", "bpfsh-pinnedprog-")
	if err != nil {
		t.Skip("no bpffs:", err)
	}
	defer os.RemoveAll(dir)
	newProg := func(name string, ret int32) *ebpf.Program {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	path := filepath.Join(dir, "p")
	a := newProg("first", 1)
	if err := a.Pin(path); err != nil {
		t.Fatal(err)
	}
	idOf := func(p *ebpf.Program) ebpf.ProgramID {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		return id
	}
	want := idOf(a)
	for range 3 {
		p, err := loadPinnedProgram(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := idOf(p); got != want {
			t.Errorf("opened id %d, want %d", got, want)
		}
		p.Close()
	}
	// Another program pinned at the same path.
	if err := a.Unpin(); err != nil {
		t.Fatal(err)
	}
	b := newProg("second", 2)
	if err := b.Pin(path); err != nil {
		t.Fatal(err)
	}
	p, err := loadPinnedProgram(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := idOf(p); got != idOf(b) {
		t.Errorf("after re-pinning: opened id %d, want %d", got, idOf(b))
	}
	p.Close()
	// A map pinned there instead.
	if err := b.Unpin(); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(path); err != nil {
		t.Fatal(err)
	}
	if p, err := loadPinnedProgram(path); err == nil || !strings.Contains(err.Error(), "not a Program") {
		if p != nil {
			p.Close()
		}
		t.Errorf("a map pinned where the program was: err %v, want one saying it is not a program", err)
	}
}
