// SPDX-License-Identifier: Apache-2.0

// Package bpftest gives tests what they need to work against the real
// kernel without touching anything they did not create: a private pin root
// under bpffs and the fixture objects loaded and pinned there. Tests that
// drive bpfsh itself do it through shell.New in-process (commands/ and
// shell/ tests) or by building the binary (shell/pty_test.go).
package bpftest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/fixture"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// GuestEnv is set (to 1) by /init in the kernel matrix's qemu guests
// (scripts/kernels). A guest carries the static test binaries, a static
// bpfsh, busybox, iproute2's ip and the repository's files, and nothing
// else: no servers to compare with, no bpftool, no dpkg, no go command.
const GuestEnv = "BPFSH_GUEST"

// InGuest reports whether the tests run in a kernel-matrix guest.
func InGuest() bool { return os.Getenv(GuestEnv) != "" }

// HostOnly skips t in a kernel-matrix guest, saying that it needs what,
// which only the host has; 'make test' runs it there.
func HostOnly(t testing.TB, what string) {
	t.Helper()
	if InGuest() {
		t.Skipf("skipped: host kernel only: needs %s, which the kernel matrix's guests do not carry", what)
	}
}

// RequireRoot skips t when the test cannot use bpf(2) and bpffs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for bpf(2) and bpffs (run the suite with 'make test' as root)")
	}
	if err := bpf.EnsureBPFFS(); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

// RequireHelper skips t when this kernel does not let programs of type pt
// call helper fn, saying so and since when mainline has the helper. Only a
// definite "not supported" skips; a probe that cannot tell fails t.
func RequireHelper(t testing.TB, pt ebpf.ProgramType, fn asm.BuiltinFunc) {
	t.Helper()
	RequireRoot(t)
	err := features.HaveProgramHelper(pt, fn)
	switch {
	case err == nil:
	case errors.Is(err, ebpf.ErrNotSupported):
		t.Skipf("skipped: %s", bpf.MissingHelper(pt, fn))
	default:
		t.Fatalf("probe %s for %s programs: %v", bpf.HelperName(fn), pt, err)
	}
}

// PinRoot makes an empty directory under /sys/fs/bpf for t alone and
// removes it, with everything pinned under it, when t ends.
//
// The directory's name carries the test process's pid. A fuzzing worker
// is ended without running its cleanups, so PinRoot also removes the pin
// roots of test processes that no longer exist (and only those).
func PinRoot(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	removeOrphanPinRoots()
	dir, err := os.MkdirTemp(bpf.BPFFSPath, fmt.Sprintf("%s%d-", pinRootPrefix, os.Getpid()))
	if err != nil {
		t.Fatalf("make pin root: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// pinRootPrefix starts the name of every pin root a test makes:
// bpfsh-test-PID-RANDOM.
const pinRootPrefix = "bpfsh-test-"

// removeOrphanPinRoots removes bpfsh-test-PID-* directories whose PID is
// not a running process.
func removeOrphanPinRoots() {
	for _, dir := range orphans(bpf.BPFFSPath) {
		os.RemoveAll(dir)
	}
}

// orphans are the bpfsh-test-PID-* directories under parent whose PID is
// not a running process: what killed test processes left behind.
func orphans(parent string) []string {
	var out []string
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), pinRootPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			out = append(out, filepath.Join(parent, e.Name()))
		}
	}
	return out
}

// FixtureObject writes the fixture ELF to a temporary file and returns its
// path, for tests of "load FILE".
func FixtureObject(t testing.TB) string {
	t.Helper()
	return writeObject(t, "fixture.o", fixture.FixtureObject())
}

// RejectObject writes the ELF the verifier refuses to a temporary file.
func RejectObject(t testing.TB) string {
	t.Helper()
	return writeObject(t, "reject.o", fixture.RejectObject())
}

func writeObject(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Fixture loads the fixture object into the kernel, pins every map and
// program flat under dir (as "load" would), and closes them when t ends.
func Fixture(t testing.TB, dir string) *fixture.FixtureObjects {
	t.Helper()
	var objs fixture.FixtureObjects
	if err := fixture.LoadFixtureObjects(&objs, nil); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	pin := func(name string, p interface{ Pin(string) error }) {
		if err := p.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatalf("pin %s: %v", name, err)
		}
	}
	pin("flows", objs.Flows)
	pin("counters", objs.Counters)
	pin("percpu", objs.Percpu)
	pin("jobs", objs.Jobs)
	pin("undo", objs.Undo)
	pin("events", objs.Events)
	pin("xdp_count", objs.XdpCount)
	pin("tc_count", objs.TcCount)
	pin("sock_count", objs.SockCount)
	return &objs
}
