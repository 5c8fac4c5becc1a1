// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	objsOnce sync.Once
	objs     []*emu.Object
)

// repoObjects loads every BPF object the repository ships (committed
// .o files), so that the emulator finds the programs tests load from
// them.
func repoObjects(t testing.TB) []*emu.Object {
	objsOnce.Do(func() {
		root := repoRoot(t)
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && (d.Name() == ".git" || strings.HasPrefix(d.Name(), ".")) && path != root {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".o") {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			if o, err := emu.LoadObject(rel, data); err == nil {
				objs = append(objs, o)
				emu.RegisterObject(o)
			}
			return nil
		})
	})
	return objs
}

// differential installs a Differential for the test and checks, at its
// end, that every run it saw agreed with the kernel. It returns the
// observer so that tests can count cases.
func differential(t *testing.T) *emu.Differential {
	t.Helper()
	bpftest.RequireRoot(t)
	d := &emu.Differential{Objects: repoObjects(t)}
	// BPFSH_EMU_XLATED=1 runs the differential tests on programs rebuilt
	// from the kernel's translated instructions instead of their objects.
	d.Xlated = os.Getenv("BPFSH_EMU_XLATED") == "1"
	old := testrun.SetRunObserver(d)
	t.Cleanup(func() {
		testrun.SetRunObserver(old)
		checkCases(t, d)
	})
	return d
}

// checkCases fails the test for every case that did not agree.
func checkCases(t *testing.T, d *emu.Differential) {
	t.Helper()
	cases := d.Cases()
	agree := 0
	for _, c := range cases {
		switch {
		case c.Agree():
			agree++
			if testing.Verbose() {
				t.Logf("agree: %s (%s; %d insns)", c.Program, strings.Join(c.Comparison.Checked, ", "), c.Steps)
			}
		case c.Comparison == nil && c.Err == nil && strings.HasPrefix(c.Skipped, "the kernel refused"):
			t.Logf("not compared: %s", c)
		default:
			t.Errorf("%s\n  input % x\n  ctx % x", c, c.DataIn, c.CtxIn)
		}
	}
	recordCount(t.Name(), agree, len(cases))
	t.Logf("%d of %d runs agree with the kernel", agree, len(cases))
}

var (
	countMu sync.Mutex
	counts  = map[string][2]int{}
)

func recordCount(name string, agree, total int) {
	countMu.Lock()
	defer countMu.Unlock()
	c := counts[name]
	counts[name] = [2]int{c[0] + agree, c[1] + total}
}

// udpFrame builds Ethernet/IPv4/UDP 10.0.0.1:40000 -> 10.0.0.2:7777 to
// a locally administered MAC, as testrun's tests do, through
// testrun/packet like every other test's frames.
func udpFrame(payload string) []byte {
	expr := `Ether(dst=02:00:00:00:00:02, src=0a:00:00:00:00:01)/IPv4(id=0, ttl=64, src=10.0.0.1, dst=10.0.0.2)/UDP(sport=40000, dport=7777, chksum=0)`
	if payload != "" {
		expr += "/Raw(hex=" + hex.EncodeToString([]byte(payload)) + ")"
	}
	return packet.MustBuild(expr)
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o644) }
