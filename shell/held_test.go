// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/commands"
	"github.com/bpfsh/bpfsh/shell"
)

// heldShell is a shell on a fresh pin root with the fixture loaded as fx.
func heldShell(t *testing.T) (*shell.Shell, *commands.Session, *bytes.Buffer, string) {
	t.Helper()
	bpftest.RequireRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // load's manifest
	root := bpftest.PinRoot(t)
	s := &commands.Session{PinRoot: root, StateDir: filepath.Join(os.Getenv("XDG_STATE_HOME"), "bpfsh")}
	var out bytes.Buffer
	sh := shell.New(s, &out, &out)
	t.Cleanup(func() { s.Close() })
	obj, err := filepath.Abs("../testrun/fixture/progs_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	heldExec(t, sh, &out, "load "+obj+" name fx")
	return sh, s, &out, root
}

func heldExec(t *testing.T, sh *shell.Shell, out *bytes.Buffer, line string) string {
	t.Helper()
	out.Reset()
	if err := sh.ExecLine(line); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out.String())
	}
	return out.String()
}

func pinnedMapID(t *testing.T, path string) ebpf.MapID {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

func pinnedProgID(t *testing.T, path string) ebpf.ProgramID {
	t.Helper()
	p, err := ebpf.LoadPinnedProgram(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// waitGone waits until the kernel no longer knows the object gone reports
// on (the last reference's release frees maps after an RCU grace period).
func waitGone(t *testing.T, what string, gone func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if gone() {
			return
		}
	}
	t.Errorf("%s is still in the kernel after everything holding it was released", what)
}

func mapGone(id ebpf.MapID) func() bool {
	return func() bool {
		m, err := ebpf.NewMapFromID(id)
		if err == nil {
			m.Close()
		}
		return errors.Is(err, os.ErrNotExist)
	}
}

func progGone(id ebpf.ProgramID) func() bool {
	return func() bool {
		p, err := ebpf.NewProgramFromID(id)
		if err == nil {
			p.Close()
		}
		return errors.Is(err, os.ErrNotExist)
	}
}

// Consecutive runs keep the program and its maps open (and expect lines
// between them too); unload releases them first, so that the program and
// its maps leave the kernel as they did before runs held anything.
func TestUnloadAfterHeldRunsFreesEverything(t *testing.T) {
	sh, s, out, root := heldShell(t)
	hits := pinnedMapID(t, filepath.Join(root, "fx", "hits"))
	bytesID := pinnedMapID(t, filepath.Join(root, "fx", "bytes"))
	prog := pinnedProgID(t, filepath.Join(root, "fx", "xdp_count"))
	run := "run fx/xdp_count " + suiteFrame
	heldExec(t, sh, out, run)
	if !s.Held().Holding() {
		t.Fatalf("nothing held after a run")
	}
	got := heldExec(t, sh, out, run)
	if !strings.Contains(got, "hits: 17 = 2 (was 1)") {
		t.Errorf("second run's report:\n%s", got)
	}
	heldExec(t, sh, out, "expect retval XDP_PASS")
	if !s.Held().Holding() {
		t.Errorf("expect released what the runs held")
	}
	heldExec(t, sh, out, "unload fx")
	if s.Held().Holding() {
		t.Errorf("still holding after unload")
	}
	waitGone(t, "map hits", mapGone(hits))
	waitGone(t, "map bytes", mapGone(bytesID))
	waitGone(t, "program xdp_count", progGone(prog))
}

// Any command other than a run (or one that touches no kernel object)
// releases what runs held; so does the end of a script.
func TestRunsHeldReleasedByOtherCommandsAndScriptEnd(t *testing.T) {
	sh, s, out, _ := heldShell(t)
	run := "run fx/xdp_count " + suiteFrame
	heldExec(t, sh, out, run)
	heldExec(t, sh, out, "map show name hits")
	if s.Held().Holding() {
		t.Errorf("map show left the run's objects held")
	}
	heldExec(t, sh, out, run)
	if code := sh.RunScript(strings.NewReader(run+"\n"+run+"\n"), "script"); code != 0 {
		t.Fatalf("script: exit %d\n%s", code, out.String())
	}
	if s.Held().Holding() {
		t.Errorf("a script's end left its runs' objects held")
	}
}

// A pin that names another program now is run as that program: the held
// one is let go (and leaves the kernel, nothing else holding it), and so
// are the fds of its maps.
func TestRepinnedProgramRunsAfresh(t *testing.T) {
	sh, s, out, root := heldShell(t)
	path := filepath.Join(root, "fx", "xdp_count")
	old := pinnedProgID(t, path)
	run := "run fx/xdp_count " + suiteFrame
	if got := heldExec(t, sh, out, run); !strings.Contains(got, "xdp_count (id ") {
		t.Fatalf("first run:\n%s", got)
	}
	// Pin xdp_reflect where xdp_count was.
	other, err := ebpf.LoadPinnedProgram(filepath.Join(root, "fx", "xdp_reflect"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(path); err != nil {
		t.Fatal(err)
	}
	got := heldExec(t, sh, out, run)
	if !strings.Contains(got, "xdp_reflect (id ") || !strings.Contains(got, "XDP_TX") {
		t.Errorf("run of the re-pinned path:\n%s", got)
	}
	if !s.Held().Holding() {
		t.Errorf("the new program is not held")
	}
	waitGone(t, "the program pinned there before", progGone(old))
	// And back: a removed pin fails as it always did.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := sh.ExecLine(run); err == nil || !strings.Contains(err.Error(), "nothing is pinned") {
		t.Errorf("run of a removed pin: %v", err)
	}
	if s.Held().Holding() {
		t.Errorf("still holding after the pin went")
	}
}
