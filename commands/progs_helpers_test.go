// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/fixture"
)

// Helpers of the prog, link, net and ls tests (prefix pg).

// pgBpftool is Debian's bpftool, which the interop tests run.
const pgBpftool = "/usr/sbin/bpftool"

// pgFixture loads the fixture, pins it flat under a fresh pin root and
// returns the root.
func pgFixture(t *testing.T) (string, *fixture.FixtureObjects) {
	t.Helper()
	root := bpftest.PinRoot(t)
	return root, bpftest.Fixture(t, root)
}

// pgProgID is the kernel's id of p.
func pgProgID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("program has no id")
	}
	return uint32(id)
}

// pgMapID is the kernel's id of m.
func pgMapID(t *testing.T, m *ebpf.Map) uint32 {
	t.Helper()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("map has no id")
	}
	return uint32(id)
}

// pgNeedBpftool skips t when bpftool is not installed.
func pgNeedBpftool(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(pgBpftool); err != nil {
		t.Skipf("skipped: %s is not installed (apt-get install bpftool)", pgBpftool)
	}
}

// pgBpftoolRun runs bpftool and returns its standard output.
func pgBpftoolRun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(pgBpftool, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bpftool %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}
