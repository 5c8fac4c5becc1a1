package commands_test

import (
	"bytes"
	"encoding/json"
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

// pgRun runs one bpfsh command line in-process with root as the pin root.
func pgRun(t *testing.T, root, line string, flags ...string) (stdout, stderr string, code int) {
	t.Helper()
	code, stdout, stderr = bpfsh(t, root, append(flags, "-c", line)...)
	return stdout, stderr, code
}

// pgOK runs line and fails the test unless it succeeds.
func pgOK(t *testing.T, root, line string, flags ...string) string {
	t.Helper()
	out, errs, code := pgRun(t, root, line, flags...)
	if code != 0 {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", line, code, out, errs)
	}
	return out
}

// pgFails runs line, expects exit status code and an error of one line
// containing every one of wants.
func pgFails(t *testing.T, root, line string, code int, wants ...string) string {
	t.Helper()
	out, errs, got := pgRun(t, root, line)
	if got != code {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", line, got, code, out, errs)
	}
	if n := strings.Count(strings.TrimSpace(errs), "\n"); n != 0 || errs == "" {
		t.Errorf("%s: want one error line, got:\n%s", line, errs)
	}
	for _, w := range wants {
		if !strings.Contains(errs, w) {
			t.Errorf("%s: error %q does not contain %q", line, strings.TrimSpace(errs), w)
		}
	}
	return errs
}

// pgJSON decodes out into a T.
func pgJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, out)
	}
	return v
}

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
