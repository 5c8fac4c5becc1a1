// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/commands"
	"github.com/bpfsh/bpfsh/shell"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/fixture"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// pinnedProgs loads testrun's fixture programs and pins them under
// root/t/NAME, so that "t/xdp_reflect" names them.
func pinnedProgs(t *testing.T) (string, *fixture.ProgsObjects) {
	t.Helper()
	root := bpftest.PinRoot(t)
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	pin(t, root, map[string]interface{ Pin(string) error }{
		"xdp_reflect": p.XdpReflect, "xdp_pass": p.XdpPass, "xdp_count": p.XdpCount, "tc_mark": p.TcMark,
		"sum": p.Sum, "lookup_port": p.LookupPort, "hits": p.Hits,
	})
	return root, &p
}

func pin(t *testing.T, root string, objs map[string]interface{ Pin(string) error }) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "t"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, o := range objs {
		if err := o.Pin(filepath.Join(root, "t", name)); err != nil {
			t.Fatalf("pin %s: %v", name, err)
		}
	}
}

// frameHex is Ethernet to 02:00:00:00:00:02 from 0a:00:00:00:00:01,
// IPv4 10.0.0.1 -> 10.0.0.2 (id 0), UDP 40000 -> 7777 without a
// checksum, payload "ping", built by testrun/packet as users build it.
var frameHex = hex.EncodeToString(packet.MustBuild(`Ether(src=0a:00:00:00:00:01)/IPv4(id=0)/UDP(chksum=0)/Raw("ping")`))

func frameWords() []string { return strings.Fields(frameHex) }

func TestRunCommand(t *testing.T) {
	root, _ := pinnedProgs(t)
	code, out, errs := bpfsh(t, root, append([]string{"run", "t/xdp_reflect", "hex"}, frameWords()...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"program   xdp_reflect (id ", ", xdp)", "retval    XDP_TX (3)", "duration  ", "packet    46 bytes in (Ether/IPv4/UDP/Raw), 46 out, changed: bytes 0, 5-6, 11", "0000 *0a 00 00 00 00*01*02 00"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = bpfsh(t, root, append([]string{"-j", "run", "t/xdp_count", "hex"}, frameWords()...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("JSON %q: %v", out, err)
	}
	in, _ := hex.DecodeString(strings.ReplaceAll(frameHex, " ", ""))
	if j["retval"] != "XDP_PASS" || j["retval_code"] != float64(2) || j["data_out"] != hex.EncodeToString(in) {
		t.Errorf("JSON %v", j)
	}
	if _, ok := j["duration_ns"].(float64); !ok {
		t.Errorf("duration_ns %v", j["duration_ns"])
	}
	// Packet fields that are numbers are JSON numbers (issue 13 item 18).
	if layers, ok := j["layers"].([]any); !ok || len(layers) < 3 {
		t.Errorf("layers %v", j["layers"])
	} else {
		ip := layers[1].(map[string]any)["fields"].(map[string]any)
		udp := layers[2].(map[string]any)["fields"].(map[string]any)
		if ip["ttl"] != float64(64) || ip["proto"] != float64(17) || ip["src"] != "10.0.0.1" || udp["dport"] != float64(7777) {
			t.Errorf("IPv4 fields %v, UDP fields %v", ip, udp)
		}
	}
	if maps, ok := j["maps_changed"].([]any); !ok || len(maps) != 3 {
		t.Errorf("maps_changed %v", j["maps_changed"])
	}
	trace, ok := j["trace"].([]any)
	if !ok || len(trace) != 1 || trace[0].(map[string]any)["text"] != "xdp_count proto=17 len=46" {
		t.Errorf("trace %v", j["trace"])
	}
}

func TestRunCommandContextAndTiming(t *testing.T) {
	root, _ := pinnedProgs(t)
	code, out, errs := bpfsh(t, root, append(append([]string{"run", "t/tc_mark", "hex"}, frameWords()...), "ctx", "{mark: 5, ingress_ifindex: 1}")...)
	if code != 0 || !strings.Contains(out, "retval    TC_ACT_OK (0)") || !strings.Contains(out, "ctx       mark: 42 (was 5)") || !strings.Contains(out, "trace     tc_mark mark=5") {
		t.Errorf("exit %d %s\n%s", code, errs, out)
	}
	code, out, errs = bpfsh(t, root, append(append([]string{"run", "t/xdp_reflect", "hex"}, frameWords()...), "repeat", "100", "bench")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"timing    HOW ", "RUNS  MIN ", "MEDIAN", "P99", "RETURNED\n",
		"          fresh copy of the input each run (kernel clock)   100 ", " XDP_TX x100\n",
		"          kernel repeat over one buffer (bpftool prog run)  100 ", " ns avg ", "last run XDP_DROP\n",
		"per run   ", " ns: the fresh runs' median less the kernel timer's own ~",
		"caveat    the program changed its packet; bpftool's repeat 100 would time the rewritten path: the kernel repeat above did, and its last run returned XDP_DROP, not XDP_TX"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "caveat"); n != 1 || strings.Contains(out, "warning") {
		t.Errorf("%d caveats (or a warning line), want the caveat once:\n%s", n, out)
	}
	code, out, errs = bpfsh(t, root, "run", "t/sum", "ctx", "{a: 1, b: 2}")
	if code != 0 || !strings.Contains(out, "ctx       sum: 3 (was 0)") {
		t.Errorf("syscall: exit %d %s\n%s", code, errs, out)
	}
	code, out, errs = bpfsh(t, root, "run", "t/lookup_port", "ctx", "{local_port: 7777}")
	if code != 0 || !strings.Contains(out, "retval    SK_DROP (0)") {
		t.Errorf("sk_lookup: exit %d %s\n%s", code, errs, out)
	}
}

func TestRunCommandErrors(t *testing.T) {
	root, _ := pinnedProgs(t)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"run", "t/xdp_pass", "hex", "00", "11", "22", "33", "44", "55", "66", "77", "88", "99"}, 2, "run t/xdp_pass: XDP input must be at least 14 bytes, got 10"},
		{append(append([]string{"run", "t/sum", "hex"}, frameWords()...), "ctx", "{a: 1}"), 2, "SYSCALL programs take only ctx: drop the packet"},
		{append(append([]string{"run", "t/tc_mark", "hex"}, frameWords()...), "ctx", "{len: 1}"), 2, "ctx field len cannot be set for sched_cls programs"},
		{[]string{"run", "t/xdp_pass", "hex", "zz"}, 2, `hex: "zz" is not hex`},
		{[]string{"run", "t/xdp_pass", "frobnicate"}, 2, `unknown run option "frobnicate"`},
		{[]string{"run", "t/xdp_pass", "repeat", "many"}, 2, `repeat "many": want a whole number`},
		{[]string{"run", "t/nosuch"}, 1, "nothing is pinned at"},
		{[]string{"run"}, 2, "run needs a program first"},
		{append(append([]string{"run", "t/xdp_pass", "hex"}, frameWords()...), "flags", "bogus"), 2, `unknown test-run flag "bogus"`},
	}
	for _, c := range cases {
		code, _, errs := bpfsh(t, root, c.args...)
		if code != c.code || !strings.Contains(errs, c.err) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q on one line", c.args, code, errs, c.code, c.err)
		}
	}
}

func TestRunCommandLiveHarness(t *testing.T) {
	root := bpftest.PinRoot(t)
	var s fixture.SockmapObjects
	if err := fixture.LoadSockmapObjects(&s, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
	defer s.Close()
	pin(t, root, map[string]interface{ Pin(string) error }{"skb_route": s.SkbRoute, "socks": s.Socks})
	code, out, errs := bpfsh(t, root, "run", "t/skb_route", "hex", "32", "68", "69", "map", "t/socks", "wait", "300ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"harness   3 bytes sent through key 0 of sockmap socks (sk_skb_stream_verdict)",
		"verdict   redirected to key 2 (egress): sent out of key 2's socket, its peer received 3 bytes", `arrived   key 2 peer: 3 bytes "2hi"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = bpfsh(t, root, "-j", "run", "t/skb_route", "hex", "78", "from", "1")
	var j map[string]any
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil {
		t.Fatalf("exit %d, JSON %q: %v", code, out, err)
	}
	if live, _ := j["live"].(map[string]any); j["retval"] != "passed" || live["from"] != float64(1) || live["verdict"] != "passed" {
		t.Errorf("JSON %v", j)
	}
}

// trace streams the lines printed while it runs, filtered and for a time.
// Every bpf_printk on the machine reaches trace (other tests run at the
// same time), so the lines looked for carry a mark unique to this process.
func TestTraceCommand(t *testing.T) {
	root, p := pinnedProgs(t)
	in, _ := hex.DecodeString(strings.ReplaceAll(frameHex, " ", ""))
	mark := fmt.Sprint(3_000_000 + os.Getpid())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			testrun.Run(testrun.Options{Program: p.XdpCount, Data: in, NoMaps: true, NoTrace: true})
			testrun.Run(testrun.Options{Program: p.TcMark, Data: in, Ctx: []string{"{mark: " + mark + "}"}, NoMaps: true, NoTrace: true})
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	start := time.Now()
	code, out, errs := bpfsh(t, root, "trace", "grep", "tc_mark mark="+mark+"$", "for", "1s")
	if took := time.Since(start); code != 0 || took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("exit %d after %v: %s", code, took, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("output:\n%s", out)
	}
	for _, l := range lines[1:] {
		if !strings.HasSuffix(l, "tc_mark mark="+mark) {
			t.Errorf("line %q passed the filter", l)
		}
	}
	code, out, _ = bpfsh(t, root, "-j", "trace", "grep", "mark="+mark, "for", "300ms")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) == 0 || rows[0]["text"] != "tc_mark mark="+mark {
		t.Errorf("JSON trace: exit %d %v %q", code, err, out)
	}

	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"trace", "grep", "("}, "grep \"(\": missing closing )"},
		{[]string{"trace", "for", "soon"}, `"soon" is not a duration`},
		{[]string{"trace", "loudly"}, `unexpected "loudly"`},
		{[]string{"trace", "prog", "t/xdp_count", "global"}, "prog and global do not go together"},
	} {
		if code, _, errs := bpfsh(t, root, c.args...); code != 2 || !strings.Contains(errs, c.err) {
			t.Errorf("%v: exit %d %q, want %q", c.args, code, errs, c.err)
		}
	}
}

func TestTraceProgCommand(t *testing.T) {
	root, _ := pinnedProgs(t)
	if err := testrun.ProgStreamsSupported(); err != nil {
		code, _, errs := bpfsh(t, root, "trace", "prog", "t/xdp_count", "for", "100ms")
		if code != 1 || !strings.Contains(errs, "BPF program streams") {
			t.Errorf("without streams: exit %d %q", code, errs)
		}
		return
	}
	code, out, errs := bpfsh(t, root, "trace", "prog", "t/xdp_count", "for", "200ms")
	want := "STREAM  TEXT"
	if err := testrun.StreamWritesWork(); err != nil {
		want += "\n        note: " + err.Error()
	}
	if code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("exit %d %q %q, want %q", code, out, errs, want)
	}
}

// timedWriter notes when the first write containing a string happened.
type timedWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	first time.Time
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.first.IsZero() && strings.Contains(w.buf.String(), w.want) {
		w.first = time.Now()
	}
	return len(p), nil
}

// trace's rows reach the output as they come, not when the stream ends.
func TestTraceStreamsRowsAsTheyCome(t *testing.T) {
	root, p := pinnedProgs(t)
	in, _ := hex.DecodeString(strings.ReplaceAll(frameHex, " ", ""))
	mark := fmt.Sprint(5_000_000 + os.Getpid())
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			testrun.Run(testrun.Options{Program: p.TcMark, Data: in, Ctx: []string{"{mark: " + mark + "}"}, NoMaps: true, NoTrace: true})
		}
	}()
	w := &timedWriter{want: "mark=" + mark}
	var errb bytes.Buffer
	code := shell.Main([]string{"--pin-root", root, "trace", "grep", "mark=" + mark, "for", "2s"}, strings.NewReader(""), w, &errb)
	end := time.Now()
	if code != 0 || w.first.IsZero() {
		t.Fatalf("exit %d (%s), output %q", code, errb.String(), w.buf.String())
	}
	if early := end.Sub(w.first); early < 500*time.Millisecond {
		t.Errorf("the first row came %v before the end of a 2s stream; rows are held back", early)
	}
}

// Cancelling the session's context (what the shell does on Ctrl-C) ends a
// trace promptly and without an error.
func TestTraceEndsOnInterrupt(t *testing.T) {
	root, _ := pinnedProgs(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &commands.Session{PinRoot: root, Ctx: ctx}
	path, args, err := commands.Lookup(commands.All(), []string{"trace"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := path[len(path)-1].Run(s, args)
	if err != nil {
		t.Fatal(err)
	}
	stream, ok := res.(*commands.Stream)
	if !ok || !stream.Live {
		t.Fatalf("trace returned %T, want a live *commands.Stream", res)
	}
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	if err := stream.Each(func([]string, any) error { return nil }); err != nil {
		t.Errorf("interrupted trace: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("trace took %v to notice the interrupt", took)
	}
}

// bench alone times 1000 fresh runs beside the kernel's repeat of
// 100000, in one table whose rows say what was timed and how, and labels
// the per-run figure; repeat's map changes say they cover every run
// (issue items 16 and 6).
func TestRunBenchTableAndMapsAcrossRuns(t *testing.T) {
	root, _ := pinnedProgs(t)
	out := bpfshOK(t, root, "run t/xdp_pass hex "+frameHex+" bench")
	for _, want := range []string{
		"timing    HOW ", "          fresh copy of the input each run (kernel clock)   1000 ",
		"          kernel repeat over one buffer (bpftool prog run)  100000 ",
		"per run   ", " ns: the kernel repeat's average (the program leaves its input alone, so it is the same path)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " 1 fresh runs") || strings.Contains(out, "caveat") || strings.Contains(out, "warning") {
		t.Errorf("bench alone:\n%s", out)
	}

	out = bpfshOK(t, root, "run t/xdp_count hex "+frameHex+" repeat 10; map lookup t/hits key 17", "-j")
	var o struct {
		MapsRuns int `json:"maps_runs"`
		Maps     []struct {
			Map   string `json:"map"`
			Key   any    `json:"key"`
			After any    `json:"after"`
		} `json:"maps_changed"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var lookup struct {
		Value any `json:"value"`
	}
	if err := dec.Decode(&o); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&lookup); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range o.Maps {
		if m.Map == "hits" && fmt.Sprint(m.Key) == "17" {
			found = true
			if fmt.Sprint(m.After) != fmt.Sprint(lookup.Value) {
				t.Errorf("the run says hits 17 = %v, map lookup says %v", m.After, lookup.Value)
			}
		}
	}
	if !found || o.MapsRuns != 11 {
		t.Errorf("maps_runs %d, changes %+v; want 11 runs and hits 17", o.MapsRuns, o.Maps)
	}
	text := bpfshOK(t, root, "run t/xdp_count hex "+frameHex+" repeat 10")
	if !strings.Contains(text, "maps      the changes below are across all 11 runs (the run shown, 10 fresh timed runs); the packet and trace above are the first run's\n") {
		t.Errorf("repeat 10 does not say which runs the map changes cover:\n%s", text)
	}
}
