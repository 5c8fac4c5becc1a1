// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/commands"
)

func TestCompletePacketExpressions(t *testing.T) {
	s := &commands.Session{PinRoot: "/nonexistent", Vars: map[string]any{"pong": nil, "kv.session": nil}}
	New(s, nil, nil)
	run := "run fix/xdp_count packet "

	// Where a packet is required: layers (and $variables), not run's options.
	wantAmong(t, s, run, "Ether(", "IPv4(", "UDP(", "Raw(", "$pong")
	wantNone(t, s, run, "ctx", "repeat", "$kv.session")
	wantAmong(t, s, "packet ", "Ether(", "$pong")
	wantAmong(t, s, "let x = ", "Ether(")
	wantTexts(t, s, run+"Eth", "Ether(")
	wantTexts(t, s, run+"Ether()/IPv", "Ether()/IPv4(", "Ether()/IPv6(")
	wantTexts(t, s, run+"$p", "$pong")
	wantAmong(t, s, run+"$pong/R", "$pong/Raw(")

	// Fields inside a layer's parentheses; after a ", " the line editor's
	// word starts after the blank, and so does the suggestion.
	wantTexts(t, s, run+"Ether()/IPv4(tt", "Ether()/IPv4(ttl=")
	wantAmong(t, s, run+"UDP(", "UDP(sport=", "UDP(dport=")
	line := "packet UDP(dport=1, sp"
	if sg := suggestion(t, s, line, "sport="); sg.Start != len(line)-2 {
		t.Errorf("%q: sport= starts at %d, want %d", line, sg.Start, len(line)-2)
	}
	wantTexts(t, s, "packet UDP(dport=")           // a value: nothing
	wantTexts(t, s, `packet Raw("ab`)              // inside quotes: nothing
	wantTexts(t, s, "packet Ether()/Bogus(")       // unknown layer: nothing
	wantNone(t, s, "packet Ether()/IPv4()", "ctx") // a finished layer
	wantAmong(t, s, run+"Ether()/IPv4() ", "ctx", "repeat")

	// No suggestion without a text (the usage's '|' between alternatives).
	for _, line := range []string{run + "Ether()/IPv4() ", "run fix/xdp_count ", "packet "} {
		for _, txt := range texts(t, s, line) {
			if txt == "" {
				t.Errorf("%q: a suggestion has no text: %q", line, texts(t, s, line))
			}
		}
	}
}

func TestCompleteLoadOffersObjectsFirst(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.txt", "b.c", "z.o", "m.bpf.o"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &commands.Session{PinRoot: "/nonexistent"}
	New(s, nil, nil)
	d := dir + "/"
	wantTexts(t, s, "load "+d, d+"m.bpf.o", d+"z.o", d+"sub/", d+"a.txt", d+"b.c")
	wantTexts(t, s, "prog load "+d, d+"m.bpf.o", d+"z.o", d+"sub/", d+"a.txt", d+"b.c")
	// Other files keep their order.
	wantTexts(t, s, "source "+d, d+"a.txt", d+"b.c", d+"m.bpf.o", d+"sub/", d+"z.o")
}

func TestCompleteIDsLeaveGoneObjects(t *testing.T) {
	bpftest.RequireRoot(t)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "gone_soon", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := p.Info()
	id, _ := info.ID()
	idText := strconv.FormatUint(uint64(id), 10)
	resetKernelCache()
	s := testSession("/nonexistent")
	if sg := suggestion(t, s, "prog show id "+idText, idText); !strings.Contains(sg.Desc, "gone_soon") {
		t.Errorf("id %s is offered as %q", idText, sg.Desc)
	}

	// The program goes; the cached list still has it for a moment.
	p.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		q, err := ebpf.NewProgramFromID(id)
		if err != nil {
			break
		}
		q.Close()
		if time.Now().After(deadline) {
			t.Skip("skipped: the kernel kept the closed program for 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// (What is typed may still come back as the usage hint, without the
	// program's description.)
	for _, sg := range complete(s, "prog show id "+idText, len("prog show id "+idText)) {
		if strings.Contains(sg.Desc, "gone_soon") {
			t.Errorf("the gone program is offered: %+v", sg)
		}
	}
}
