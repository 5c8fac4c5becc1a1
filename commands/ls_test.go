// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// pgPinJSON is one entry of "ls -j".
type pgPinJSON struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Type   string `json:"type"`
	ID     uint32 `json:"id"`
	Name   string `json:"name"`
	ProgID uint32 `json:"prog_id"`
	Error  string `json:"error"`
}

func TestLsFixture(t *testing.T) {
	root, objs := pgFixture(t)
	want := map[string]pgPinJSON{
		"flows":      {Kind: "map", Type: "hash", ID: pgMapID(t, objs.Flows), Name: "flows"},
		"counters":   {Kind: "map", Type: "array", ID: pgMapID(t, objs.Counters), Name: "counters"},
		"percpu":     {Kind: "map", Type: "percpu_hash", ID: pgMapID(t, objs.Percpu), Name: "percpu"},
		"jobs":       {Kind: "map", Type: "queue", ID: pgMapID(t, objs.Jobs), Name: "jobs"},
		"undo":       {Kind: "map", Type: "stack", ID: pgMapID(t, objs.Undo), Name: "undo"},
		"events":     {Kind: "map", Type: "ringbuf", ID: pgMapID(t, objs.Events), Name: "events"},
		"xdp_count":  {Kind: "prog", Type: "xdp", ID: pgProgID(t, objs.XdpCount), Name: "xdp_count"},
		"tc_count":   {Kind: "prog", Type: "sched_cls", ID: pgProgID(t, objs.TcCount), Name: "tc_count"},
		"sock_count": {Kind: "prog", Type: "socket_filter", ID: pgProgID(t, objs.SockCount), Name: "sock_count"},
	}
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := bpf.PinFD(objs.Counters.FD(), filepath.Join(root, "sub", "again")); err != nil {
		t.Fatal(err)
	}

	// Without DIR, ls lists the pin root.
	pins := decodeJSON[[]pgPinJSON](t, bpfshOK(t, root, "ls", "-j"))
	if len(pins) != len(want)+2 {
		t.Errorf("ls -j lists %d entries, want %d: %+v", len(pins), len(want)+2, pins)
	}
	for _, p := range pins {
		rel, _ := filepath.Rel(root, p.Path)
		switch rel {
		case "sub":
			if p.Kind != "dir" {
				t.Errorf("sub: %+v", p)
			}
		case "sub/again":
			if p.Kind != "map" || p.ID != want["counters"].ID {
				t.Errorf("sub/again: %+v", p)
			}
		default:
			w, ok := want[rel]
			w.Path = p.Path
			if !ok || p != w {
				t.Errorf("ls: %+v, want %+v", p, w)
			}
		}
	}

	out := bpfshOK(t, root, "ls")
	for _, w := range []string{
		"PATH", "KIND",
		fmt.Sprintf("xdp_count  prog  xdp  %d  xdp_count", want["xdp_count"].ID),
		fmt.Sprintf("flows  map  hash  %d  flows", want["flows"].ID),
		"sub/  dir",
		fmt.Sprintf("sub/again  map  array  %d  counters", want["counters"].ID),
	} {
		if !containsSpaced(out, w) {
			t.Errorf("ls lacks %q:\n%s", w, out)
		}
	}

	// A relative DIR is under the pin root; a pin lists just itself.
	if out := bpfshOK(t, root, "ls sub"); !containsSpaced(out, "again  map  array") || strings.Contains(out, "xdp_count") {
		t.Errorf("ls sub:\n%s", out)
	}
	if out := bpfshOK(t, root, "ls "+filepath.Join(root, "tc_count")); !containsSpaced(out, "tc_count  prog  sched_cls") {
		t.Errorf("ls of a pin:\n%s", out)
	}
	// Without a pin root, ls lists /sys/fs/bpf (where this test's root is).
	if out := bpfshOK(t, filepath.Join(root, "absent"), "ls"); !strings.Contains(out, filepath.Base(root)+"/") {
		t.Errorf("ls without a pin root does not list %s:\n%s", bpf.BPFFSPath, out)
	}
}

func TestLsErrors(t *testing.T) {
	root := bpftest.PinRoot(t)
	bpfshFails(t, root, "ls "+t.TempDir(), 1, "is not on a bpf file system")
	bpfshFails(t, root, "ls nothing/here", 1, "does not exist")
	bpfshFails(t, root, "ls a b", 2, "one DIR at most")
}

// TestLsManyPins pins one map 10,000 times: the case completion has to
// answer quickly. WalkPins sees every name without opening anything; ls
// opens each once.
func TestLsManyPins(t *testing.T) {
	root, objs := pgFixture(t)
	dir := filepath.Join(root, "many")
	const n = 10000
	for i := range n {
		if err := bpf.PinFD(objs.Counters.FD(), filepath.Join(dir, fmt.Sprintf("m%05d", i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	if err := bpf.WalkPins(dir, func(path string, isDir bool) error {
		if !isDir && strings.HasPrefix(filepath.Base(path), "m") {
			seen++
		}
		return nil
	}); err != nil || seen != n {
		t.Fatalf("WalkPins saw %d pins (%v), want %d", seen, err, n)
	}
	pins := decodeJSON[[]pgPinJSON](t, bpfshOK(t, root, "ls many", "-j"))
	id := pgMapID(t, objs.Counters)
	if len(pins) != n {
		t.Fatalf("ls lists %d pins, want %d", len(pins), n)
	}
	for _, p := range pins {
		if p.Kind != "map" || p.ID != id || p.Name != "counters" {
			t.Fatalf("ls: %+v", p)
		}
	}
}

func TestProgsNotRoot(t *testing.T) {
	root, objs := pgFixture(t)
	dir := nobodyDir(t)
	id := pgProgID(t, objs.XdpCount)
	for _, line := range []string{
		"prog list",
		fmt.Sprintf("prog show id %d", id),
		fmt.Sprintf("prog dump id %d", id),
		"link list",
		"ls " + root,
		fmt.Sprintf("prog pin %d %s", id, filepath.Join(root, "nobody")),
	} {
		out, err := nobodyCmd(dir, "--pin-root", root, "-c", line).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("%s as nobody: %v, want exit 1:\n%s", line, err, out)
		}
		if strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "run bpfsh as root") {
			t.Errorf("%s as nobody printed:\n%s", line, out)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "nobody")); err == nil {
		t.Errorf("prog pin as nobody pinned something")
	}
}
