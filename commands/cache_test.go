// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/cache"
)

// cacheGetJSON is "cache get -j" (with --detail, run is there).
type cacheGetJSON struct {
	Result  string            `json:"result"`
	Verdict string            `json:"verdict"`
	ReqID   uint16            `json:"req_id"`
	Counter map[string]uint64 `json:"counters"`
	Values  []struct {
		Key   string `json:"key"`
		Flags uint32 `json:"flags"`
		Bytes int    `json:"bytes"`
		Data  struct {
			Text *string `json:"text"`
			Hex  string  `json:"hex"`
		} `json:"data"`
	} `json:"values"`
	Run struct {
		DataOut string `json:"data_out"`
	} `json:"run"`
}

// Every command through the shell, one shell per line as a user would
// type them one-shot, so that each line also checks that a new shell sees
// the state the last one left in the pinned maps.
func TestCacheCommands(t *testing.T) {
	root, _ := kvRoot(t)
	bpfshFails(t, root, "cache get a", 1, "cache is not loaded under "+root, "run 'load cache'")
	bpfshFails(t, root, "cache stats --name c2", 1, "c2 is not loaded", "'load cache name c2'")
	bpfshOK(t, root, "load cache")

	out := bpfshOK(t, root, "cache get nope")
	wantLines(t, "get of a missing key", out, "miss:", "XDP_PASS: the request goes on to memcached", `key:       "nope"`, "counters:  get +1, miss +1")

	out = bpfshOK(t, root, `cache set greeting "hello world" --flags 7`)
	wantLines(t, "cache set", out,
		`TCP "set greeting 7 0 11\r\nhello world\r\n"`, "xdp_cache_rx   XDP_PASS   invalidate +1",
		`TCP "STORED\r\n"`,
		`UDP #1 "get greeting\r\n"`, "get +1, miss +1",
		`"VALUE greeting 7 11\r\nhello world\r\nEND\r\n"`, "tc_cache_fill  TC_ACT_OK  fill +1",
		`cached: "greeting"`)

	// Another process sees the entry, and the hit is exactly memcached's
	// reply: the decoded VALUE and the reply frame's payload.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child, err := helperCmd(exe, "bpfsh", "--pin-root", root, "-c", "cache get greeting").CombinedOutput()
	if err != nil {
		t.Fatalf("cache get in another process: %v\n%s", err, child)
	}
	wantLines(t, "cache get in another process", string(child), "hit:       XDP_TX: answered from the cache", `key:       "greeting"`,
		"flags:     7", "bytes:     11", `data:      "hello world"`, "counters:  get +1, hit +1")
	g := decodeJSON[cacheGetJSON](t, bpfshOK(t, root, "cache get greeting --detail", "-j"))
	if g.Result != "hit" || g.Verdict != "XDP_TX" || len(g.Values) != 1 || g.Values[0].Key != "greeting" || g.Values[0].Flags != 7 ||
		g.Values[0].Bytes != 11 || g.Values[0].Data.Text == nil || *g.Values[0].Data.Text != "hello world" {
		t.Errorf("cache get -j: %+v", g)
	}
	frame, err := hex.DecodeString(g.Run.DataOut)
	if err != nil {
		t.Fatal(err)
	}
	want := append(cache.FrameHeader(g.ReqID, 0, 1, 0), "VALUE greeting 7 11\r\nhello world\r\nEND\r\n"...)
	if !bytes.HasSuffix(frame, want) {
		t.Errorf("the hit's frame does not end with memcached's reply %q:\n%x", want, frame)
	}

	// Bytes that are no text go in and come out as they are.
	bpfshOK(t, root, "cache set bin hex 00 0d 0a ff")
	g = decodeJSON[cacheGetJSON](t, bpfshOK(t, root, "cache get bin", "-j"))
	if g.Result != "hit" || len(g.Values) != 1 || g.Values[0].Data.Hex != "000d0aff" {
		t.Errorf("cache get bin -j: %+v", g)
	}

	// A hit is a run: expect checks it.
	bpfshOK(t, root, "cache get greeting\nexpect retval XDP_TX")

	out = bpfshOK(t, root, "map dump cache/cache")
	wantLines(t, "map dump cache/cache", out, `{len: 8, bytes: "greeting"}`, "flags: 7", `text: "VALUE greeting 7 11\r\nhello world\r\nEND\r\n"`)

	out = bpfshOK(t, root, "cache del greeting")
	wantLines(t, "cache del", out, `TCP "delete greeting\r\n"`, "invalidate +1", `TCP "DELETED\r\n"`, `invalidated: "greeting" was cached`)
	out = bpfshOK(t, root, "cache get greeting")
	wantLines(t, "get after del", out, "miss:", "XDP_PASS")
	out = bpfshOK(t, root, "cache del greeting")
	wantLines(t, "del of a key not cached", out, `not cached: "greeting" was not in the cache`)

	// get nope, set greeting, get greeting x3 (child, -j, expect), set bin,
	// get bin, del greeting, get greeting, del greeting.
	stats := decodeJSON[map[string]uint64](t, bpfshOK(t, root, "cache stats", "-j"))
	for name, want := range map[string]uint64{"get": 8, "hit": 4, "miss": 4, "fill": 2, "invalidate": 4, "fill_stale": 0, "pass_key": 0} {
		if stats[name] != want {
			t.Errorf("cache stats: %s = %d, want %d (all: %v)", name, stats[name], want, stats)
		}
	}
	if len(stats) != len(cache.StatNames) {
		t.Errorf("cache stats -j has %d counters, want %d", len(stats), len(cache.StatNames))
	}
	if out := bpfshOK(t, root, "cache stats"); !regexp.MustCompile(`(?m)^hit +4$`).MatchString(out) {
		t.Errorf("cache stats: no line 'hit 4' in\n%s", out)
	}

	// A get of several keys is answered only when each is cached.
	out = bpfshOK(t, root, "cache get bin absent")
	wantLines(t, "get of two keys, one cached", out, "XDP_PASS", `not cached:  "absent"`)
}

func TestCacheBadInput(t *testing.T) {
	root, _ := kvRoot(t)
	bpfshOK(t, root, "load cache")
	long := strings.Repeat("k", 251)
	for _, c := range []struct {
		line  string
		code  int
		wants []string
	}{
		{"cache get", 2, []string{"cache get needs a KEY"}},
		{"cache get " + long, 2, []string{"key of 251 bytes is too long", "1 to 250 bytes"}},
		{`cache get "a b"`, 2, []string{"byte 0x20", "printable ASCII"}},
		{"cache set k", 2, []string{"needs a KEY and a VALUE"}},
		{"cache set k " + strings.Repeat("v", 1025), 2, []string{"1025 bytes is over the cache's limit of 1024", "would not fill"}},
		{"cache set k v --flags x", 2, []string{"--flags", "0 to 4294967295"}},
		{"cache set k v --flags", 2, []string{"--flags needs"}},
		{"cache set k hex 0g", 2, []string{"not hex bytes"}},
		{"cache del a b", 2, []string{"takes one KEY"}},
		{"cache stats x", 2, []string{"takes no arguments"}},
		{"cache get k --bogus", 2, []string{"unknown option --bogus"}},
		{"cache get k --name a.b", 2, []string{"no dots"}},
		{"cache attach", 2, []string{"takes one IFACE"}},
		{"cache attach nosuch0", 1, []string{"no interface nosuch0"}},
		{"cache attach lo --redis", 2, []string{"--redis takes port N, cgroup PATH and trace", `not "lo"`}},
		{"cache attach --redis cgroup", 2, []string{"cgroup needs a cgroup v2 directory"}},
		{"cache attach --redis cgroup bpfsh-no-such-cgroup", 1, []string{"bpfsh-no-such-cgroup does not exist"}},
		{"cache attach --redis cgroup /tmp", 1, []string{"/tmp is not a cgroup v2 directory"}},
		{"cache attach --redis cgroup ../x", 1, []string{"a relative cgroup is one under the cgroup v2 mount"}},
		{"cache attach --redis port 0", 2, []string{"1 to 65535"}},
		{"cache attach --redis port", 2, []string{"needs redis-server's TCP port"}},
		{"cache detach --redis", 1, []string{"Redis cache is not attached"}},
		{"cache stats --redis", 1, []string{"Redis cache is not attached", "'cache attach --redis'"}},
		{"cache detach", 1, []string{"not attached to any interface"}},
	} {
		bpfshFails(t, root, c.line, c.code, c.wants...)
	}
	// Nothing was cached or counted by the refused lines.
	stats := decodeJSON[map[string]uint64](t, bpfshOK(t, root, "cache stats", "-j"))
	for name, v := range stats {
		if v != 0 {
			t.Errorf("after refused commands, %s = %d", name, v)
		}
	}
}

// cacheAttachJSON is "cache attach -j".
type cacheAttachJSON struct {
	Iface string `json:"iface"`
	XDP   struct {
		Mode   string `json:"mode"`
		LinkID uint32 `json:"link_id"`
	} `json:"xdp"`
	TC struct {
		Attach string `json:"attach"`
		Mode   string `json:"mode"`
		Why    string `json:"why"`
		LinkID uint32 `json:"link_id"`
		// Without tcx: the cls_bpf filter.
		ProgID     uint32 `json:"prog_id"`
		Pref       uint16 `json:"pref"`
		Handle     uint32 `json:"handle"`
		QdiscAdded bool   `json:"qdisc_added"`
		Pin        string `json:"pin"`
	} `json:"tc"`
}

// attach and detach on a veth pair and lo of a private network namespace,
// with tcx where the kernel has it.
func TestCacheAttach(t *testing.T) {
	root, _ := kvRoot(t)
	pgInNetns(t)
	testCacheAttach(t, root, !kernelHasTCX(t))
}

// The same without tcx, as on Linux before 6.6: tc_cache_fill goes in as
// a cls_bpf filter under clsact, and detach, unload and another process
// remove exactly that filter (and the qdisc when attach added it).
func TestCacheAttachWithoutTCX(t *testing.T) {
	root, _ := kvRoot(t)
	pgInNetns(t)
	t.Setenv(bpf.NoTCXEnv, "1")
	testCacheAttach(t, root, true)
}

// kernelHasTCX says whether this kernel has tcx links (Linux 6.6+), by
// attaching a program to lo of the test's namespace.
func kernelHasTCX(t *testing.T) bool {
	t.Helper()
	prog := tcOK(t)
	l, err := link.AttachTCX(link.TCXOptions{Program: prog, Interface: 1, Attach: ebpf.AttachTCXEgress})
	if errors.Is(err, ebpf.ErrNotSupported) {
		return false
	}
	if err != nil {
		t.Fatalf("tcx probe: %v", err)
	}
	l.Close()
	return true
}

// tcOK is a TC program that lets every packet pass.
func tcOK(t *testing.T) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "tc_other", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// hasClsact says whether the device has a clsact qdisc.
func hasClsact(t *testing.T, dev string) bool {
	t.Helper()
	l, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := netlink.QdiscList(l)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(qs, func(q netlink.Qdisc) bool { return q.Type() == "clsact" })
}

func testCacheAttach(t *testing.T, root string, clsact bool) {
	pid := os.Getpid() % 100000
	a, b := fmt.Sprintf("cca%d", pid), fmt.Sprintf("ccb%d", pid)
	_, vb := pgVeth(t, a, b)
	// Another tool's clsact filters on b, which the cache must leave alone.
	other := tcOK(t)
	pgClsact(t, vb, other, "tc_other")
	otherID := pgProgID(t, other)
	bpfshOK(t, root, "load cache")
	bpfshOK(t, root, "load cache name c2")
	fill, err := ebpf.LoadPinnedProgram(filepath.Join(root, "cache", cache.FillProgram), nil)
	if err != nil {
		t.Fatal(err)
	}
	fillID := pgProgID(t, fill)
	fill.Close()

	att := decodeJSON[cacheAttachJSON](t, bpfshOK(t, root, "cache attach "+a, "-j"))
	if att.Iface != a || att.XDP.Mode != "driver" || att.XDP.LinkID == 0 {
		t.Fatalf("cache attach %s -j: %+v", a, att)
	}
	tcPin := filepath.Join(root, "cache", "link_tc_"+a)
	wantTC := "tcx/egress"
	if clsact {
		tcPin = filepath.Join(root, "cache", "filter_tc_"+a)
		wantTC = "clsact/egress"
		why := bpf.WhyNoTCX
		if os.Getenv(bpf.NoTCXEnv) == "1" {
			why = "tcx turned off by " + bpf.NoTCXEnv + "=1"
		}
		if tc := att.TC; tc.Mode != "cls_bpf" || tc.Attach != wantTC || tc.Why != why || tc.LinkID != 0 ||
			tc.ProgID != fillID || tc.Pref != 1 || tc.Handle != 1 || !tc.QdiscAdded || tc.Pin != tcPin {
			t.Errorf("cache attach %s -j without tcx: %+v, want a filter of program %d, pref 1 handle 1, the qdisc added, pinned %s", a, tc, fillID, tcPin)
		}
		if !hasClsact(t, a) {
			t.Errorf("%s has no clsact qdisc after cache attach", a)
		}
		out := bpfshOK(t, root, "cache attach lo")
		wantLines(t, "cache attach lo without tcx", out,
			"tc:   tc_cache_fill on clsact/egress (cls_bpf, direct action): "+why, "pref 1 handle 1, clsact qdisc added (detach removes it), recorded in ")
		bpfshOK(t, root, "cache detach lo")
		if hasClsact(t, "lo") {
			t.Error("cache detach lo left the clsact qdisc that attach added")
		}
	} else if tc := att.TC; tc.Mode != "tcx" || tc.Attach != wantTC || tc.LinkID == 0 || tc.Pin != tcPin {
		t.Errorf("cache attach %s -j: %+v", a, tc)
	}
	net := decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+a, "-j"))
	if len(net) != 1 || len(net[0].XDP) != 1 || net[0].XDP[0].Name != cache.RxProgram || net[0].XDP[0].Mode != "driver" ||
		net[0].XDP[0].LinkID != att.XDP.LinkID || len(net[0].TC) != 1 || net[0].TC[0].Kind != wantTC ||
		net[0].TC[0].Name != cache.FillProgram || net[0].TC[0].LinkID != att.TC.LinkID || max(net[0].TC[0].ID, net[0].TC[0].ProgID) != fillID {
		t.Errorf("net show dev %s after cache attach: %+v", a, net)
	}
	links := decodeJSON[[]pgLinkJSON](t, bpfshOK(t, root, "link show", "-j"))
	found := 0
	for _, l := range links {
		if l.ID == att.XDP.LinkID || l.ID == att.TC.LinkID {
			found++
		}
	}
	if want := map[bool]int{false: 2, true: 1}[clsact]; found != want {
		t.Errorf("link show lists %d of the links %d and %d, want %d", found, att.XDP.LinkID, att.TC.LinkID, want)
	}
	for _, p := range []string{filepath.Join(root, "cache", "link_xdp_"+a), tcPin} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("pin %s: %v", p, err)
		}
	}

	bpfshFails(t, root, "cache attach "+a, 1, "cache is already attached to "+a, "'cache detach "+a+"' first")
	loaded, _ := os.ReadDir(filepath.Join(root, "c2"))
	bpfshFails(t, root, "cache attach "+a+" --name c2", 1, a+" already has an XDP program")
	if ents, _ := os.ReadDir(filepath.Join(root, "c2")); len(ents) != len(loaded) {
		t.Errorf("a refused attach left pins in c2: %d entries, %d after load", len(ents), len(loaded))
	}
	out := bpfshOK(t, root, "cache attach lo")
	wantLines(t, "cache attach lo", out, "generic mode: the driver has no native XDP")

	// Another process detaches what this one attached: it finds it all
	// under the pin root.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child, err := helperCmd(exe, "bpfsh", "--pin-root", root, "-c", "cache detach "+a).CombinedOutput()
	if err != nil {
		t.Fatalf("cache detach in another process: %v\n%s", err, child)
	}
	if clsact {
		wantLines(t, "cache detach", string(child), fmt.Sprintf("detached cache from %s: xdp link %d, cls_bpf filter on clsact/egress pref 1 handle 1 (program %d) and the clsact qdisc attach added (pins removed)", a, att.XDP.LinkID, fillID))
		if hasClsact(t, a) {
			t.Errorf("cache detach left the clsact qdisc it added on %s", a)
		}
	} else {
		wantLines(t, "cache detach", string(child), fmt.Sprintf("detached cache from %s: xdp link %d, tcx link %d", a, att.XDP.LinkID, att.TC.LinkID))
	}
	net = decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+a, "-j"))
	if len(net) != 1 || len(net[0].XDP) != 0 || len(net[0].TC) != 0 {
		t.Errorf("net show dev %s after cache detach: %+v", a, net)
	}
	if _, err := os.Lstat(tcPin); !os.IsNotExist(err) {
		t.Errorf("cache detach left %s: %v", tcPin, err)
	}
	bpfshFails(t, root, "cache detach "+a, 1, "cache is not attached to "+a)

	// The peer too, beside the other tool's filters; then unload detaches
	// both before removing the pins, and the other tool's filters stay.
	att = decodeJSON[cacheAttachJSON](t, bpfshOK(t, root, "cache attach "+b, "-j"))
	if clsact && (att.TC.Pref != 2 || att.TC.QdiscAdded) {
		t.Errorf("cache attach %s beside a filter at pref 1: %+v, want pref 2 in the qdisc that was there", b, att.TC)
	}
	out = bpfshOK(t, root, "unload cache")
	wantLines(t, "unload cache", out, "unloaded cache", "detached cache from "+b+", lo first")
	if _, err := os.Stat(filepath.Join(root, "cache")); !os.IsNotExist(err) {
		t.Errorf("unload cache left %s/cache: %v", root, err)
	}
	net = decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show", "-j"))
	var kept []string
	for _, tc := range net[0].TC {
		kept = append(kept, fmt.Sprintf("%s %s %d", tc.Devname, tc.Kind, tc.ID))
	}
	want := []string{fmt.Sprintf("%s clsact/ingress %d", b, otherID), fmt.Sprintf("%s clsact/egress %d", b, otherID)}
	if len(net) != 1 || len(net[0].XDP) != 0 || !slices.Equal(kept, want) {
		t.Errorf("net show after unload cache: XDP %+v, TC %q, want only the other tool's filters %q", net[0].XDP, kept, want)
	}
	if !hasClsact(t, b) || hasClsact(t, "lo") {
		t.Errorf("after unload: clsact on %s %v (want it kept), on lo %v (want it gone)", b, hasClsact(t, b), hasClsact(t, "lo"))
	}
	bpfshOK(t, root, "unload c2")
}

// An attach that fails at the TC hook, after xdp_cache_rx went on the
// XDP hook, says why in one line and leaves nothing: no link, no pin, no
// qdisc, no filter. (Here without tcx: an ingress qdisc sits where clsact
// would go.)
func TestCacheAttachFailingHalfway(t *testing.T) {
	root, _ := kvRoot(t)
	pgInNetns(t)
	t.Setenv(bpf.NoTCXEnv, "1")
	pid := os.Getpid() % 100000
	a, b := fmt.Sprintf("cca%d", pid), fmt.Sprintf("ccb%d", pid)
	va, _ := pgVeth(t, a, b)
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: va.Attrs().Index, Parent: netlink.HANDLE_INGRESS, Handle: netlink.MakeHandle(0xffff, 0)}}
	if err := netlink.QdiscAdd(ingress); err != nil {
		t.Fatal(err)
	}
	bpfshOK(t, root, "load cache")
	before := bpftest.TakeLeftovers(t, root)
	bpfshFails(t, root, "cache attach "+a, 1, "attach tc_cache_fill to "+a+"'s TC egress hook", "has an ingress qdisc where clsact goes", "nothing stays attached")
	bpftest.WantNoneLeft(t, before, bpftest.TakeLeftovers(t, root))
	net := decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+a, "-j"))
	if len(net) != 1 || len(net[0].XDP) != 0 || len(net[0].TC) != 0 {
		t.Errorf("net show dev %s after the failed attach: %+v", a, net)
	}
	qs, err := netlink.QdiscList(va)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(qs, func(q netlink.Qdisc) bool { return q.Type() == "ingress" }) || hasClsact(t, a) {
		t.Errorf("qdiscs of %s after the failed attach: %v, want the ingress qdisc still there and no clsact", a, qs)
	}
	bpfshFails(t, root, "cache detach", 1, "not attached to any interface")
}

// --name reaches a cache loaded under another NAME, and the packets go to
// the port it was loaded with.
func TestCacheNameAndPort(t *testing.T) {
	root, _ := kvRoot(t)
	bpfshOK(t, root, "load cache name c3 set cache_port=11311")
	bpfshFails(t, root, "cache get k", 1, "cache is not loaded", "run 'load cache'")
	out := bpfshOK(t, root, "cache set k v --name c3")
	wantLines(t, "cache set --name c3", out, "fill +1")
	out = bpfshOK(t, root, "cache get k --name=c3 --detail")
	wantLines(t, "cache get --name c3", out, "hit:", "UDP(sport=40000, dport=11311)", "retval    XDP_TX (3)")
}
