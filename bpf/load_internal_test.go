// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf/fixture"
)

// (bpftest imports this package, so these internal tests make their own
// pin directory.)
func privatePinDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 || !Mounted(BPFFSPath, unix.BPF_FS_MAGIC) {
		t.Skip("skipped: needs root and bpffs at /sys/fs/bpf")
	}
	dir, err := os.MkdirTemp(BPFFSPath, "bpfsh-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Pinning that fails half-way removes the pins already made and the
// directory pinAll made, and leaves what was there before alone.
func TestPinAllRollsBack(t *testing.T) {
	root := privatePinDir(t)
	spec, err := readSpec(fixture.FixtureObject())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planPins(spec)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := loadCollection(spec, "fixture", false)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	l := &Loaded{Name: "half", Dir: filepath.Join(root, "half")}
	for _, p := range plan {
		obj, err := describe(coll, p, l.Dir)
		if err != nil {
			t.Fatal(err)
		}
		l.Objects = append(l.Objects, obj)
	}
	// Something else already holds the last object's path (a place
	// outside NAME/, since NAME/ does not exist yet).
	other := filepath.Join(root, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	blocker, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	last := len(l.Objects) - 1
	l.Objects[last].Path = filepath.Join(other, "taken")
	if err := blocker.Pin(l.Objects[last].Path); err != nil {
		t.Fatal(err)
	}

	err = pinAll(coll, plan, l)
	if err == nil || !strings.Contains(err.Error(), "nothing was left pinned") {
		t.Fatalf("pinAll = %v, want a failure", err)
	}
	if _, err := os.Stat(l.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is left behind (stat: %v)", l.Dir, err)
	}
	if _, err := os.Stat(l.Objects[last].Path); err != nil {
		t.Errorf("the pin that was there before is gone: %v", err)
	}

	// The same plan succeeds where nothing is in the way: the objects
	// rolled back can be pinned again.
	l.Objects[last].Path = filepath.Join(l.Dir, plan[last].pin)
	if err := pinAll(coll, plan, l); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(l.Dir); len(es) != len(plan) {
		t.Fatalf("pinned %d objects, want %d", len(es), len(plan))
	}
}

// The messages for a file system that is not mounted, checked on a plain
// directory with a stand-in for mount(2): nothing is mounted for real here
// (commands' TestMountsWhenUnmounted mounts for real, in a private mount
// namespace).
func TestEnsureMountedMessages(t *testing.T) {
	dir := t.TempDir()
	var calls []string
	fake := func(err error) mountFunc {
		return func(source, target, fstype string, flags uintptr, data string) error {
			calls = append(calls, fmt.Sprintf("%s %s %s", source, target, fstype))
			return err
		}
	}
	for _, c := range []struct {
		mountErr error
		want     string
	}{
		{unix.EPERM, "bpffs is not mounted at " + dir + " and only root can mount it; run as root: mount -t bpf bpf " + dir},
		{unix.ENODEV, "bpffs is not mounted at " + dir + " and mounting it failed (no such device); run: mount -t bpf bpf " + dir},
		{nil, "bpffs is not mounted at " + dir + " although mounting it reported success"},
	} {
		calls = nil
		err := ensureMounted(dir, unix.BPF_FS_MAGIC, "bpf", "bpffs", fake(c.mountErr))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("mount error %v: got %v, want %q", c.mountErr, err, c.want)
		}
		if len(calls) != 1 || calls[0] != "bpf "+dir+" bpf" {
			t.Errorf("mount calls %q", calls)
		}
	}
	chk := mountCheck("tracefs", dir, unix.TRACEFS_MAGIC, "tracefs", fake(unix.EPERM))
	if chk.Status != StatusMissing || chk.Fix != "mount -t tracefs tracefs "+dir+" (as root)" || !strings.Contains(chk.Detail, "only root can mount it") {
		t.Errorf("doctor check %+v", chk)
	}
	// Already mounted: mount is not called.
	if os.Geteuid() == 0 && Mounted(BPFFSPath, unix.BPF_FS_MAGIC) {
		calls = nil
		if err := ensureMounted(BPFFSPath, unix.BPF_FS_MAGIC, "bpf", "bpffs", fake(unix.EPERM)); err != nil || len(calls) != 0 {
			t.Errorf("mounted bpffs: err %v, mount calls %q", err, calls)
		}
	}
}

func TestVerifierErrorDetail(t *testing.T) {
	var log []string
	for i := range 30 {
		log = append(log, fmt.Sprintf("\t%d: (b7) r0 = %d", i, i))
	}
	log = append(log, "R0 invalid mem access 'scalar'", "processed 31 insns (limit 1000000) max_states_per_insn 0")
	e := &VerifierError{Object: "x.o", Program: "p", Section: "xdp", Reason: verifierReason(log, nil), Log: log}
	if got := e.Error(); got != "load x.o: the verifier rejected program p (section xdp): R0 invalid mem access 'scalar'" {
		t.Errorf("Error() = %q", got)
	}
	tail := strings.Split(e.Detail(), "\n")
	if len(tail) != VerifierTail+1 || tail[0] != "verifier log, last 20 of 32 lines (--verbose shows all):" ||
		tail[1] != "  12: (b7) r0 = 12" || tail[VerifierTail] != "  processed 31 insns (limit 1000000) max_states_per_insn 0" {
		t.Errorf("Detail() =\n%s", e.Detail())
	}
	e.Full = true
	if full := strings.Split(e.Detail(), "\n"); len(full) != len(log)+1 || full[1] != "  0: (b7) r0 = 0" {
		t.Errorf("full Detail() =\n%s", e.Detail())
	}
	if got := verifierReason(nil, unix.E2BIG); got != "argument list too long" {
		t.Errorf("reason without a log = %q", got)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b/fixture.o":        "fixture",
		"xdp_kv.bpf.o":          "xdp_kv",
		"kv_bpfel.o":            "kv",
		"my.prog.o":             "my_prog",
		"noext":                 "noext",
		".o":                    "_o",
		"dir/counter_bpfeb.o":   "counter",
		"weird name.bpf.o":      "weird name",
		"/x/y/probe.kern.bpf.o": "probe_kern",
	} {
		if got := DefaultName(in); got != want {
			t.Errorf("DefaultName(%q) = %q, want %q", in, got, want)
		}
	}
	for _, ok := range []string{"kv", "a-b_C9"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a/b", "..", "weird name", strings.Repeat("x", 201)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted it", bad)
		}
	}
	for in, want := range map[string]string{".rodata": "rodata", ".rodata.str1.1": "rodata_str1_1", "flows": "flows"} {
		if got := pinName(in); got != want {
			t.Errorf("pinName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRelease(t *testing.T) {
	for in, want := range map[string][2]int{"6.18.44-fc-v595": {6, 18}, "5.4.0-150-generic": {5, 4}, "4.19": {4, 19}, "6.1rc2": {6, 1}} {
		ma, mi, err := parseRelease(in)
		if err != nil || ma != want[0] || mi != want[1] {
			t.Errorf("parseRelease(%q) = %d, %d, %v", in, ma, mi, err)
		}
	}
	if _, _, err := parseRelease("garbage"); err == nil {
		t.Error("parseRelease(garbage) accepted it")
	}
}

func TestReadSpecRejectsNonBPF(t *testing.T) {
	elfHeader := fixture.FixtureObject()[:64]
	for _, c := range []struct {
		data []byte
		want string
	}{
		{[]byte("#!/bin/sh\n"), `not an ELF file (it starts with "#!/b"`},
		{elfHeader, "corrupt or truncated ELF"},
		{bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 4), "corrupt or truncated ELF"},
	} {
		if _, err := readSpec(c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("readSpec(%q...) = %v, want %q", c.data[:4], err, c.want)
		}
	}
}

// "load NAME" with no such file loads the built-in object NAME.
func TestLoadBuiltin(t *testing.T) {
	root := privatePinDir(t)
	state := t.TempDir()
	builtinMu.Lock()
	builtins["testbuiltin"] = fixture.FixtureObject()
	builtinMu.Unlock()
	t.Cleanup(func() {
		builtinMu.Lock()
		delete(builtins, "testbuiltin")
		builtinMu.Unlock()
	})
	t.Chdir(t.TempDir()) // so that no file named testbuiltin is found

	l, err := LoadFile("testbuiltin", LoadOptions{PinRoot: root, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "testbuiltin" || l.Source != "builtin testbuiltin" || len(l.Objects) != 10 || l.Dir != filepath.Join(root, "testbuiltin") {
		t.Errorf("loaded %+v", l)
	}
	u, err := Unload(state, root, "testbuiltin")
	if err != nil || len(u.Removed) != 10 || !u.DirGone {
		t.Errorf("unload: %+v, %v", u, err)
	}

	_, err = LoadFile("nosuchthing", LoadOptions{PinRoot: root, StateDir: state})
	if err == nil || err.Error() != "load nosuchthing: no such file; check the path or load a built-in object: testbuiltin" {
		t.Errorf("missing file: %v", err)
	}
}
