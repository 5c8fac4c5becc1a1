// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	data := MustBuild(`Ether()/IPv4(ttl=64)/UDP(sport=40000, dport=7777)/Raw("pong")`)
	got := Decode(data, "Ether")
	cases := []struct {
		want string
		miss []string // Mismatch strings, in order; none means a match
	}{
		{`Ether()/IPv4()/UDP()/Raw()`, nil},
		{`Ether()/IPv4()`, nil}, // layers after the last one written are not compared
		{`Ether()/IPv4(ttl=64, chksum=*)/UDP(dport=7777)/Raw("pong")`, nil},
		{`Ether(dst=*, src=*, type=*)/IPv4(src=*, dst=*, len=*, id=*)/UDP(chksum=*)`, nil},
		{`Ether()/IPv4(ttl=0x40, src=10.0.0.1)/UDP(dport=0x1e61)/Raw(hex=706f6e67)`, nil},
		{`Ether(pad=true)/IPv4()`, nil}, // build options are not compared
		{`Ether()/IPv4(ttl=63)/UDP()`, []string{"IPv4.ttl: want 63, got 64"}},
		{`Ether()/IPv4(ttl=63, dst=10.0.0.9)/UDP(dport=53)`, []string{"IPv4.ttl: want 63, got 64", "IPv4.dst: want 10.0.0.9, got 10.0.0.2", "UDP.dport: want 53, got 7777"}},
		{`Ether()/IPv4()/UDP()/Raw("ping")`, []string{`Raw.load: want "ping", got "pong"`}},
		{`Ether()/IPv4()/TCP()`, []string{"layer 3: want TCP, got UDP"}},
		{`Ether()/IPv4()/UDP()/Raw()/Raw()`, []string{"layer 5: want Raw, got the packet ends after Raw"}},
		{`Ether()/IPv4(options=*)`, nil},
		{`Ether()/IPv4(options="")`, nil}, // an absent field compares as its zero value
		{`Ether()/IPv4(options=0x01)`, []string{`IPv4.options: want 0x01000000, got ""`}},
	}
	for _, c := range cases {
		e, err := Parse(c.want)
		if err != nil {
			t.Fatalf("%s: %v", c.want, err)
		}
		var ms []string
		for _, m := range Match(e, got) {
			ms = append(ms, m.String())
		}
		if strings.Join(ms, "\n") != strings.Join(c.miss, "\n") {
			t.Errorf("Match(%s):\n got %q\nwant %q", c.want, ms, c.miss)
		}
	}
	// A wildcard still needs its layer.
	e, _ := Parse(`Ether()/IPv6(hlim=*)`)
	if m := Match(e, got); len(m) != 1 || m[0].Field != "" || m[0].Want != "IPv6" || m[0].Got != "IPv4" {
		t.Errorf("IPv6(hlim=*) against IPv4: %+v", m)
	}
	// TCP flags and options compare in canonical form.
	tcp := Decode(MustBuild(`Ether()/IPv4()/TCP(flags=SA, options=[mss=1460, sack_ok])`), "Ether")
	for _, w := range []string{`Ether()/IPv4()/TCP(flags=AS)`, `Ether()/IPv4()/TCP(flags=SYN|ACK, options=[MSS=0x5b4, sack_ok])`} {
		e, _ := Parse(w)
		if m := Match(e, tcp); m != nil {
			t.Errorf("%s: %v", w, m)
		}
	}
	e, _ = Parse(`Ether()/IPv4()/TCP(flags=S, options=[mss=1400])`)
	if m := Match(e, tcp); len(m) != 2 || m[0].String() != "TCP.flags: want S, got SA" || m[1].String() != "TCP.options: want [mss=1400], got [mss=1460, sack_ok]" {
		t.Errorf("mismatches: %v", m)
	}
}

func TestDiff(t *testing.T) {
	in := Decode(MustBuild(`Ether()/IPv4(ttl=64)/UDP()/Raw("ping")`), "Ether")
	out := Decode(MustBuild(`Ether(src=02:00:00:00:00:02, dst=02:00:00:00:00:01)/IPv4(ttl=63)/UDP()/Raw("ping")`), "Ether")
	d := Diff(in, out)
	changed := map[string]bool{}
	for _, l := range d {
		for _, f := range l.Fields {
			if f.Changed {
				changed[l.Name+"."+f.Name] = true
			}
		}
	}
	want := map[string]bool{"Ether.src": true, "Ether.dst": true, "IPv4.ttl": true, "IPv4.chksum": true}
	if len(changed) != len(want) {
		t.Errorf("changed fields %v, want %v", changed, want)
	}
	for k := range want {
		if !changed[k] {
			t.Errorf("%s not marked changed", k)
		}
	}
	if len(d) != 4 || !d[0].Changed || !d[1].Changed || d[2].Changed || d[3].Changed {
		t.Errorf("layer changes: %+v", d)
	}
	text := FormatDiff(d)
	for _, line := range []string{"*   ttl      64 -> 63", "    sport    40000", "  UDP", "* IPv4"} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("FormatDiff lacks %q:\n%s", line, text)
		}
	}

	// A program that strips an outer header: the layers around it pair up.
	encap := Decode(MustBuild(`Ether()/IPv4(src=192.0.2.1)/IPv4()/UDP()/Raw("x")`), "Ether")
	decap := Decode(MustBuild(`Ether()/IPv4()/UDP()/Raw("x")`), "Ether")
	d = Diff(encap, decap)
	var shape []string
	for _, l := range d {
		s := l.Name
		switch {
		case l.Out == nil:
			s = "-" + s
		case l.In == nil:
			s = "+" + s
		case l.Changed:
			s = "*" + s
		}
		shape = append(shape, s)
	}
	if got := strings.Join(shape, " "); got != "Ether *IPv4 -IPv4 UDP Raw" && got != "Ether -IPv4 *IPv4 UDP Raw" {
		t.Errorf("decap diff: %s\n%s", got, FormatDiff(d))
	}
	// Identical packets: nothing changed.
	for _, l := range Diff(in, in) {
		if l.Changed {
			t.Errorf("%s changed against itself", l.Name)
		}
	}
}
