package commands_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/shell"
)

// Some cases need a process of their own: one that is not root, or one
// in a private mount namespace where bpffs and tracefs can be unmounted
// without touching the machine's. They re-run this test binary, which
// then acts as bpfsh (see TestLoadHelperProcess).
const (
	ldHelperEnv   = "BPFSH_LOAD_TEST_HELPER" // "bpfsh" or "unmounted"
	ldParentNSEnv = "BPFSH_LOAD_TEST_PARENT_MNTNS"
)

// TestLoadHelperProcess is not a test: when ldHelperEnv is set it runs
// bpfsh with the arguments after "--" and exits with its status.
func TestLoadHelperProcess(t *testing.T) {
	mode := os.Getenv(ldHelperEnv)
	if mode == "" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	if mode == "unmounted" {
		if err := ldUnmountPrivately(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(100)
		}
	}
	os.Exit(shell.Main(args, os.Stdin, os.Stdout, os.Stderr))
}

// ldUnmountPrivately unmounts bpffs and tracefs, but only after checking
// that this process is in a mount namespace of its own: unmounting them
// in the test machine's namespace would break every other test running.
func ldUnmountPrivately() error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	if parent := os.Getenv(ldParentNSEnv); parent == "" || parent == self {
		return fmt.Errorf("refusing to unmount: mount namespace %s is the parent's (%s)", self, parent)
	}
	for _, m := range []struct {
		dir   string
		magic int64
	}{{bpf.BPFFSPath, unix.BPF_FS_MAGIC}, {bpf.TraceFSPath, unix.TRACEFS_MAGIC}} {
		for i := 0; i < 8 && bpf.Mounted(m.dir, m.magic); i++ {
			if err := unix.Unmount(m.dir, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", m.dir, err)
			}
		}
		if bpf.Mounted(m.dir, m.magic) {
			return fmt.Errorf("%s is still mounted", m.dir)
		}
	}
	return nil
}

// ldHelper returns a command running bpfsh (this test binary) in mode.
func ldHelper(t *testing.T, exe, mode string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(exe, append([]string{"-test.run=^TestLoadHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), ldHelperEnv+"="+mode)
	return cmd
}

func TestLoadNotRoot(t *testing.T) {
	root := ldSetup(t)
	// nobody must be able to reach the binary and the object: copy both
	// into a directory anyone may read.
	dir, err := os.MkdirTemp("", "bpfsh-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "bpfsh.test")
	obj := filepath.Join(dir, "fixture.o")
	ldCopy(t, self, exe, 0o755)
	ldCopy(t, bpftest.FixtureObject(t), obj, 0o644)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"load", obj}, "load needs root (or CAP_BPF and CAP_SYS_ADMIN) to use bpf(2) and bpffs; run bpfsh as root"},
		{[]string{"-j", "doctor"}, `"check":"privileges","status":"missing"`},
	} {
		cmd := ldHelper(t, exe, "bpfsh", append([]string{"--pin-root", root}, c.args...)...)
		cmd.Env = append(cmd.Env, "XDG_STATE_HOME="+dir, "HOME="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
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

func ldCopy(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
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
	cmd := ldHelper(t, self, "unmounted", args...)
	// Go makes the new namespace's mounts private (MS_REC|MS_PRIVATE on
	// /) before the helper starts, so unmounting there propagates nowhere.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	cmd.Env = append(cmd.Env, ldParentNSEnv+"="+ns, "XDG_STATE_HOME="+t.TempDir())
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
