// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/fixture"
)

func sockmapProgs(t *testing.T) *fixture.SockmapObjects {
	t.Helper()
	bpftest.RequireRoot(t)
	var s fixture.SockmapObjects
	if err := fixture.LoadSockmapObjects(&s, nil); err != nil {
		t.Fatalf("load sockmap fixture: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &s
}

func TestHarnessSkSKB(t *testing.T) {
	s := sockmapProgs(t)
	cases := []struct {
		payload, verdict string
		to               int
		ingress          bool
		summary          string
	}{
		{"2hello", "redirected", 2, false, "redirected to key 2 (egress): sent out of key 2's socket, its peer received 6 bytes"},
		{"ihello", "redirected", 1, true, "redirected to key 1 (ingress): key 1's socket received 6 bytes in its own receive queue"},
		{"xhello", "passed", 0, false, "passed up to the original receiver: key 0's socket received 6 bytes"},
		{"dhello", "dropped", 0, false, "dropped: none of the 6 bytes reached any socket"},
	}
	for _, c := range cases {
		o, err := Run(Options{Program: s.SkbRoute, Data: []byte(c.payload)})
		if err != nil {
			t.Fatalf("%s: %v", c.payload, err)
		}
		l := o.Live
		if l == nil || l.Verdict != c.verdict || l.To != c.to || l.Ingress != c.ingress || l.Summary != c.summary {
			t.Errorf("%s: %+v; want %s to %d (ingress %v): %q", c.payload, l, c.verdict, c.to, c.ingress, c.summary)
			continue
		}
		if o.RetvalName != c.verdict || l.Map != "socks" || l.Attach != "sk_skb_stream_verdict" || l.Sent != 6 {
			t.Errorf("%s: outcome %q map %s attach %s sent %d", c.payload, o.RetvalName, l.Map, l.Attach, l.Sent)
		}
		for _, a := range l.Arrivals {
			if string(a.Data) != c.payload {
				t.Errorf("%s: key %d %s received %q", c.payload, a.Key, a.Side, a.Data)
			}
		}
		// The verdict usually runs on the sending thread (loopback); its
		// line is there unless a softirq thread ran it.
		if len(o.Trace) > 0 && o.Trace[0].Text != "skb_route first="+c.payload[:1] {
			t.Errorf("%s: trace %v", c.payload, o.Trace)
		}
	}
	// Everything is cleaned up: no socket left in the map, nothing attached.
	var v uint64
	for k := range uint32(4) {
		if err := s.Socks.Lookup(k, &v); err == nil {
			t.Errorf("key %d still holds a socket", k)
		}
	}
	if ids, err := attachedTo(s.Socks, ebpf.AttachSkSKBStreamVerdict); err != nil || len(ids) != 0 {
		t.Errorf("still attached: %v %v", ids, err)
	}
}

func TestHarnessSkMsg(t *testing.T) {
	s := sockmapProgs(t)
	cases := []struct{ payload, verdict, summary string }{
		{"3abc", "redirected", "redirected to key 3 (egress): sent out of key 3's socket, its peer received 4 bytes"},
		{"xabc", "passed", "passed: key 0's peer received 4 bytes, as sent"},
		{"dabc", "dropped", "dropped: the send failed"},
	}
	for _, c := range cases {
		o, err := Run(Options{Program: s.MsgRoute, Data: []byte(c.payload)})
		if err != nil {
			t.Fatalf("%s: %v", c.payload, err)
		}
		if l := o.Live; l.Verdict != c.verdict || !strings.HasPrefix(l.Summary, c.summary) || l.Attach != "sk_msg_verdict" || l.Map != "msg_socks" {
			t.Errorf("%s: %+v, want %q", c.payload, l, c.summary)
		}
	}
}

func TestHarnessRefusals(t *testing.T) {
	s := sockmapProgs(t)
	wantErr(t, Options{Program: s.SkbRoute}, "live sockmap harness instead: give the payload to send")
	wantErr(t, Options{Program: s.SkbRoute, Data: []byte("x"), Repeat: 3}, "repeat, bench, cpu, flags, live and ctx do not apply")
	wantErr(t, Options{Program: s.SkbRoute, Data: []byte("x"), Harness: HarnessOptions{From: 4}}, "from key 4: the sockets are at keys 0..3")
	wantErr(t, Options{Program: s.SkbRoute, Data: []byte("x"), Harness: HarnessOptions{Map: s.Socks, Sockets: 5}}, "5 sockets: map socks holds 4")
	p := progs(t)
	wantErr(t, Options{Program: s.SkbRoute, Data: []byte("x"), Harness: HarnessOptions{Map: p.Hits}}, "map hits is a hash, not a sockmap or sockhash")
}

func TestProgStreams(t *testing.T) {
	bpftest.RequireRoot(t)
	if err := StreamWritesWork(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	var st fixture.StreamObjects
	if err := fixture.LoadStreamObjects(&st, nil); err != nil {
		t.Skipf("skipped: the bpf_stream_vprintk_impl kfunc does not load here: %v", err)
	}
	defer st.Close()
	o := mustRun(t, Options{Program: st.XdpStream, Data: udpFrame("stream")})
	want := []StreamLine{{"stdout", "xdp_stream len=48"}, {"stderr", "xdp_stream to stderr 48"}}
	if len(o.Streams) != 2 || o.Streams[0] != want[0] || o.Streams[1] != want[1] {
		t.Errorf("streams %+v, want %+v", o.Streams, want)
	}
	// trace prog: what the program writes while the stream is read.
	// A bare test run, which leaves the streams for TraceProg to read.
	go func() {
		time.Sleep(100 * time.Millisecond)
		progTestRun(&rawRun{fd: st.XdpStream.FD(), dataIn: udpFrame("streaming"), repeat: 1})
	}()
	var got []StreamLine
	err := TraceProg(context.Background(), st.XdpStream, 600*time.Millisecond, func(l StreamLine) error {
		got = append(got, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Text != "xdp_stream len=51" || got[1].Stream != "stderr" {
		t.Errorf("trace prog saw %+v", got)
	}
}
