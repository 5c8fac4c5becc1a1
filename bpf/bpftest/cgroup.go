// SPDX-License-Identifier: Apache-2.0

package bpftest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
)

// Cgroup makes an empty cgroup v2 directory for t alone, directly under
// the cgroup v2 mount (found in /proc/self/mountinfo), named
// bpfsh-test-PID-RANDOM, and removes it when t ends, killing whatever
// still runs in it first. A test attaches its cgroup programs (sock_ops)
// there and starts its servers in it, so that nothing else on the machine
// passes through them. Cgroups of test processes that no longer exist
// are removed too (a fuzzing worker ends without its cleanups).
func Cgroup(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		t.Skipf("skipped: %v", err)
	}
	removeOrphanCgroups(mnt)
	dir, err := os.MkdirTemp(mnt, fmt.Sprintf("%s%d-", pinRootPrefix, os.Getpid()))
	if err != nil {
		t.Fatalf("make a cgroup for the test: %v", err)
	}
	t.Cleanup(func() {
		if err := bpf.RemoveCgroup(dir, 10*time.Second); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// InCgroup runs f with this process in the cgroup dir, and moves it back
// to its own cgroup afterwards. A socket belongs to the cgroup its
// process was in when it was made, and the connections a listening socket
// accepts to the listener's: a server of the test's own process (a fake)
// listens from inside the test's cgroup this way.
func InCgroup(t testing.TB, dir string, f func()) {
	t.Helper()
	home, err := bpf.CgroupOf(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := bpf.MoveToCgroup(dir, 0); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := bpf.MoveToCgroup(home, 0); err != nil {
			t.Fatalf("move the test process back: %v", err)
		}
	}()
	f()
}

// removeOrphanCgroups removes empty bpfsh-test-PID-* cgroups whose PID is
// not a running process.
func removeOrphanCgroups(mnt string) {
	for _, dir := range orphans(mnt) {
		bpf.RemoveCgroup(dir, time.Second)
	}
}
