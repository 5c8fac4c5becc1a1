// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/shell"
)

// Some cases need a process of their own: one that is not root, or one
// in a private mount namespace where bpffs and tracefs can be unmounted
// without touching the machine's. They re-run this test binary, which
// then acts as bpfsh (see TestMain).
const (
	helperEnv   = "BPFSH_TEST_HELPER" // "bpfsh" or "unmounted"
	parentNSEnv = "BPFSH_TEST_PARENT_MNTNS"
)

// TestMain runs the tests, or, when helperEnv is set, acts as bpfsh with
// the arguments after "--" and exits with its status.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperMain(mode)
	}
	os.Exit(m.Run())
}

// helperMain is bpfsh in a process of its own; it never returns.
func helperMain(mode string) {
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	if mode == "unmounted" {
		if err := unmountPrivately(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(100)
		}
	}
	os.Exit(shell.Main(args, os.Stdin, os.Stdout, os.Stderr))
}

// unmountPrivately unmounts bpffs and tracefs, but only after checking
// that this process is in a mount namespace of its own: unmounting them
// in the test machine's namespace would break every other test running.
func unmountPrivately() error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	if parent := os.Getenv(parentNSEnv); parent == "" || parent == self {
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

// helperCmd returns a command running bpfsh (the test binary exe) in mode
// with args.
func helperCmd(exe, mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, append([]string{"--"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// nobodyDir copies this test binary into a fresh directory that anyone
// may read, so that the user nobody can run it, and returns the directory.
func nobodyDir(t *testing.T) string {
	t.Helper()
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
	copyFile(t, self, filepath.Join(dir, "bpfsh.test"), 0o755)
	return dir
}

// nobodyCmd returns a command running bpfsh with args as the user nobody,
// from the copy nobodyDir made in dir (also its home and state directory).
func nobodyCmd(dir string, args ...string) *exec.Cmd {
	cmd := helperCmd(filepath.Join(dir, "bpfsh.test"), "bpfsh", args...)
	cmd.Env = append(cmd.Env, "HOME="+dir, "XDG_STATE_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// copyFile copies from to to, made with mode.
func copyFile(t *testing.T, from, to string, mode os.FileMode) {
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
