// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// A run over a hash map too large to copy cheaply is diffed by the keys
// the emulator saw it touch when bpfsh loaded the object (the emulator
// finds it through the load manifest), and says so on a "map diff" line;
// repeated runs, which the emulator does not stand in for, copy the map
// in the kernel, and say that.
func TestRunLargeMap(t *testing.T) {
	out := debugScript(t,
		"load ../testrun/fixture/big_bpfel.o name bg",
		`run bg/xdp_big packet Ether()/IPv4()/UDP()/Raw("ping")`,
		`run bg/xdp_big packet Ether()/IPv4()/UDP()/Raw("ping")`,
		`run bg/xdp_big packet Ether()/IPv4()/UDP()/Raw("ping") repeat 2`,
		"unload bg",
	)
	wantInOrder(t, out,
		"map       big: added 8 = 1000",
		"map diff  big: by the 2 key(s) the emulator saw the run touch",
		"map       big: 8 = 2000 (was 1000)",
		"map diff  big: by the 2 key(s) the emulator saw the run touch",
		"map       big: 8 = 5000 (was 2000)",
		"map diff  big: copied whole in the kernel before and after", "the emulator stands in for a single run, not repeated ones",
	)
}

// A map the program never writes is not read for the diff: --verbose and
// -j say so, the plain report is as before, and allmaps reads it.
func TestRunUnwrittenMapNotRead(t *testing.T) {
	bpftest.RequireRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // load's manifest, where run finds the object
	root := bpftest.PinRoot(t)
	obj, err := filepath.Abs("../testrun/fixture/progs_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	bpfshOK(t, root, "load "+obj+" name fx")
	run := "run fx/xdp_count hex " + frameHex
	const line = "map diff  seen: not read: xdp_count never writes it (its instructions only read it), so the run cannot change it"
	if out := bpfshOK(t, root, run, "--verbose"); !strings.Contains(out, line) || !strings.Contains(out, "map       hits: ") {
		t.Errorf("--verbose output lacks %q or hits:\n%s", line, out)
	}
	if out := bpfshOK(t, root, run); strings.Contains(out, "not read") || !strings.Contains(out, "map       bytes: ") {
		t.Errorf("plain output names unread maps, or lacks bytes:\n%s", out)
	}
	if out := bpfshOK(t, root, run, "-j"); !strings.Contains(out, `"maps_not_read":["seen: not read: `) {
		t.Errorf("-j output lacks maps_not_read:\n%s", out)
	}
	if out := bpfshOK(t, root, run+" allmaps", "--verbose"); strings.Contains(out, "not read") {
		t.Errorf("allmaps still leaves a map unread:\n%s", out)
	}
}
