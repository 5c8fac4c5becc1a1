package commands_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
		{"cache attach lo --redis", 1, []string{"refused", "upstream kernels cannot advance", "sequence numbers", "runs under test-run only"}},
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
		LinkID uint32 `json:"link_id"`
	} `json:"tc"`
}

// attach and detach on a veth pair and lo of a private network namespace.
func TestCacheAttach(t *testing.T) {
	root, _ := kvRoot(t)
	pgInNetns(t)
	pid := os.Getpid() % 100000
	a, b := fmt.Sprintf("cca%d", pid), fmt.Sprintf("ccb%d", pid)
	pgVeth(t, a, b)
	bpfshOK(t, root, "load cache")
	bpfshOK(t, root, "load cache name c2")

	att := decodeJSON[cacheAttachJSON](t, bpfshOK(t, root, "cache attach "+a, "-j"))
	if att.Iface != a || att.XDP.Mode != "driver" || att.XDP.LinkID == 0 || att.TC.LinkID == 0 {
		t.Fatalf("cache attach %s -j: %+v", a, att)
	}
	net := decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+a, "-j"))
	if len(net) != 1 || len(net[0].XDP) != 1 || net[0].XDP[0].Name != cache.RxProgram || net[0].XDP[0].Mode != "driver" ||
		net[0].XDP[0].LinkID != att.XDP.LinkID || len(net[0].TC) != 1 || net[0].TC[0].Kind != "tcx/egress" ||
		net[0].TC[0].Name != cache.FillProgram || net[0].TC[0].LinkID != att.TC.LinkID {
		t.Errorf("net show dev %s after cache attach: %+v", a, net)
	}
	links := decodeJSON[[]pgLinkJSON](t, bpfshOK(t, root, "link show", "-j"))
	found := 0
	for _, l := range links {
		if l.ID == att.XDP.LinkID || l.ID == att.TC.LinkID {
			found++
		}
	}
	if found != 2 {
		t.Errorf("link show lists %d of the links %d and %d", found, att.XDP.LinkID, att.TC.LinkID)
	}
	for _, p := range []string{"link_xdp_" + a, "link_tc_" + a} {
		if _, err := os.Stat(filepath.Join(root, "cache", p)); err != nil {
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

	out = bpfshOK(t, root, "cache detach "+a)
	wantLines(t, "cache detach", out, fmt.Sprintf("detached cache from %s: xdp link %d, tcx link %d", a, att.XDP.LinkID, att.TC.LinkID))
	net = decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+a, "-j"))
	if len(net) != 1 || len(net[0].XDP) != 0 || len(net[0].TC) != 0 {
		t.Errorf("net show dev %s after cache detach: %+v", a, net)
	}
	bpfshFails(t, root, "cache detach "+a, 1, "cache is not attached to "+a)

	// The peer too; then unload detaches both before removing the pins.
	bpfshOK(t, root, "cache attach "+b)
	out = bpfshOK(t, root, "unload cache")
	wantLines(t, "unload cache", out, "unloaded cache", "detached cache from "+b+", lo first")
	if _, err := os.Stat(filepath.Join(root, "cache")); !os.IsNotExist(err) {
		t.Errorf("unload cache left %s/cache: %v", root, err)
	}
	net = decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show", "-j"))
	if len(net) != 1 || len(net[0].XDP) != 0 || len(net[0].TC) != 0 {
		t.Errorf("net show after unload cache: %+v", net)
	}
	bpfshOK(t, root, "unload c2")
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
