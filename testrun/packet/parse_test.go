// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestErrorsPointAtTheColumn checks that every malformed expression gets
// one line naming the column and what was expected there.
func TestErrorsPointAtTheColumn(t *testing.T) {
	cases := []struct {
		expr string
		col  int
		msg  string
	}{
		{`Ether(src 02:00:00:00:00:01)/IPv4()`, 11, `expected '=' after field name "src", found "02:00:00:00:00:01"`},
		{`Ether()/IPv4(src=10.0.0.1, dst 10.0.0.2)`, 32, `expected '=' after field name "dst"`},
		{`Ehter()/IPv4()`, 1, `unknown layer "Ehter"; did you mean Ether?`},
		{`Ether()/Ipv5()`, 9, `unknown layer "Ipv5"; did you mean IPv4?`},
		{`eth/ipv4()`, 1, `unknown layer "eth"; did you mean Ether?`},
		{`Ether()/Frobnicate()`, 9, `unknown layer "Frobnicate"; layers are Ether, `},
		{`Ether()/IPv4(ttl=300)`, 18, `IPv4.ttl: 300 does not fit in 8 bits (0..255)`},
		{`Ether()/IPv4(ttl=0x1ff)`, 18, `IPv4.ttl: 0x1ff does not fit in 8 bits`},
		{`Ether()/IPv4(sorce=10.0.0.1)`, 14, `IPv4 has no field "sorce"; did you mean src?`},
		{`Ether()/IPv4(xyzzy=1)`, 14, `IPv4 has no field "xyzzy"; its fields are version, ihl,`},
		{`Ether()/`, 9, `expected a layer after '/'`},
		{`Ether() IPv4()`, 9, `expected '/' between layers or the end, found "IPv4"`},
		{`Ether(`, 7, `expected ')' to close Ether( opened at column 1`},
		{`Ether(src=02:00:00:00:00:01`, 28, `expected ',' or ')' to close Ether( opened at column 1`},
		{`Ether(src=)`, 11, `expected a value for Ether.src, found ')'`},
		{`Raw("abc`, 5, `unterminated string; close it with "`},
		{`Raw("a\qb")`, 7, `unknown escape \q`},
		{`IPv4(64)`, 6, `expected field=value in IPv4(...), found "64"`},
		{`Ether(src=zz)`, 11, `Ether.src: "zz" is not a MAC address (like 02:00:00:00:00:01)`},
		{`IPv4(src=fd00::1)`, 10, `IPv4.src: "fd00::1" is not an IPv4 address`},
		{`IPv6(src=10.0.0.1)`, 10, `IPv6.src: "10.0.0.1" is not an IPv6 address`},
		{`IPv4(ttl=1 src=1.2.3.4)`, 12, `expected ',' or ')' after ttl=1, found "src"`},
		{`IPv4(ttl=1, ttl=2)`, 13, `IPv4.ttl is given twice`},
		{`IPv4(ttl=[1])`, 10, `IPv4.ttl: expected a number, found a list`},
		{`IPv4(ttl="64")`, 10, `IPv4.ttl: expected a number, found the string "64"`},
		{`IPv4(flags=XF)`, 12, `IPv4.flags: unknown flag "XF"; flags are DF, MF, RF, evil`},
		{`TCP(flags=SX)`, 11, `TCP.flags: unknown flag "SX"; write the letters FSRPAUECN (SA)`},
		{`TCP(options=[foo])`, 13, `TCP.options: unknown TCP option foo`},
		{`TCP(options=[ts=1])`, 13, `TCP.options: ts=1: wrong number of values; write ts=(value, echo)`},
		{`TCP(options=[mss=70000])`, 13, `TCP.options: mss: 70000 does not fit in 16 bits`},
		{`Raw(ping)`, 5, `Raw.load: "ping" is not hex bytes: use the digits 0-9 and a-f; quote text: "..."`},
		{`Raw(hex=0g)`, 9, `Raw.hex: "0g" is not hex`},
		{`ICMP(type=echo)`, 11, `ICMP.type: "echo" is not a number or one of dest-unreach, echo-reply, echo-request`},
		{`Ether(pad=maybe)`, 11, `Ether.pad: "maybe" is not true or false`},
		{``, 1, `empty packet; write layers such as Ether()/IPv4()/UDP()/Raw("ping")`},
		{`123`, 1, `expected a layer name such as Ether, IPv4 or UDP, found "123"`},
		{`Ether()//IPv4()`, 9, `expected a layer name such as Ether, IPv4 or UDP, found '/'`},
		{`Padding(2)/Raw()`, 12, `Padding must come after every other layer`},
		{`TCP(options=[mss=1460)`, 22, `expected ',' or ']' after mss=1460, found ')'`},
		// Errors only building can find still point at the field or layer.
		{`Ether()/IPv4(chksum=*)/UDP()`, 21, `IPv4.chksum: '*' matches any value in expect packet; give a value to build a packet`},
		{`Ether()/UDP()`, 1, `Ether.type: no type value announces UDP after Ether: did you mean Ether()/IPv4()/UDP()? (or write type=N to put UDP there anyway)`},
		{`Ether()/IPv6()/ICMP()`, 9, `IPv6.nh: no nh value announces ICMP after IPv6: did you mean ICMPv6()? (or write nh=N to put ICMP there anyway)`},
		{`UDP(dport=53)`, 1, `UDP.chksum: no IPv4 or IPv6 layer below UDP to compute it from; write chksum=N`},
		{`Ether()/IPv4()/ICMPv6()`, 9, `IPv4.proto: no proto value announces ICMPv6 after IPv4: did you mean ICMP()?`},
		{`Ether()/Dot1Q()/TCP()`, 9, `Dot1Q.type: no type value announces TCP after Dot1Q: did you mean Dot1Q()/IPv4()/TCP()?`},
		{`Ether()/TestKV()`, 1, `Ether.type: no type value announces TestKV after Ether; write type=N`},
		{`Ether()/IPv4(proto=58)/ICMPv6()`, 24, `ICMPv6.chksum: no IPv6 layer below ICMPv6`},
		{`Ether()/IPv4(options=0x` + strings.Repeat("01", 41) + `)`, 14, `IPv4.options: 44 bytes, more than the 40 an IPv4 header holds`},
		{`Ether()/IPv4()/Ether(pad=true)`, 22, `Ether.pad: only the outermost Ether pads the frame`},
		{`Ether()/IPv4()/UDP()/Padding(len=1, load=0x00)`, 30, `Padding.len: give load or len, not both`},
		{`Ether()/IPv4()/UDP()/Raw(hex=` + strings.Repeat("00", 65600) + `)`, 16, `UDP.len: 65608 bytes do not fit the 16-bit length`},
		{`Ether()/IPv4()/Raw(hex=` + strings.Repeat("00", 65600) + `)`, 9, `IPv4.len: 65620 bytes do not fit the 16-bit total length`},
		{`Ether()/IPv6()/Raw(hex=` + strings.Repeat("00", 65600) + `)`, 9, `IPv6.plen: 65600 bytes do not fit the 16-bit payload length`},
	}
	for _, c := range cases {
		_, err := Build(c.expr)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%.60s: error %v (%T), want *Error", c.expr, err, err)
			continue
		}
		if pe.Col != c.col || !strings.Contains(pe.Msg, c.msg) {
			t.Errorf("%.60s:\n got column %d: %s\nwant column %d: %s", c.expr, pe.Col, pe.Msg, c.col, c.msg)
		}
		if pe.Expr != c.expr {
			t.Errorf("%.60s: error carries the expression %.60q", c.expr, pe.Expr)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%.60s: error is more than one line: %q", c.expr, err)
		}
	}
}

func TestCaret(t *testing.T) {
	_, err := Parse(`Ether()/IPv4(ttl=300)`)
	want := "Ether()/IPv4(ttl=300)\n                 ^"
	if got := err.(*Error).Caret(); got != want {
		t.Errorf("caret:\n%s\nwant\n%s", got, want)
	}
}

// TestSpellings checks the ways values may be written, and that blanks
// between tokens, case and the shell's joined words do not matter.
func TestSpellings(t *testing.T) {
	same := [][]string{
		{`Ether()/IPv4()/UDP()`, `ether() / ipv4 ( ) / udp`, "Ether()\t/IP()/UDP( )", `Ethernet/IPv4/UDP()`},
		{`Ether()/IPv4(ttl=16)/TCP(flags=SA)`, `Ether()/IPv4(ttl=0x10)/TCP(flags=S|A)`, `Ether()/IPv4(TTL=0b10000)/TCP(flags=SYN|ACK)`, `Ether()/IPv4(ttl=016)/TCP(flags=AS)`, `Ether()/IPv4(ttl=16)/TCP(flags=0x12)`},
		{`Ether()/IPv4(flags=DF)/UDP()`, `Ether()/IPv4(flags=2)/UDP()`, `Ether()/IPv4(flags=df)/UDP()`},
		{`Ether(src=02:AA:00:00:00:01)/IPv6(src=fd00:0::1)`, `Ether(src=02:aa:00:00:00:01)/IPv6(src=FD00::0001)`, `Ether(src=02-aa-00-00-00-01)/IPv6(src=fd00:0:0:0:0:0:0:1)`},
		{`Ether()/Raw("ab\n")`, `Ether()/Raw('ab\n')`, `Ether()/Raw(hex=61620a)`, `Ether()/Raw(0x61620a)`, `Ether()/Raw(load="\x61b\x0a")`, `Ether()/Raw(hex="61620A")`},
		{`Ether()/IPv4()/TCP(options=[mss=1460, nop])`, `Ether()/IPv4()/TCP(options=[ MSS = 0x5b4 , NOP , ])`},
		{`Ether()/IPv4()/ICMP(type=echo-reply)`, `Ether()/IPv4()/ICMP(type=0)`},
		{`Ether()/IPv4(options=0x9404)`, `Ether()/IPv4(options=0x94040000)`},
	}
	for _, group := range same {
		want, err := Build(group[0])
		if err != nil {
			t.Fatalf("%s: %v", group[0], err)
		}
		for _, expr := range group[1:] {
			got, err := Build(expr)
			if err != nil {
				t.Errorf("%s: %v", expr, err)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s builds other bytes than %s", expr, group[0])
			}
		}
	}
}

func TestCanonicalString(t *testing.T) {
	e, err := Parse(`ether(src=02:AA:00:00:00:01)/ip(ttl=0x10, flags=2)/tcp(flags=AS, options=[MSS=1460, ts=(1,2)])/raw(hex=70696e67)`)
	if err != nil {
		t.Fatal(err)
	}
	want := `Ether(src=02:aa:00:00:00:01)/IPv4(ttl=16, flags=DF)/TCP(flags=SA, options=[mss=1460, ts=(1, 2)])/Raw(load="ping")`
	if got := e.String(); got != want {
		t.Errorf("String:\n got %s\nwant %s", got, want)
	}
	if got := e.Summary(); got != "Ether/IPv4/TCP/Raw" {
		t.Errorf("Summary = %s", got)
	}
}
