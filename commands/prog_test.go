// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// pgProgJSON is "prog show -j" as bpftool names its fields.
type pgProgJSON struct {
	ID            uint32   `json:"id"`
	Type          string   `json:"type"`
	Name          string   `json:"name"`
	Tag           string   `json:"tag"`
	GPLCompatible *bool    `json:"gpl_compatible"`
	LoadedAt      int64    `json:"loaded_at"`
	UID           *uint32  `json:"uid"`
	BytesXlated   uint32   `json:"bytes_xlated"`
	Jited         *bool    `json:"jited"`
	BytesJited    uint32   `json:"bytes_jited"`
	BytesMemlock  uint64   `json:"bytes_memlock"`
	MapIDs        []uint32 `json:"map_ids"`
	BTFID         uint32   `json:"btf_id"`
}

func TestProgListShowsFixture(t *testing.T) {
	root, objs := pgFixture(t)
	xdp, tc, sock := pgProgID(t, objs.XdpCount), pgProgID(t, objs.TcCount), pgProgID(t, objs.SockCount)

	out := bpfshOK(t, root, "prog list")
	for _, want := range []struct {
		id        uint32
		typ, name string
	}{{xdp, "xdp", "xdp_count"}, {tc, "sched_cls", "tc_count"}, {sock, "socket_filter", "sock_count"}} {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+%s\s+%s\s+[0-9a-f]{16}\s`, want.id, want.typ, want.name))
		if !re.MatchString(out) {
			t.Errorf("prog list has no row for %d %s %s:\n%s", want.id, want.typ, want.name, out)
		}
	}
	if !strings.Contains(strings.SplitN(out, "\n", 2)[0], "TAG") {
		t.Errorf("prog list has no header: %q", strings.SplitN(out, "\n", 2)[0])
	}

	// "prog show" without REF is the same list; -j gives bpftool's objects.
	for _, line := range []string{"prog list", "prog show"} {
		progs := decodeJSON[[]pgProgJSON](t, bpfshOK(t, root, line, "-j"))
		i := slices.IndexFunc(progs, func(p pgProgJSON) bool { return p.ID == tc })
		if i < 0 {
			t.Fatalf("%s -j does not list program %d", line, tc)
		}
		if p := progs[i]; p.Name != "tc_count" || p.Type != "sched_cls" || len(p.Tag) != 16 || p.BytesXlated == 0 {
			t.Errorf("%s -j: %+v", line, p)
		}
	}
}

func TestProgShowEveryRefForm(t *testing.T) {
	root, objs := pgFixture(t)
	id := pgProgID(t, objs.XdpCount)
	info, err := objs.XdpCount.Info()
	if err != nil {
		t.Fatal(err)
	}
	counters := pgMapID(t, objs.Counters)

	refs := []string{
		fmt.Sprintf("id %d", id),
		"pinned " + filepath.Join(root, "xdp_count"),
		filepath.Join(root, "xdp_count"),
	}
	for _, ref := range refs {
		p := decodeJSON[pgProgJSON](t, bpfshOK(t, root, "prog show "+ref, "-j"))
		if p.ID != id || p.Name != "xdp_count" || p.Type != "xdp" || p.Tag != info.Tag {
			t.Errorf("prog show %s: %+v", ref, p)
		}
	}

	// A tag names every copy of the same code: a list when there are several.
	_, out, _ := bpfsh(t, root, "-j", "-c", "prog show tag "+info.Tag)
	var byTag []pgProgJSON
	if strings.HasPrefix(out, "[") {
		byTag = decodeJSON[[]pgProgJSON](t, out)
	} else {
		byTag = []pgProgJSON{decodeJSON[pgProgJSON](t, out)}
	}
	if !slices.ContainsFunc(byTag, func(p pgProgJSON) bool { return p.ID == id && p.Tag == info.Tag }) {
		t.Errorf("prog show tag %s does not show program %d: %s", info.Tag, id, out)
	}

	// The short form NAME/OBJ is <pin-root>/NAME/OBJ.
	parent := filepath.Dir(root)
	p := decodeJSON[pgProgJSON](t, bpfshOK(t, parent, "prog show "+filepath.Base(root)+"/xdp_count", "-j"))
	if p.ID != id {
		t.Errorf("prog show NAME/OBJ: id %d, want %d", p.ID, id)
	}

	if p.GPLCompatible == nil || !*p.GPLCompatible || p.UID == nil || *p.UID != 0 || p.LoadedAt == 0 ||
		p.Jited == nil || !*p.Jited || p.BytesJited == 0 || p.BytesMemlock == 0 || p.BTFID == 0 ||
		!slices.Contains(p.MapIDs, counters) {
		t.Errorf("prog show -j lacks bpftool's fields: %+v", p)
	}

	out = bpfshOK(t, root, fmt.Sprintf("prog show id %d", id))
	for _, want := range []string{
		"id:", "xdp_count", info.Tag, "gpl:", "yes", "loaded_at:", "xlated:", "jited:", "memlock:",
		fmt.Sprintf("%d (counters)", counters), "btf_id:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prog show lacks %q:\n%s", want, out)
		}
	}
}

func TestProgShowNameMatchingSeveral(t *testing.T) {
	root, objs := pgFixture(t)
	other := bpftest.PinRoot(t)
	objs2 := bpftest.Fixture(t, other)
	ids := []uint32{pgProgID(t, objs.SockCount), pgProgID(t, objs2.SockCount)}

	list := decodeJSON[[]pgProgJSON](t, bpfshOK(t, root, "prog show name sock_count", "-j"))
	var got []uint32
	for _, p := range list {
		if p.Name != "sock_count" {
			t.Errorf("name sock_count matched %q", p.Name)
		}
		got = append(got, p.ID)
	}
	for _, id := range ids {
		if !slices.Contains(got, id) {
			t.Errorf("prog show name sock_count: ids %v lack %d", got, id)
		}
	}
	// Text shows one record per program, separated by blank lines.
	if out := bpfshOK(t, root, "prog show name sock_count"); strings.Count(out, "name:") < 2 {
		t.Errorf("prog show name matching several shows:\n%s", out)
	}
}

func TestProgShowErrors(t *testing.T) {
	root, _ := pgFixture(t)
	bpfshFails(t, root, "prog show id 4000000000", 1, "no such object", "prog list")
	bpfshFails(t, root, "prog show tag 0123456789abcdef", 1, "no program with tag 0123456789abcdef")
	bpfshFails(t, root, "prog show name no_such_prog_xyz", 1, "no program with name no_such_prog_xyz")
	bpfshFails(t, root, "prog show "+filepath.Join(root, "counters"), 1, "is a pinned map, not a program")
	bpfshFails(t, root, "prog show "+filepath.Join(root, "nothing"), 1, "nothing is pinned at")
	bpfshFails(t, root, "prog show frobnicate", 2, "not an object")
	bpfshFails(t, root, "prog show id twelve", 2, "not a number")
	bpfshFails(t, root, "prog show tag 12", 2, "not 8 bytes of hex")
	bpfshFails(t, root, "prog show id 1 extra", 2, "unexpected \"extra\"")
	bpfshFails(t, root, "prog list extra", 2, "takes no arguments")
	bpfshFails(t, root, "prog", 2, "needs a sub-command")
	bpfshFails(t, root, "prog frob", 2, "unknown prog sub-command")

	// JSON mode reports the error as bpftool does.
	code, out, _ := bpfsh(t, root, "-j", "-c", "prog show tag 0123456789abcdef")
	if e := decodeJSON[map[string]string](t, out); code != 1 || !strings.Contains(e["error"], "no program with tag") {
		t.Errorf("-j error: exit %d, %q", code, out)
	}
}

// pgSourceLine is the 1-based number of the line of fixture.bpf.c that
// contains text.
func pgSourceLine(t *testing.T, text string) int {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "bpf", "fixture", "fixture.bpf.c"))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(src), "\n") {
		if strings.Contains(line, text) {
			return i + 1
		}
	}
	t.Fatalf("fixture.bpf.c has no line with %q", text)
	return 0
}

func TestProgDumpHasSourceLines(t *testing.T) {
	root, objs := pgFixture(t)
	id := pgProgID(t, objs.XdpCount)
	const printk = `bpf_printk("xdp_count len=%llu", len);`
	lineNo := pgSourceLine(t, printk)

	out := bpfshOK(t, root, "prog dump "+filepath.Join(root, "xdp_count"))
	for _, want := range []string{
		"int xdp_count(struct xdp_md * ctx):",
		fmt.Sprintf("; %s [file:", printk),
		fmt.Sprintf("fixture.bpf.c line_num:%d line_col:", lineNo),
		fmt.Sprintf("map[id:%d]  // counters", pgMapID(t, objs.Counters)),
		"call bpf_trace_printk#",
		"(95) exit",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prog dump lacks %q:\n%s", want, out)
		}
	}
	// The source line comes right before the first instruction it made.
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, printk) {
			if i+1 >= len(lines) || !regexp.MustCompile(`^\s+\d+: \(`).MatchString(lines[i+1]) {
				t.Errorf("source line not followed by an instruction: %q", lines[min(i+1, len(lines)-1)])
			}
		}
	}

	// bpftool's words are accepted, and the dump is bpftool's line for line
	// (bpfsh adds the map's name after "// ").
	again := bpfshOK(t, root, fmt.Sprintf("prog dump xlated id %d linum", id))
	if again != out {
		t.Errorf("prog dump xlated id N linum differs from prog dump PATH")
	}
	pgNeedBpftool(t)
	want := pgBpftoolRun(t, "prog", "dump", "xlated", "id", fmt.Sprint(id), "linum")
	got := regexp.MustCompile(`  // \S+\n`).ReplaceAllString(out, "\n")
	if got != want {
		t.Errorf("prog dump differs from bpftool prog dump xlated linum:\n--- bpfsh\n%s\n--- bpftool\n%s", got, want)
	}
}

// pgInsnJSON is one instruction of "prog dump -j".
type pgInsnJSON struct {
	Insn  int    `json:"insn"`
	Text  string `json:"text"`
	Proto string `json:"proto"`
	Line  *struct {
		File string `json:"file"`
		Line int    `json:"line"`
		Col  int    `json:"col"`
		Src  string `json:"src"`
	} `json:"line"`
	Map *struct {
		ID   uint32 `json:"id"`
		Name string `json:"name"`
	} `json:"map"`
	Opcodes string `json:"opcodes"`
}

func TestProgDumpJSON(t *testing.T) {
	root, objs := pgFixture(t)
	const printk = `bpf_printk("xdp_count len=%llu", len);`
	lineNo := pgSourceLine(t, printk)
	insns := decodeJSON[[]pgInsnJSON](t, bpfshOK(t, root, "prog dump "+filepath.Join(root, "xdp_count")+" opcodes", "-j"))
	if len(insns) == 0 || insns[0].Insn != 0 || insns[0].Proto != "int xdp_count(struct xdp_md * ctx)" {
		t.Fatalf("prog dump -j starts with %+v", insns[:min(1, len(insns))])
	}
	var sawLine, sawMap bool
	last := -1
	for _, in := range insns {
		if in.Insn <= last {
			t.Errorf("insn %d after %d", in.Insn, last)
		}
		last = in.Insn
		if in.Text == "" || in.Opcodes == "" {
			t.Errorf("insn %d lacks text or opcodes: %+v", in.Insn, in)
		}
		if l := in.Line; l != nil && l.Src == printk {
			sawLine = l.Line == lineNo && strings.HasSuffix(l.File, "fixture.bpf.c") && l.Col > 0
		}
		if m := in.Map; m != nil && m.Name == "counters" && m.ID == pgMapID(t, objs.Counters) {
			sawMap = true
		}
	}
	if !sawLine {
		t.Errorf("prog dump -j has no line {file: fixture.bpf.c, line: %d, src: %s}", lineNo, printk)
	}
	if !sawMap {
		t.Errorf("prog dump -j names no map counters")
	}
}

// pgJitedJSON is one function of "prog dump jited -j".
type pgJitedJSON struct {
	Name  string `json:"name"`
	Proto string `json:"proto"`
	Arch  string `json:"arch"`
	Insns []struct {
		PC      string `json:"pc"`
		Text    string `json:"text"`
		Opcodes string `json:"opcodes"`
		Line    *struct {
			Line int    `json:"line"`
			Src  string `json:"src"`
		} `json:"line"`
	} `json:"insns"`
}

func TestProgDumpJited(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("skipped: bpfsh disassembles amd64 and arm64 only, not %s", runtime.GOARCH)
	}
	if b, err := os.ReadFile("/proc/sys/net/core/bpf_jit_enable"); err == nil && strings.TrimSpace(string(b)) == "0" {
		t.Skip("skipped: the JIT is off (net.core.bpf_jit_enable=0)")
	}
	root, objs := pgFixture(t)
	id := pgProgID(t, objs.XdpCount)
	const printk = `bpf_printk("xdp_count len=%llu", len);`
	lineNo := pgSourceLine(t, printk)
	info, _ := objs.XdpCount.Info()

	out := bpfshOK(t, root, "prog dump jited "+filepath.Join(root, "xdp_count")+" linum")
	for _, want := range []string{
		"int xdp_count(struct xdp_md * ctx):",
		"bpf_prog_" + info.Tag + "_xdp_count:",
		fmt.Sprintf("; %s [file:", printk),
		fmt.Sprintf("line_num:%d line_col:", lineNo),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prog dump jited lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+0:\t\S`).MatchString(out) {
		t.Errorf("prog dump jited has no instruction at offset 0:\n%s", out)
	}
	if runtime.GOARCH == "amd64" && !strings.Contains(out, "bpf_trace_printk") {
		t.Errorf("the call to bpf_trace_printk is not named:\n%s", out)
	}
	if again := bpfshOK(t, root, fmt.Sprintf("prog dump jited id %d", id)); again != out {
		t.Errorf("prog dump jited id N differs from prog dump jited PATH linum")
	}

	funcs := decodeJSON[[]pgJitedJSON](t, bpfshOK(t, root, fmt.Sprintf("prog dump jited id %d opcodes", id), "-j"))
	if len(funcs) != 1 || funcs[0].Arch != runtime.GOARCH || funcs[0].Proto != "int xdp_count(struct xdp_md * ctx)" || len(funcs[0].Insns) == 0 {
		t.Fatalf("prog dump jited -j: %+v", funcs)
	}
	sawLine := false
	for _, in := range funcs[0].Insns {
		if in.Text == "" || in.Opcodes == "" || !strings.HasPrefix(in.PC, "0x") {
			t.Errorf("instruction lacks pc, text or opcodes: %+v", in)
		}
		if in.Line != nil && in.Line.Src == printk && in.Line.Line == lineNo {
			sawLine = true
		}
	}
	if !sawLine {
		t.Errorf("prog dump jited -j has no line %d %s", lineNo, printk)
	}
}

// A bpftool command that bpfsh suggests works when typed (issue 13 item
// 9): the short form NAME/OBJ becomes "pinned PATH".
func TestProgDumpSuggestsWorkingBpftool(t *testing.T) {
	root, _ := pgFixture(t)
	if err := os.Mkdir(filepath.Join(root, "hx"), 0o755); err != nil {
		t.Fatal(err)
	}
	bpfshOK(t, root, "prog pin "+filepath.Join(root, "xdp_count")+" hx/hx_pong")
	errb := bpfshFails(t, root, "prog dump hx/hx_pong visual", 2, "bpftool prog dump xlated pinned "+filepath.Join(root, "hx", "hx_pong")+" visual")
	pgNeedBpftool(t)
	_, cmd, ok := strings.Cut(strings.TrimSpace(errb), "use bpftool ")
	if !ok {
		t.Fatalf("no bpftool command in %q", errb)
	}
	cmd, _, _ = strings.Cut(cmd, " (")
	pgBpftoolRun(t, strings.Fields(cmd)...)
}

func TestProgDumpErrors(t *testing.T) {
	root, _ := pgFixture(t)
	bpfshFails(t, root, "prog dump", 2, "needs a program")
	bpfshFails(t, root, "prog dump xlated", 2, "needs a program")
	bpfshFails(t, root, "prog dump jited", 2, "needs a program")
	bpfshFails(t, root, "prog dump "+filepath.Join(root, "xdp_count")+" visual", 2, "bpftool prog dump xlated pinned "+filepath.Join(root, "xdp_count")+" visual")
	bpfshFails(t, root, "prog dump "+filepath.Join(root, "xdp_count")+" sideways", 2, "unexpected \"sideways\"")
	bpfshFails(t, root, "prog dump "+filepath.Join(root, "flows"), 1, "is a pinned map, not a program")
	bpfshFails(t, root, "prog dump tag ffffffffffffffff", 1, "no program with tag")
}

func TestProgPin(t *testing.T) {
	root, objs := pgFixture(t)
	id := pgProgID(t, objs.TcCount)
	info, _ := objs.TcCount.Info()

	path := filepath.Join(root, "mine", "deeper", "tc")
	out := bpfshOK(t, root, fmt.Sprintf("prog pin %d %s", id, path))
	if !strings.Contains(out, fmt.Sprintf("pinned program %d (tc_count) at %s", id, path)) {
		t.Errorf("prog pin says %q", out)
	}
	// Read back by bpfsh and by bpftool: the same program.
	p := decodeJSON[pgProgJSON](t, bpfshOK(t, root, "prog show "+path, "-j"))
	if p.ID != id {
		t.Errorf("pinned program has id %d, want %d", p.ID, id)
	}
	pgNeedBpftool(t)
	bt := decodeJSON[pgProgJSON](t, pgBpftoolRun(t, "-j", "prog", "show", "pinned", path))
	if bt.ID != id || bt.Name != "tc_count" || bt.Tag != info.Tag {
		t.Errorf("bpftool sees %+v, want id %d tc_count tag %s", bt, id, info.Tag)
	}

	// A relative PATH is under the pin root; any REF works.
	bpfshOK(t, root, fmt.Sprintf("prog pin id %d rel/tc", id))
	if _, err := os.Stat(filepath.Join(root, "rel", "tc")); err != nil {
		t.Errorf("relative pin path: %v", err)
	}
	js := decodeJSON[map[string]any](t, bpfshOK(t, root, fmt.Sprintf("prog pin pinned %s again", path), "-j"))
	if js["pinned"] != filepath.Join(root, "again") || js["id"] != float64(id) {
		t.Errorf("prog pin -j: %v", js)
	}
}

func TestProgPinRefusals(t *testing.T) {
	root, objs := pgFixture(t)
	id := pgProgID(t, objs.XdpCount)
	bpfshFails(t, root, fmt.Sprintf("prog pin %d %s", id, filepath.Join(root, "counters")), 1, "exists already")
	bpfshFails(t, root, fmt.Sprintf("prog pin %d %s", id, filepath.Join(t.TempDir(), "x")), 1, "is not on a bpf file system")
	bpfshFails(t, root, fmt.Sprintf("prog pin %d %s", id, filepath.Join(root, "xdp_count", "below")), 1, "is not a directory")
	bpfshFails(t, root, fmt.Sprintf("prog pin %d", id), 2, "needs one PATH")
	bpfshFails(t, root, "prog pin", 2, "needs a program and a path")
	bpfshFails(t, root, "prog pin id 4000000000 "+filepath.Join(root, "new", "x"), 1, "no such object")
	bpfshFails(t, root, "prog pin "+filepath.Join(root, "flows")+" "+filepath.Join(root, "new", "x"), 1, "not a program")

	// A failure after the directories were made takes them away again.
	long := strings.Repeat("n", 300)
	bpfshFails(t, root, fmt.Sprintf("prog pin %d %s", id, filepath.Join(root, "half", "way", long)), 1, "file name too long")
	for _, p := range []string{"new", "half"} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("a failed prog pin left %s behind (%v)", p, err)
		}
	}
}

// withinASecond compares two load times in seconds. The kernel keeps a
// program's load time on the boot clock; bpfsh and bpftool each turn it into
// wall-clock seconds with their own reading of both clocks, so across a
// second boundary they may differ by one.
func withinASecond(a, b int64) bool { return a-b <= 1 && b-a <= 1 }

func TestProgLoadedByBpftool(t *testing.T) {
	pgNeedBpftool(t)
	root := bpftest.PinRoot(t)
	obj := bpftest.FixtureObject(t)
	dir, maps := filepath.Join(root, "bt"), filepath.Join(root, "btmaps")
	pgBpftoolRun(t, "prog", "loadall", obj, dir, "pinmaps", maps)
	bt := decodeJSON[pgProgJSON](t, pgBpftoolRun(t, "-j", "prog", "show", "pinned", filepath.Join(dir, "xdp_count")))

	p := decodeJSON[pgProgJSON](t, bpfshOK(t, root, "prog show bt/xdp_count", "-j"))
	if p.ID != bt.ID || p.Name != bt.Name || p.Tag != bt.Tag || p.BTFID != bt.BTFID || !slices.Equal(p.MapIDs, bt.MapIDs) ||
		p.BytesXlated != bt.BytesXlated || p.BytesJited != bt.BytesJited || !withinASecond(p.LoadedAt, bt.LoadedAt) {
		t.Errorf("bpfsh shows %+v, bpftool %+v", p, bt)
	}
	out := bpfshOK(t, root, "prog dump bt/xdp_count")
	if !strings.Contains(out, `bpf_printk("xdp_count len=%llu", len);`) || !strings.Contains(out, "  // counters") {
		t.Errorf("dump of a program bpftool loaded:\n%s", out)
	}
	ls := bpfshOK(t, root, "ls")
	for _, want := range []string{"bt/xdp_count", "bt/tc_count", "btmaps/counters"} {
		if !strings.Contains(ls, want) {
			t.Errorf("ls lacks %s:\n%s", want, ls)
		}
	}
}
