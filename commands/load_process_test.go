// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

func TestLoadNotRoot(t *testing.T) {
	root := ldSetup(t)
	// nobody must be able to reach the object too.
	dir := nobodyDir(t)
	obj := filepath.Join(dir, "fixture.o")
	copyFile(t, bpftest.FixtureObject(t), obj, 0o644)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"load", obj}, "load needs root (or CAP_BPF and CAP_SYS_ADMIN) to use bpf(2) and bpffs; run bpfsh as root"},
		{[]string{"-j", "doctor"}, `"check":"privileges","status":"missing"`},
	} {
		out, err := nobodyCmd(dir, append([]string{"--pin-root", root}, c.args...)...).CombinedOutput()
		if c.args[0] == "load" {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("%v as nobody: %v, want exit 1; output:\n%s", c.args, err, out)
			}
			if lines := strings.Count(string(out), "\n"); lines != 1 {
				t.Errorf("%v as nobody printed %d lines, want one:\n%s", c.args, lines, out)
			}
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%v as nobody printed:\n%s\nwant %q in it", c.args, out, c.want)
		}
	}
	if got := ldEntries(t, root); len(got) != 0 {
		t.Errorf("pin root holds %v", got)
	}
}

// TestMountsWhenUnmounted runs doctor, and separately load, in private
// mount namespaces where bpffs and tracefs have been unmounted, as on a
// fresh machine: each mounts what it needs (and doctor says so).
func TestMountsWhenUnmounted(t *testing.T) {
	bpftest.RequireRoot(t)
	obj := bpftest.FixtureObject(t)

	var checks []bpf.Check
	ldInFreshNamespace(t, &checks, "-j", "doctor")
	for _, c := range checks {
		if c.Check == "bpffs" || c.Check == "tracefs" {
			if c.Status != bpf.StatusOK || !strings.Contains(c.Detail, "was not mounted") || !strings.Contains(c.Detail, "bpfsh mounted it now") {
				t.Errorf("doctor's %s check: %+v, want ok after mounting it", c.Check, c)
			}
		}
	}
	if len(checks) == 0 {
		t.Error("doctor printed no checks")
	}

	// The pin root is in the namespace's own new bpffs, which vanishes
	// with the namespace (and with it the objects pinned there).
	var pinned []bpf.Pinned
	ldInFreshNamespace(t, &pinned, "-j", "--pin-root", "/sys/fs/bpf/bpfsh-nstest", "load", obj, "name", "ns")
	if len(pinned) != 10 || !strings.HasPrefix(pinned[0].Path, "/sys/fs/bpf/bpfsh-nstest/ns/") {
		t.Errorf("load in the namespace pinned %+v", pinned)
	}

	// The machine's own bpffs is still there.
	if !bpf.Mounted(bpf.BPFFSPath, unix.BPF_FS_MAGIC) {
		t.Fatalf("%s is no longer mounted in the test's namespace", bpf.BPFFSPath)
	}
}

// ldInFreshNamespace runs bpfsh with args in a new mount namespace without
// bpffs and tracefs, and decodes its JSON output into v.
func ldInFreshNamespace(t *testing.T, v any, args ...string) {
	t.Helper()
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Skipf("skipped: cannot read this process's mount namespace: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd(self, "unmounted", args...)
	// Go makes the new namespace's mounts private (MS_REC|MS_PRIVATE on
	// /) before the helper starts, so unmounting there propagates nowhere.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	cmd.Env = append(cmd.Env, parentNSEnv+"="+ns, "XDG_STATE_HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 100 {
		t.Skipf("skipped: cannot set up a private mount namespace: %s", stderr.String())
	}
	if err != nil {
		t.Fatalf("bpfsh %v in a fresh namespace: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("bpfsh %v printed %q: %v", args, out, err)
	}
}
