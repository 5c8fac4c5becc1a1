// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// TestNotRootReRunsWithSudo runs the bpfsh binary as the user nobody, as
// `go run .` runs for a user who did not type sudo: it re-runs itself by
// its absolute path through the sudo on PATH (a stand-in here that writes
// down its arguments); without a sudo it says what will fail and goes on;
// as root, or with BPFSH_NO_SUDO=1, it leaves sudo alone.
func TestNotRootReRunsWithSudo(t *testing.T) {
	bpftest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "bpfsh-sudo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bpfsh")
	data, err := os.ReadFile(bpfshBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	withSudo := filepath.Join(dir, "withsudo")
	noSudo := filepath.Join(dir, "nosudo")
	for _, d := range []string{withSudo, noSudo} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	record := filepath.Join(dir, "sudo-args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + record + "\n"
	if err := os.WriteFile(filepath.Join(withSudo, "sudo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(nobody bool, path string, env ...string) (string, int) {
		t.Helper()
		os.Remove(record)
		cmd := exec.Command(bin, "--pin-root", "/sys/fs/bpf/bpfsh-test-sudo", "-c", "packet Ether()")
		cmd.Env = append([]string{"PATH=" + path + ":/usr/bin:/bin", "HOME=" + dir, "XDG_STATE_HOME=" + dir}, env...)
		if nobody {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if _, err := exec.LookPath("sudo"); err == nil {
		t.Log("this machine has a sudo in /usr/bin; the stand-in comes first on PATH")
	}

	out, st := run(true, withSudo)
	got, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("as nobody with sudo on PATH, bpfsh did not run sudo (exit %d):\n%s", st, out)
	}
	want := strings.Join([]string{"--", bin, "--pin-root", "/sys/fs/bpf/bpfsh-test-sudo", "-c", "packet Ether()"}, "\n") + "\n"
	if string(got) != want {
		t.Errorf("sudo got the arguments\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(out, "not root: re-running as root with sudo") {
		t.Errorf("bpfsh did not say why it runs sudo:\n%s", out)
	}

	if _, err := exec.LookPath("/usr/bin/sudo"); err != nil {
		out, st = run(true, noSudo)
		if st != 0 || !strings.Contains(out, "there is no sudo to become root") || !strings.Contains(out, "14 bytes: Ether") {
			t.Errorf("as nobody without sudo: exit %d, output:\n%s\nwant the warning and the packet", st, out)
		}
	}

	out, st = run(true, withSudo, "BPFSH_NO_SUDO=1")
	if _, err := os.Stat(record); err == nil || st != 0 || strings.Contains(out, "sudo") {
		t.Errorf("with BPFSH_NO_SUDO=1 bpfsh ran sudo or failed (exit %d):\n%s", st, out)
	}
	out, st = run(false, withSudo)
	if _, err := os.Stat(record); err == nil || st != 0 || strings.Contains(out, "sudo") {
		t.Errorf("as root bpfsh ran sudo or failed (exit %d):\n%s", st, out)
	}
}

// TestTestScriptReRunsWithSudo runs scripts/test.sh (make test) as
// nobody with a stand-in sudo: it re-runs itself through `sudo env
// PATH=...`, so that sudo's secure_path cannot hide the go command, and
// by its absolute path.
func TestTestScriptReRunsWithSudo(t *testing.T) {
	bpftest.RequireRoot(t)
	bpftest.HostOnly(t, "bash and the go command")
	dir, err := os.MkdirTemp("", "bpfsh-sudo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Join(dir, "scripts"), filepath.Join(dir, "bin")} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
	}
	data, err := os.ReadFile("../scripts/test.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "scripts", "test.sh")
	if err := os.WriteFile(script, data, 0o755); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "sudo-args")
	sudo := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + record + "\n"
	if err := os.WriteFile(filepath.Join(dir, "bin", "sudo"), []byte(sudo), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bin") + ":/usr/local/go/bin:/usr/bin:/bin"
	cmd := exec.Command("bash", "scripts/test.sh")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + path, "HOME=" + dir, "GOFLAGS=-mod=mod"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/test.sh as nobody: %v\n%s", err, out)
	}
	got, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("scripts/test.sh as nobody did not run sudo:\n%s", out)
	}
	want := strings.Join([]string{"env", "PATH=" + path, "GOFLAGS=-mod=mod", script}, "\n") + "\n"
	if string(got) != want {
		t.Errorf("sudo got\n%s\nwant\n%s", got, want)
	}
}
