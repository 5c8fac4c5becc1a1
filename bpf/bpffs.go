// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Where the kernel's pseudo file systems are mounted by convention.
const (
	BPFFSPath   = "/sys/fs/bpf"
	TraceFSPath = "/sys/kernel/tracing"
)

// OnBPFFS reports whether path (or the nearest existing directory above it)
// is on a bpf file system.
func OnBPFFS(path string) bool {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil {
			return st.Type == unix.BPF_FS_MAGIC
		}
		if p == "/" || p == "." {
			return false
		}
	}
}

// EnsureBPFFS makes sure a bpffs is mounted at /sys/fs/bpf, mounting one
// when it is not (as bpftool does). Without the privilege to mount it says
// exactly what to run instead.
func EnsureBPFFS() error {
	return ensureMounted(BPFFSPath, unix.BPF_FS_MAGIC, "bpf", "bpffs", unix.Mount)
}

// EnsureTraceFS makes sure tracefs is mounted at /sys/kernel/tracing.
func EnsureTraceFS() error {
	return ensureMounted(TraceFSPath, unix.TRACEFS_MAGIC, "tracefs", "tracefs", unix.Mount)
}

// Mounted reports whether the file system with magic is mounted at dir.
func Mounted(dir string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && int64(st.Type) == magic
}

// mountFunc is unix.Mount's signature. Tests pass a stand-in, so that the
// messages for a file system that is not mounted can be checked on a
// plain directory without mounting anything on the test machine.
type mountFunc func(source, target, fstype string, flags uintptr, data string) error

func ensureMounted(dir string, magic int64, fstype, what string, mount mountFunc) error {
	if Mounted(dir, magic) {
		return nil
	}
	if err := mount(fstype, dir, fstype, 0, ""); err != nil {
		how := fmt.Sprintf("mount -t %s %s %s", fstype, fstype, dir)
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%s is not mounted at %s and only root can mount it; run as root: %s", what, dir, how)
		}
		return fmt.Errorf("%s is not mounted at %s and mounting it failed (%v); run: %s", what, dir, err, how)
	}
	if !Mounted(dir, magic) {
		return fmt.Errorf("%s is not mounted at %s although mounting it reported success; run: mount -t %s %s %s", what, dir, fstype, fstype, dir)
	}
	return nil
}
