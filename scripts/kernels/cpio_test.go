// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// What cpioWriter writes, busybox's cpio (the newc reader closest to the
// kernel's) unpacks: files with their modes, symlinks, the directories
// made on demand.
func TestCpioUnpacks(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Skipf("skipped: %v (apt-get install busybox-static)", err)
	}
	var buf bytes.Buffer
	c := newCpio(&buf)
	c.File("init", 0o755, []byte("#!/bin/sh\n"))
	c.File("a/b/c.txt", 0o644, []byte("odd length"))
	c.File("a/b/empty", 0o600, nil)
	c.Symlink("bin/sh", "busybox")
	c.Dir("proc")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive of %d bytes, not 4-aligned", buf.Len())
	}
	dir := t.TempDir()
	cmd := exec.Command(busyboxPath, "cpio", "-i", "-d")
	cmd.Dir = dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("busybox cpio -i: %v: %s", err, out)
	}
	for name, want := range map[string]string{"init": "#!/bin/sh\n", "a/b/c.txt": "odd length", "a/b/empty": ""} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("init: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "proc")); err != nil || !fi.IsDir() {
		t.Errorf("proc: %v %v", fi, err)
	}
}
