// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/fixture"
	"github.com/bpfsh/bpfsh/commands"
)

// testTable is a command table shaped like bpfsh's, so that completion is
// tested against usage lines whatever families are merged yet.
func testTable() []*commands.Command {
	run := func(*commands.Session, []string) (commands.Result, error) { return nil, nil }
	leaf := func(name, usage string, args ...commands.ArgKind) *commands.Command {
		return &commands.Command{Name: name, Usage: usage, Short: name + " it", Args: args, Run: run}
	}
	return []*commands.Command{
		leaf("help", "[COMMAND [SUB-COMMAND]]", commands.ArgCommand, commands.ArgCommand),
		leaf("load", "FILE [name NAME]", commands.ArgFile),
		leaf("unload", "NAME", commands.ArgLoaded),
		leaf("ls", "[DIR]", commands.ArgPinPath),
		{Name: "map", Short: "maps", Subs: []*commands.Command{
			leaf("list", ""),
			leaf("show", "REF", commands.ArgMapRef),
			leaf("lookup", "REF key KEY", commands.ArgMapRef),
			leaf("update", "REF key KEY value VALUE", commands.ArgMapRef),
			leaf("pin", "ID PATH"),
		}},
		{Name: "prog", Short: "programs", Subs: []*commands.Command{
			leaf("show", "REF", commands.ArgProgRef),
		}},
		{Name: "net", Short: "network", Subs: []*commands.Command{
			leaf("show", "[dev IFACE]"),
		}},
	}
}

func testSession(pinRoot string) *commands.Session {
	return &commands.Session{PinRoot: pinRoot, Commands: testTable()}
}

// texts completes line (cursor at its end) and returns the texts offered.
func texts(t *testing.T, s *commands.Session, line string) []string {
	t.Helper()
	var out []string
	for _, sg := range complete(s, line, len(line)) {
		out = append(out, sg.Text)
	}
	return out
}

func suggestion(t *testing.T, s *commands.Session, line, text string) Suggestion {
	t.Helper()
	for _, sg := range complete(s, line, len(line)) {
		if sg.Text == text {
			return sg
		}
	}
	t.Fatalf("%q: no suggestion %q among %q", line, text, texts(t, s, line))
	return Suggestion{}
}

func wantTexts(t *testing.T, s *commands.Session, line string, want ...string) {
	t.Helper()
	got := texts(t, s, line)
	if !slices.Equal(got, want) {
		t.Errorf("%q: got %q, want %q", line, got, want)
	}
}

func wantAmong(t *testing.T, s *commands.Session, line string, want ...string) {
	t.Helper()
	got := texts(t, s, line)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%q: %q missing from %q", line, w, got)
		}
	}
}

func wantNone(t *testing.T, s *commands.Session, line string, not ...string) {
	t.Helper()
	got := texts(t, s, line)
	for _, n := range not {
		if slices.Contains(got, n) {
			t.Errorf("%q: %q offered but should not be: %q", line, n, got)
		}
	}
}

func TestCompleteCommandWords(t *testing.T) {
	s := testSession("/nonexistent")
	wantTexts(t, s, "", "help", "load", "unload", "ls", "map", "prog", "net")
	wantTexts(t, s, "m", "map")
	wantTexts(t, s, "map ", "list", "show", "lookup", "update", "pin")
	wantTexts(t, s, "map l", "list", "lookup")
	wantTexts(t, s, "m lo", "lookup") // prefixes work as in the runner
	wantTexts(t, s, "frob")
	if sg := suggestion(t, s, "map lo", "lookup"); sg.Start != 4 || !strings.Contains(sg.Desc, "REF key KEY") {
		t.Errorf("lookup: start %d, desc %q; want 4 and the usage", sg.Start, sg.Desc)
	}
	if sg := suggestion(t, s, "help; ma", "map"); sg.Start != 6 {
		t.Errorf("after ';' the word starts at %d, want 6", sg.Start)
	}
	// The cursor in the middle of the line completes the word before it.
	if got := complete(s, "map lo flows", len("map lo")); len(got) != 1 || got[0].Text != "lookup" {
		t.Errorf("cursor mid-line: %v", got)
	}
}

func TestCompleteFlagsAndKeywords(t *testing.T) {
	s := testSession("/nonexistent")
	wantTexts(t, s, "map show -", "-j", "--json")
	wantTexts(t, s, "help --j", "--json")
	wantTexts(t, s, "map lookup x/y ", "key")
	wantTexts(t, s, "map update x/y key 1 ", "value")
	wantTexts(t, s, "map update x/y key 0x01 0 0 0 v", "value")
	wantTexts(t, s, "load /tmp/x.o ", "name")
	wantTexts(t, s, "net show ", "dev")
	wantTexts(t, s, "-j map lookup x/y ", "key") // global flags are not arguments
	if sg := suggestion(t, s, "map update id 3 ", "key"); sg.Desc != "key KEY value VALUE" {
		t.Errorf("key's hint %q, want the rest of the usage", sg.Desc)
	}
}

func TestCompleteHints(t *testing.T) {
	s := testSession("/nonexistent")
	// Where nothing can be offered, the word as typed comes back with
	// what is still to come, shown as its description.
	for line, want := range map[string]string{
		"map lookup x/y key ":          "KEY",
		"map update x/y key 1 value ":  "VALUE",
		"map update x/y key 1 value 2": "VALUE",
		"load x.o name ":               "NAME",
		"map lookup x/y key 0x":        "KEY",
	} {
		got := complete(s, line, len(line))
		cur := line[strings.LastIndexByte(line, ' ')+1:]
		if len(got) != 1 || got[0].Text != cur || got[0].Desc != want {
			t.Errorf("%q: got %+v, want one hint %q", line, got, want)
		}
	}
	// The ways to name a map carry the rest of the usage.
	if sg := suggestion(t, s, "map lookup ", "id"); sg.Desc != "id N key KEY" {
		t.Errorf("id's hint %q", sg.Desc)
	}
	wantNone(t, s, "map lookup ", "tag") // maps have no tag
	wantAmong(t, s, "prog show ", "tag")
	// Past the end of the usage there is nothing to say.
	wantTexts(t, s, "map show x/y ")
	wantTexts(t, s, "map list ")
}

func TestCompleteNothingInQuotesCommentsOrLiterals(t *testing.T) {
	s := testSession("/nonexistent")
	for _, line := range []string{`help "ma`, `help 'ma`, `help "map"`, "help # ma", "map lookup x/y key (1", "help a,b", `help x"y`} {
		if got := complete(s, line, len(line)); got != nil {
			t.Errorf("%q: got %v, want nothing", line, got)
		}
	}
}

func TestCompleteCommandArguments(t *testing.T) {
	s := testSession("/nonexistent")
	wantTexts(t, s, "help ma", "map")
	wantTexts(t, s, "help map lo", "lookup")
	wantTexts(t, s, "help map show ")

	dir := t.TempDir()
	for _, name := range []string{"obj.o", "other.o", ".hidden"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "objs"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, s, "load "+dir+"/o", dir+"/obj.o", dir+"/objs/", dir+"/other.o")
	wantTexts(t, s, "load "+dir+"/.", dir+"/.hidden")
	wantTexts(t, s, "net show dev lo", "lo")
}

// pinnedFixture pins the fixture under <pin root>/fix, as "load" would.
func pinnedFixture(t *testing.T) (root string, objs *fixture.FixtureObjects) {
	root = bpftest.PinRoot(t)
	if err := os.Mkdir(filepath.Join(root, "fix"), 0o700); err != nil {
		t.Fatal(err)
	}
	return root, bpftest.Fixture(t, filepath.Join(root, "fix"))
}

func TestCompletePinnedPaths(t *testing.T) {
	root, _ := pinnedFixture(t)
	s := testSession(root)
	wantTexts(t, s, "map show pinned "+root+"/", root+"/fix/")
	wantTexts(t, s, "map show pinned "+root+"/fix/fl", root+"/fix/flows")
	// Only maps for a map, only programs for a program.
	wantTexts(t, s, "map show pinned "+root+"/fix/", root+"/fix/counters", root+"/fix/events", root+"/fix/flows", root+"/fix/jobs", root+"/fix/percpu", root+"/fix/undo")
	wantTexts(t, s, "prog show pinned "+root+"/fix/", root+"/fix/sock_count", root+"/fix/tc_count", root+"/fix/xdp_count")
	wantTexts(t, s, "ls "+root+"/f", root+"/fix/")
	wantAmong(t, s, "map show pinned ", "/sys/fs/bpf/", root+"/")
	wantAmong(t, s, "map show "+root+"/fix/c", root+"/fix/counters")
	if sg := suggestion(t, s, "map show pinned "+root+"/fix/fl", root+"/fix/flows"); sg.Desc != "map (hash)" {
		t.Errorf("flows described as %q", sg.Desc)
	}
	// Types are spelled as bpftool spells them.
	if sg := suggestion(t, s, "map show pinned "+root+"/fix/pe", root+"/fix/percpu"); sg.Desc != "map (percpu_hash)" {
		t.Errorf("percpu described as %q", sg.Desc)
	}
	if sg := suggestion(t, s, "prog show fix/tc", "fix/tc_count"); sg.Desc != "program (sched_cls)" {
		t.Errorf("tc_count described as %q", sg.Desc)
	}
	// A command this shell does not know still completes pinned paths and
	// short references: they read the same in every command.
	wantTexts(t, s, "frob show pinned "+root+"/fix/fl", root+"/fix/flows")
	wantTexts(t, s, "frob fix/und", "fix/undo")
}

func TestCompleteShortRefs(t *testing.T) {
	root, _ := pinnedFixture(t)
	s := testSession(root)
	wantAmong(t, s, "map show ", "id", "pinned", "name", "fix/")
	wantTexts(t, s, "map show f", "fix/")
	wantTexts(t, s, "map show fix/", "fix/counters", "fix/events", "fix/flows", "fix/jobs", "fix/percpu", "fix/undo")
	wantTexts(t, s, "prog show fix/", "fix/sock_count", "fix/tc_count", "fix/xdp_count")
	wantTexts(t, s, "map lookup fix/fl", "fix/flows")
	// Nothing matches: the hint says what goes there.
	if got := complete(s, "map show fix/flows/", len("map show fix/flows/")); len(got) != 1 || got[0].Desc != "REF" {
		t.Errorf("no match: got %v, want the hint REF", got)
	}
	wantTexts(t, s, "unload f", "fix")
}

// resetKernelCache forgets the kernel's lists, so that a test sees the
// objects it just loaded.
func resetKernelCache() {
	kernelCache.Lock()
	kernelCache.lists = nil
	kernelCache.Unlock()
	mapKVCache.Lock()
	mapKVCache.m = nil
	mapKVCache.Unlock()
}

func TestCompleteKernelNamesAndIDs(t *testing.T) {
	root := bpftest.PinRoot(t)
	objs := bpftest.Fixture(t, root)
	resetKernelCache()
	s := testSession(root)
	wantAmong(t, s, "map show name flo", "flows")
	wantNone(t, s, "map show name ", "xdp_count")
	wantAmong(t, s, "prog show name xdp_c", "xdp_count")
	wantNone(t, s, "prog show name ", "flows")

	info, err := objs.Flows.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	ids := strconv.FormatUint(uint64(id), 10)
	if sg := suggestion(t, s, "map show id "+ids, ids); !strings.Contains(sg.Desc, "hash map flows") {
		t.Errorf("id %s described as %q", ids, sg.Desc)
	}
	// Types are spelled as bpftool spells them, not as cilium/ebpf does
	// ("PerCPUHash", "SchedCLS").
	minfo, err := objs.Percpu.Info()
	if err != nil {
		t.Fatal(err)
	}
	mid, _ := minfo.ID()
	tcinfo, err := objs.TcCount.Info()
	if err != nil {
		t.Fatal(err)
	}
	tcid, _ := tcinfo.ID()
	for _, c := range []struct{ line, id, want string }{
		{"map show id ", strconv.FormatUint(uint64(mid), 10), "percpu_hash map percpu"},
		{"prog show id ", strconv.FormatUint(uint64(tcid), 10), "sched_cls program tc_count"},
	} {
		if sg := suggestion(t, s, c.line+c.id, c.id); sg.Desc != c.want {
			t.Errorf("%s%s described as %q, want %q", c.line, c.id, sg.Desc, c.want)
		}
	}
	pinfo, err := objs.XdpCount.Info()
	if err != nil {
		t.Fatal(err)
	}
	wantAmong(t, s, "prog show tag "+pinfo.Tag[:4], pinfo.Tag)
	// ID in "map pin ID PATH" is a map id, PATH a pinned path.
	wantAmong(t, s, "map pin "+ids, ids)
	wantAmong(t, s, "map pin "+ids+" "+root+"/", root+"/flows")
}

func TestCompleteBTFFields(t *testing.T) {
	root, objs := pinnedFixture(t)
	resetKernelCache()
	s := testSession(root)
	wantTexts(t, s, "map update fix/flows key {", "saddr:", "sport:", "pad:")
	wantTexts(t, s, "map update fix/flows key {saddr: 1, s", "sport:")
	wantTexts(t, s, "map update fix/flows key {saddr: 1,sport: 2, ", "pad:")
	wantTexts(t, s, "map update fix/flows key {sa", "saddr:")
	wantTexts(t, s, "map update fix/flows key {saddr: 10.0.0.1} value {", "packets:", "bytes:", "comment:", "tags:")
	wantTexts(t, s, "map lookup pinned "+root+"/fix/flows key { by")
	wantTexts(t, s, "map update fix/flows key {saddr: 1} value {comment: \"a, b\", b", "bytes:")
	if sg := suggestion(t, s, "map update fix/flows key {saddr: 1} value {comm", "comment:"); sg.Desc != "char[16]" || sg.Start != len("map update fix/flows key {saddr: 1} value {") {
		t.Errorf("comment: desc %q start %d", sg.Desc, sg.Start)
	}
	// Typing a value, or a closed literal: nothing to offer.
	wantTexts(t, s, "map update fix/flows key {saddr: ")
	wantTexts(t, s, "map update fix/flows key {saddr: 1}")
	wantTexts(t, s, "map update fix/flows key [")
	wantTexts(t, s, "map update fix/counters key {") // a u32 has no fields
	wantTexts(t, s, "map update fix/nothere key {")

	info, err := objs.Flows.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	wantTexts(t, s, "map lookup id "+strconv.Itoa(int(id))+" key {sp", "sport:")
}

func TestCompleteNestedBTFFields(t *testing.T) {
	root := bpftest.PinRoot(t)
	u16 := &btf.Int{Name: "__u16", Size: 2}
	u32 := &btf.Int{Name: "__u32", Size: 4}
	inner := &btf.Struct{Name: "point", Size: 4, Members: []btf.Member{
		{Name: "x", Type: u16, Offset: 0}, {Name: "y", Type: u16, Offset: 16},
	}}
	key := &btf.Struct{Name: "nested", Size: 16, Members: []btf.Member{
		{Name: "id", Type: u32, Offset: 0},
		{Name: "at", Type: inner, Offset: 32},
		{Name: "path", Type: &btf.Array{Type: inner, Index: u32, Nelems: 2}, Offset: 64},
	}}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "nested", Type: ebpf.Hash, KeySize: 16, ValueSize: 4, MaxEntries: 4, Key: key, Value: u32})
	if err != nil {
		t.Fatalf("create a map with nested BTF: %v", err)
	}
	defer m.Close()
	if err := m.Pin(filepath.Join(root, "nest")); err != nil {
		t.Fatal(err)
	}
	resetKernelCache()
	s := testSession(root)
	line := "map update pinned " + root + "/nest key "
	wantTexts(t, s, line+"{", "id:", "at:", "path:")
	wantTexts(t, s, line+"{id: 1, at: {", "x:", "y:")
	wantTexts(t, s, line+"{id: 1, at: {x: 1, ", "y:")
	wantTexts(t, s, line+"{id: 1, at: {x: 1}, ", "path:")
	wantTexts(t, s, line+"{path: [{x: 1}, {", "x:", "y:")
	if sg := suggestion(t, s, line+"{a", "at:"); sg.Desc != "struct point" {
		t.Errorf("at: described as %q", sg.Desc)
	}
}

func TestSplitPartial(t *testing.T) {
	for _, c := range []struct {
		in      string
		words   []string
		cur     string
		literal bool
		stop    bool
	}{
		{"", nil, "", false, false},
		{"map sh", []string{"map"}, "sh", false, false},
		{"map show ", []string{"map", "show"}, "", false, false},
		{"help; map lookup x key {a: 1, b", []string{"map", "lookup", "x", "key"}, "{a: 1, b", true, false},
		{`load "a b.o" na`, []string{"load", "a b.o"}, "na", false, false},
		{`load "a b`, nil, "", false, true},
		{"help # x", nil, "", false, true},
		{"map update x key {c: \"}\", d", []string{"map", "update", "x", "key"}, "{c: \"}\", d", true, false},
	} {
		p := splitPartial(c.in)
		if p.stop != c.stop || (!c.stop && (!slices.Equal(p.words, c.words) || p.cur != c.cur || p.literal != c.literal)) {
			t.Errorf("splitPartial(%q) = %+v", c.in, p)
		}
		if !p.stop && c.in[p.start:] != p.cur {
			t.Errorf("splitPartial(%q): start %d does not point at %q", c.in, p.start, p.cur)
		}
	}
}

func TestParseUsage(t *testing.T) {
	ul := parseUsage("FILE [name NAME] [COMMAND [SUB-COMMAND]]")
	var got []string
	for _, it := range ul.items {
		got = append(got, it.word+":"+strconv.FormatBool(it.optional)+":"+strconv.Itoa(it.skip))
	}
	want := []string{"FILE:false:1", "name:true:3", "NAME:true:3", "COMMAND:true:5", "SUB-COMMAND:true:5"}
	if !slices.Equal(got, want) {
		t.Errorf("items %q, want %q", got, want)
	}
	if r := ul.rest(2); r != "NAME [COMMAND [SUB-COMMAND]]" {
		t.Errorf("rest(2) = %q", r)
	}
}

// The real table: whatever is merged, the built-ins complete.
func TestCompleteRealTable(t *testing.T) {
	s := &commands.Session{PinRoot: "/nonexistent"}
	New(s, nil, nil)
	wantAmong(t, s, "", "help", "source", "exit")
	wantTexts(t, s, "exi", "exit")
	wantAmong(t, s, "help s", "source")
}
