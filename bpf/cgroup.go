// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroup v2 directories for cgroup programs (sock_ops): the hierarchy's
// mount is found, not assumed (/sys/fs/cgroup on a unified system,
// /sys/fs/cgroup/unified on a hybrid one). A program attached to a cgroup
// sees the sockets of the processes in it and in the cgroups below it;
// bpfsh makes cgroups of its own (redis start, the tests) so that a
// program sees only the server it is for.

// cgroup2Magic is CGROUP2_SUPER_MAGIC, statfs's f_type on cgroup2.
const cgroup2Magic = 0x63677270

// Cgroup2Mount finds where the cgroup v2 hierarchy is mounted (in
// /proc/self/mountinfo): /sys/fs/cgroup on a unified system,
// /sys/fs/cgroup/unified on a hybrid one.
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 25 0:31 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw,...
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) == 0 || fs[0] != "cgroup2" {
			continue
		}
		if fs := strings.Fields(pre); len(fs) >= 5 && fs[3] == "/" {
			return strings.ReplaceAll(fs[4], `\040`, " "), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")
}

// ResolveCgroup turns a cgroup as a user gives it into its directory: an
// absolute path must be a directory of the cgroup v2 file system; any
// other is taken under the cgroup v2 mount (bpfsh-redis-6390 is
// <mount>/bpfsh-redis-6390). "" is the mount itself, the root cgroup.
func ResolveCgroup(path string) (string, error) {
	dir := path
	if !filepath.IsAbs(path) {
		mnt, err := Cgroup2Mount()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(mnt, path)
		if !within(dir, mnt) {
			return "", fmt.Errorf("cgroup %q: a relative cgroup is one under the cgroup v2 mount %s", path, mnt)
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("cgroup %s does not exist (mkdir it under the cgroup v2 mount, or give an existing one)", dir)
		}
		return "", fmt.Errorf("cgroup %s: %w", dir, err)
	}
	if st.Type != cgroup2Magic {
		return "", fmt.Errorf("%s is not a cgroup v2 directory (a cgroup program attaches to one; the cgroup v2 mount is found in /proc/self/mountinfo)", dir)
	}
	return dir, nil
}

func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// CgroupOf is the cgroup v2 directory of process pid (0: this process),
// from /proc/PID/cgroup's "0::/path" line.
func CgroupOf(pid int) (string, error) {
	p := "/proc/self/cgroup"
	if pid > 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read the cgroup of process %d: %w", pid, err)
	}
	mnt, err := Cgroup2Mount()
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(mnt, rel), nil
		}
	}
	return "", fmt.Errorf("%s has no cgroup v2 line (0::/...)", p)
}

// CgroupProcs are the processes in the cgroup dir (not below it).
func CgroupProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("read the processes of cgroup %s: %w", dir, err)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// MoveToCgroup moves process pid (0: this process, every thread of it)
// into the cgroup dir.
func MoveToCgroup(dir string, pid int) error {
	if pid == 0 {
		pid = os.Getpid()
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move process %d into cgroup %s: %w", pid, dir, err)
	}
	return nil
}

// MakeCgroup makes the cgroup dir (a directory under the cgroup v2
// mount). An empty cgroup of that name left by an earlier run (a process
// killed before it could remove it) is taken over; one with processes is
// an error, since someone still uses it.
func MakeCgroup(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, os.ErrExist) {
		pids, perr := CgroupProcs(dir)
		if perr != nil {
			return perr
		}
		if len(pids) > 0 {
			return fmt.Errorf("cgroup %s exists and holds processes %v; stop them, or choose another", dir, pids)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("make cgroup %s: %w", dir, err)
	}
	return nil
}

// RemoveCgroup removes the cgroup dir, which must have no cgroups below
// it: the processes still in it are killed (cgroup.kill, or SIGKILL one by
// one on kernels before 5.14) and waited for, up to wait. A dir that does
// not exist is no error.
func RemoveCgroup(dir string, wait time.Duration) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	deadline := time.Now().Add(wait)
	for killed := false; ; {
		pids, err := CgroupProcs(dir)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		if !killed {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			killed = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: processes %v still in it after %s", dir, pids, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A process just killed can leave cgroup.procs before the cgroup
	// counts it out: rmdir says EBUSY for a moment.
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
