// SPDX-License-Identifier: Apache-2.0

package commands_test

//go:generate clang -target bpf -O2 -g -fdebug-compilation-dir=. -c testdata/oddsection.bpf.c -o testdata/oddsection.o
//go:generate sh -c "cd testdata/lab/01-sample && clang -O2 -g -Wall -target bpf -fdebug-compilation-dir=. -I../../../../bpf/include -c sample.bpf.c -o sample.o"
//go:generate clang -target bpf -O2 -g -fdebug-compilation-dir=. -I../bpf/include -c testdata/pinbyname.bpf.c -o testdata/pinbyname.o
//go:generate clang -target bpf -O2 -g -fdebug-compilation-dir=. -I../bpf/include -DREJECT -c testdata/pinbyname.bpf.c -o testdata/pinbyname_reject.o

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// fixtureProgs and fixtureMaps are what the fixture object holds, by the
// names load pins them as (".rodata", the printk strings, becomes "rodata").
var (
	fixtureProgs = []string{"sock_count", "tc_count", "xdp_count"}
	fixtureMaps  = []string{"counters", "events", "flows", "jobs", "percpu", "rodata", "undo"}
)

// ldSetup gives the test a pin root and its own state directory (where
// load keeps its manifests).
func ldSetup(t *testing.T) string {
	t.Helper()
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	return root
}

// ldEntries lists the names in dir, nil when it does not exist.
func ldEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// ldPinnedID opens the pin at path as kind and returns its kernel id.
func ldPinnedID(t *testing.T, kind, path string) uint32 {
	t.Helper()
	if kind == bpf.KindProgram {
		p, err := ebpf.LoadPinnedProgram(path, nil)
		if err != nil {
			t.Fatalf("open pinned program %s: %v", path, err)
		}
		defer p.Close()
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		return uint32(id)
	}
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		t.Fatalf("open pinned map %s: %v", path, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return uint32(id)
}

// ldLoadFixture loads the fixture as name and returns what load reported.
func ldLoadFixture(t *testing.T, root, name string) []bpf.Pinned {
	t.Helper()
	code, out, errOut := bpfsh(t, root, "-j", "load", bpftest.FixtureObject(t), "name", name)
	if code != 0 {
		t.Fatalf("load: exit %d: %s%s", code, errOut, out)
	}
	var objs []bpf.Pinned
	if err := json.Unmarshal([]byte(out), &objs); err != nil {
		t.Fatalf("load -j printed %q: %v", out, err)
	}
	return objs
}

func TestLoadPinsEveryMapAndProgram(t *testing.T) {
	root := ldSetup(t)
	objs := ldLoadFixture(t, root, "fx")
	dir := filepath.Join(root, "fx")

	want := append(slices.Clone(fixtureProgs), fixtureMaps...)
	slices.Sort(want)
	if got := ldEntries(t, dir); !slices.Equal(got, want) {
		t.Fatalf("pinned under %s: %v, want %v", dir, got, want)
	}
	if len(objs) != len(want) {
		t.Fatalf("load reported %d objects, want %d: %+v", len(objs), len(want), objs)
	}
	types := map[string]string{"xdp_count": "xdp", "tc_count": "sched_cls", "sock_count": "socket_filter",
		"flows": "hash", "counters": "array", "percpu": "percpu_hash", "jobs": "queue", "undo": "stack",
		"events": "ringbuf", "rodata": "array"}
	for _, o := range objs {
		wantKind := bpf.KindMap
		if slices.Contains(fixtureProgs, o.Name) {
			wantKind = bpf.KindProgram
		}
		if o.Kind != wantKind || o.Type != types[o.Name] || o.Path != filepath.Join(dir, o.Name) {
			t.Errorf("reported %+v, want kind %s type %s path %s", o, wantKind, types[o.Name], filepath.Join(dir, o.Name))
		}
		if _, err := os.Stat(o.Path); err != nil {
			t.Errorf("stat %s: %v", o.Path, err)
		}
		if id := ldPinnedID(t, o.Kind, o.Path); id != o.ID {
			t.Errorf("%s is pinned with id %d, load reported %d", o.Path, id, o.ID)
		}
	}

	// The text form lists the same objects under the columns.
	code, out, _ := bpfsh(t, root, "load", bpftest.FixtureObject(t), "name", "fx2")
	if code != 0 || !strings.HasPrefix(out, "KIND") || !strings.Contains(out, filepath.Join(root, "fx2", "xdp_count")) {
		t.Errorf("text output (exit %d):\n%s", code, out)
	}
}

func TestLoadDefaultName(t *testing.T) {
	root := ldSetup(t)
	obj := bpftest.FixtureObject(t) // .../fixture.o
	renamed := filepath.Join(t.TempDir(), "my.fixture_bpfel.o")
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(renamed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{obj, renamed} {
		if code, _, errOut := bpfsh(t, root, "load", file); code != 0 {
			t.Fatalf("load %s: exit %d: %s", file, code, errOut)
		}
	}
	if got := ldEntries(t, root); !slices.Equal(got, []string{"fixture", "my_fixture"}) {
		t.Errorf("pin root holds %v, want [fixture my_fixture]", got)
	}
}

func TestLoadRejectedLeavesNothing(t *testing.T) {
	root := ldSetup(t)
	state := os.Getenv("XDG_STATE_HOME")
	code, _, errOut := bpfsh(t, root, "load", bpftest.RejectObject(t))
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	first, rest, _ := strings.Cut(errOut, "\n")
	for _, want := range []string{"error: load ", "verifier rejected program xdp_unchecked", "section xdp", "R0 invalid mem access 'map_value_or_null'"} {
		if !strings.Contains(first, want) {
			t.Errorf("first line %q lacks %q", first, want)
		}
	}
	// The log's tail follows, ending at the verifier's reason and summary.
	if !strings.HasPrefix(rest, "verifier log") || !strings.Contains(rest, "call bpf_map_lookup_elem") || !strings.Contains(rest, "processed ") {
		t.Errorf("no verifier log under the error line:\n%s", rest)
	}
	if got := ldEntries(t, root); len(got) != 0 {
		t.Errorf("pin root holds %v after a rejected load", got)
	}
	if got := ldEntries(t, filepath.Join(state, "bpfsh", "pins")); len(got) != 0 {
		t.Errorf("a manifest was written for a rejected load: %v", got)
	}

	// JSON: the one line as "error", the log as "detail".
	code, out, _ := bpfsh(t, root, "-j", "load", bpftest.RejectObject(t), "--verbose")
	var obj struct{ Error, Detail string }
	if err := json.Unmarshal([]byte(out), &obj); err != nil || code != 1 {
		t.Fatalf("load -j: exit %d, %q: %v", code, out, err)
	}
	if !strings.Contains(obj.Error, "xdp_unchecked") || !strings.Contains(obj.Detail, "R0 invalid mem access") {
		t.Errorf("JSON error %+v", obj)
	}
}

// A rejection names the program and says how to load the others; 'only'
// loads just the named programs (and every map), and unload removes them.
func TestLoadOnly(t *testing.T) {
	root := ldSetup(t)
	reject := bpftest.RejectObject(t)
	code, _, errOut := bpfsh(t, root, "load", reject)
	if code != 1 || !strings.Contains(errOut, "to load the other programs without it: load "+reject+" only xdp_fine") {
		t.Errorf("rejected load: exit %d, stderr %q; want the hint to load the others with 'only'", code, errOut)
	}
	code, out, errOut := bpfsh(t, root, "load", reject, "only", "xdp_fine")
	if code != 0 {
		t.Fatalf("load only xdp_fine: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "xdp_unchecked") || !strings.Contains(out, "not loaded (only)") {
		t.Errorf("load only: the program left out is not shown:\n%s", out)
	}
	if got := ldEntries(t, filepath.Join(root, "reject")); !slices.Equal(got, []string{"seen", "xdp_fine"}) {
		t.Errorf("pinned %v, want [seen xdp_fine]", got)
	}
	if code, _, errOut := bpfsh(t, root, "unload", "reject"); code != 0 {
		t.Fatalf("unload: exit %d: %s", code, errOut)
	}
	if code, _, errOut := bpfsh(t, root, "load", reject, "only", "nosuch"); code != 1 || !strings.Contains(errOut, `the object has no program "nosuch"; its programs: xdp_fine, xdp_unchecked`) {
		t.Errorf("only nosuch: exit %d, %q", code, errOut)
	}
	if code, _, errOut := bpfsh(t, root, "load", reject, "only", "xdp_fine,,x"); code != 2 || !strings.Contains(errOut, "empty program name") {
		t.Errorf("only with an empty name: exit %d, %q", code, errOut)
	}
	if got := ldEntries(t, root); len(got) != 0 {
		t.Errorf("pin root holds %v after failed loads", got)
	}
}

func TestLoadRejectedUnderFreshPinRoot(t *testing.T) {
	// The pin root itself does not exist yet: a failed load must not
	// leave it (or NAME/) behind; a successful one makes both.
	root := filepath.Join(ldSetup(t), "a", "b")
	if code, _, _ := bpfsh(t, root, "load", bpftest.RejectObject(t)); code != 1 {
		t.Fatalf("rejected load exited %d", code)
	}
	if _, err := os.Stat(filepath.Dir(root)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a rejected load left %s behind (stat: %v)", filepath.Dir(root), err)
	}
	if code, _, errOut := bpfsh(t, root, "load", bpftest.FixtureObject(t)); code != 0 {
		t.Fatalf("load under a new pin root: exit %d: %s", code, errOut)
	}
	if got := ldEntries(t, filepath.Join(root, "fixture")); len(got) != 10 {
		t.Errorf("pinned %v", got)
	}
}

func TestLoadBadFiles(t *testing.T) {
	root := ldSetup(t)
	tmp := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fixture, err := os.ReadFile(bpftest.FixtureObject(t))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable() // an ELF, but for this machine's CPU
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(i*7919 + i/13)
	}
	cases := []struct {
		file, want string
	}{
		{write("random.o", random), "not an ELF file"},
		{write("empty.o", nil), "not an ELF file"},
		{write("truncated.o", fixture[:len(fixture)/3]), "corrupt or truncated ELF"},
		{self, "not for BPF; compile it with clang -target bpf"},
		{filepath.Join(tmp, "missing.o"), "no such file"},
		{tmp, "is a directory"},
		{"testdata/oddsection.o", `program odd_prog is in section "bpfsh_no_such_type", which names no program type`},
	}
	for _, c := range cases {
		code, out, errOut := bpfsh(t, root, "load", c.file, "name", "bad")
		if code != 1 || out != "" {
			t.Errorf("load %s: exit %d, stdout %q; want exit 1 and nothing printed", c.file, code, out)
		}
		if !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "error: load ") {
			t.Errorf("load %s: stderr %q, want one line with %q", c.file, errOut, c.want)
		}
		if got := ldEntries(t, root); len(got) != 0 {
			t.Fatalf("load %s left %v in the pin root", c.file, got)
		}
	}
}

func TestLoadBadArguments(t *testing.T) {
	root := ldSetup(t)
	obj := bpftest.FixtureObject(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"load"}, 2, "load needs an ELF object file"},
		{[]string{"load", obj, "name"}, 2, "name needs a NAME"},
		{[]string{"load", obj, "extra"}, 2, `unexpected "extra"`},
		{[]string{"load", obj, "name", "a.b"}, 2, "no dots or slashes"},
		{[]string{"load", obj, "name", "../x"}, 2, "no dots or slashes"},
		{[]string{"unload", "../.."}, 2, "no dots or slashes"},
		{[]string{"unload"}, 2, "unload takes one NAME"},
		{[]string{"unload", "a/b"}, 2, "no dots or slashes"},
	} {
		code, _, errOut := bpfsh(t, root, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
	if got := ldEntries(t, root); len(got) != 0 {
		t.Errorf("pin root holds %v", got)
	}
}

func TestLoadTwiceRefused(t *testing.T) {
	root := ldSetup(t)
	first := ldLoadFixture(t, root, "twice")
	code, _, errOut := bpfsh(t, root, "load", bpftest.FixtureObject(t), "name", "twice")
	if code != 1 || !strings.Contains(errOut, "twice is already loaded; 'unload twice' first or pick another name") {
		t.Fatalf("second load: exit %d, %q", code, errOut)
	}
	// The first load's pins are untouched.
	for _, o := range first {
		if id := ldPinnedID(t, o.Kind, o.Path); id != o.ID {
			t.Errorf("%s now holds id %d, was %d", o.Path, id, o.ID)
		}
	}
	// A file pinned where NAME/ would go is refused too.
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(filepath.Join(root, "taken")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = bpfsh(t, root, "load", bpftest.FixtureObject(t), "name", "taken")
	if code != 1 || !strings.Contains(errOut, "already holds a pinned object") {
		t.Errorf("load over a pinned file: exit %d, %q", code, errOut)
	}
}

func TestUnloadRemovesOnlyWhatLoadPinned(t *testing.T) {
	root := ldSetup(t)
	objs := ldLoadFixture(t, root, "mine")
	dir := filepath.Join(root, "mine")

	// Pin an object of the test's own into the same directory, and
	// replace one of load's pins with another object.
	newMap := func() *ebpf.Map {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	extra, swapped := newMap(), newMap()
	if err := extra.Pin(filepath.Join(dir, "extra")); err != nil {
		t.Fatal(err)
	}
	countersPath := filepath.Join(dir, "counters")
	if err := os.Remove(countersPath); err != nil {
		t.Fatal(err)
	}
	if err := swapped.Pin(countersPath); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := bpfsh(t, root, "unload", "mine")
	if code != 0 {
		t.Fatalf("unload: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"unloaded mine: removed 9 pins", "kept 1 pin now holding another object: " + countersPath,
		"left 1 object bpfsh did not pin: " + filepath.Join(dir, "extra")} {
		if !strings.Contains(out, want) {
			t.Errorf("unload said %q, want %q in it", out, want)
		}
	}
	if got := ldEntries(t, dir); !slices.Equal(got, []string{"counters", "extra"}) {
		t.Errorf("after unload %s holds %v, want [counters extra]", dir, got)
	}
	for _, o := range objs {
		if o.Name != "counters" {
			if _, err := os.Lstat(o.Path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still pinned (stat: %v)", o.Path, err)
			}
		}
	}
	for path, m := range map[string]*ebpf.Map{filepath.Join(dir, "extra"): extra, countersPath: swapped} {
		info, _ := m.Info()
		want, _ := info.ID()
		if got := ldPinnedID(t, bpf.KindMap, path); got != uint32(want) {
			t.Errorf("%s holds id %d, want the test's map %d", path, got, want)
		}
	}

	// The record is gone: a second unload removes nothing and says why.
	code, _, errOut = bpfsh(t, root, "unload", "mine")
	if code != 1 || !strings.Contains(errOut, "bpfsh did not load "+dir) {
		t.Errorf("second unload: exit %d, %q", code, errOut)
	}
}

func TestUnloadRemovesDirectory(t *testing.T) {
	root := ldSetup(t)
	ldLoadFixture(t, root, "whole")
	code, out, errOut := bpfsh(t, root, "-j", "unload", "whole")
	if code != 0 {
		t.Fatalf("unload: exit %d: %s", code, errOut)
	}
	var u bpf.Unloaded
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatalf("unload -j printed %q: %v", out, err)
	}
	if len(u.Removed) != 10 || !u.DirGone || len(u.Left) != 0 || len(u.Changed) != 0 {
		t.Errorf("unload reported %+v", u)
	}
	// The last NAME gone, the empty pin root goes too (issue 13 item 18).
	if u.RootGone != root {
		t.Errorf("unload did not report the pin root removed: %+v", u)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the empty pin root %s is left after the last unload (stat: %v)", root, err)
	}
	// The name is free again, and load makes the pin root anew.
	ldLoadFixture(t, root, "whole")
	// A pin root still holding something else stays.
	ldLoadFixture(t, root, "other")
	if code, out, errOut := bpfsh(t, root, "unload", "whole"); code != 0 || strings.Contains(out, "pin root") {
		t.Errorf("unload with another NAME loaded: exit %d, %q %q", code, out, errOut)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("the pin root went while it held %s/other: %v", root, err)
	}
}

func TestUnloadNeverLoaded(t *testing.T) {
	root := ldSetup(t)
	code, _, errOut := bpfsh(t, root, "unload", "nothing_here")
	if code != 1 || !strings.Contains(errOut, "nothing is loaded as nothing_here under "+root) {
		t.Errorf("exit %d, %q", code, errOut)
	}
}

func TestDoctorAllOK(t *testing.T) {
	bpftest.RequireRoot(t)
	code, out, errOut := bpfsh(t, bpf.BPFFSPath, "-j", "doctor")
	if code != 0 {
		t.Fatalf("doctor: exit %d: %s", code, errOut)
	}
	var checks []bpf.Check
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("doctor -j printed %q: %v", out, err)
	}
	var names []string
	for _, c := range checks {
		names = append(names, c.Check)
		if c.Check == "bpftool" && c.Status == bpf.StatusWarn && bpftest.InGuest() {
			continue // the kernel matrix's guests carry no bpftool; doctor only warns
		}
		if c.Status != bpf.StatusOK || c.Detail == "" {
			t.Errorf("check %+v, want ok with a detail on this machine", c)
		}
	}
	want := []string{"kernel", "btf", "bpffs", "tracefs", "privileges", "jit", "unprivileged bpf", "memlock", "test_run", "bpftool",
		"object cache", "object cache --redis", "object fixture", "object kv", "object proxy"}
	if !slices.Equal(names, want) {
		t.Errorf("checks %v, want %v", names, want)
	}
	_, text, _ := bpfsh(t, bpf.BPFFSPath, "doctor")
	if !strings.HasPrefix(text, "CHECK") || !strings.Contains(text, "test_run") {
		t.Errorf("doctor text:\n%s", text)
	}
}

// A map marked LIBBPF_PIN_BY_NAME is pinned in NAME/ like the rest, and a
// rejected program leaves it unpinned too.
func TestLoadPinByName(t *testing.T) {
	root := ldSetup(t)
	code, out, errOut := bpfsh(t, root, "load", "testdata/pinbyname.o")
	if code != 0 {
		t.Fatalf("load: exit %d: %s", code, errOut)
	}
	if got := ldEntries(t, filepath.Join(root, "pinbyname")); !slices.Equal(got, []string{"shared", "xdp_shared"}) {
		t.Errorf("pinned %v, want [shared xdp_shared]; load said:\n%s", got, out)
	}
	code, _, errOut = bpfsh(t, root, "load", "testdata/pinbyname_reject.o", "name", "rej")
	if code != 1 || !strings.Contains(errOut, "rejected program xdp_shared") {
		t.Errorf("rejected load: exit %d, %q", code, errOut)
	}
	if got := ldEntries(t, root); !slices.Equal(got, []string{"pinbyname"}) {
		t.Errorf("pin root holds %v after the rejected load, want [pinbyname]", got)
	}
}

func TestLoadPinRootNotOnBPFFS(t *testing.T) {
	ldSetup(t)
	root := t.TempDir()
	code, _, errOut := bpfsh(t, root, "load", bpftest.FixtureObject(t))
	if code != 1 || !strings.Contains(errOut, "pin root "+root+" is not on a bpffs; give a --pin-root under /sys/fs/bpf") {
		t.Errorf("exit %d, %q", code, errOut)
	}
	if got := ldEntries(t, root); len(got) != 0 {
		t.Errorf("%s holds %v", root, got)
	}
}

// cilium/ebpf's testdata holds objects this kernel refuses with EPERM even
// to root; bpfsh then says what else gives EPERM instead of "run as root"
// (issue 13 item 18).
func TestLoadEPERMAsRoot(t *testing.T) {
	root := ldSetup(t)
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cilium/ebpf").Output()
	if err != nil {
		t.Skipf("skipped: cannot find cilium/ebpf's module directory: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "testdata")
	tried := 0
	for _, f := range []string{"arena-el.elf", "kfunc-el.elf"} {
		path := filepath.Join(dir, f)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		code, _, errOut := bpfsh(t, root, "load", path, "name", "eperm")
		if code == 0 {
			bpfsh(t, root, "unload", "eperm")
			continue // this kernel takes it
		}
		if !strings.Contains(errOut, "permission denied") {
			continue // refused for another reason here
		}
		tried++
		if strings.Contains(errOut, "run bpfsh as root") || !strings.Contains(errOut, "although bpfsh runs as root") || !strings.Contains(errOut, "what gives EPERM here:") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s: exit %d, %q", f, code, errOut)
		}
		if f == "kfunc-el.elf" && !strings.Contains(errOut, "bpf_fentry_test2") {
			t.Errorf("%s: the attach target is not named: %q", f, errOut)
		}
	}
	if tried == 0 {
		t.Skip("skipped: this kernel gives no EPERM for cilium/ebpf's arena and kfunc objects")
	}
}
