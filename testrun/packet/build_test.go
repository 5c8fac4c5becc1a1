// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// refSum is an RFC 1071 checksum written out separately from the code
// under test (and from gopacket), to check the checksums Build computes.
func refSum(chunks ...[]byte) uint16 {
	var all []byte
	for _, c := range chunks {
		all = append(all, c...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint64
	for i := 0; i < len(all); i += 2 {
		s += uint64(all[i])<<8 | uint64(all[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// pseudo is the IPv4 or IPv6 pseudo-header for a transport segment.
func pseudo(src, dst net.IP, proto byte, length int) []byte {
	if v4 := src.To4(); v4 != nil {
		return append(append(append([]byte{}, v4...), dst.To4()...), 0, proto, byte(length>>8), byte(length))
	}
	b := append(append([]byte{}, src.To16()...), dst.To16()...)
	return append(b, 0, 0, byte(length>>8), byte(length), 0, 0, 0, proto)
}

// verifyChecksums recomputes every checksum in an Ethernet frame with
// refSum: a checksum over bytes that include it sums to zero.
func verifyChecksums(t *testing.T, data []byte) {
	t.Helper()
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	// gopacket's own verification, once each transport layer knows the
	// network layer around it.
	var network gopacket.NetworkLayer
	for _, l := range p.Layers() {
		if nl, ok := l.(gopacket.NetworkLayer); ok {
			network = nl
		}
		if tl, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok && network != nil {
			tl.SetNetworkLayerForChecksum(network)
		}
	}
	if err, bad := p.VerifyChecksums(); err != nil || len(bad) > 0 {
		t.Errorf("gopacket finds bad checksums: %v %+v", err, bad)
	}
	var src, dst net.IP
	for _, l := range p.Layers() {
		switch x := l.(type) {
		case *layers.IPv4:
			if refSum(x.Contents) != 0 {
				t.Errorf("IPv4 header checksum %#04x does not verify", x.Checksum)
			}
			src, dst = x.SrcIP, x.DstIP
		case *layers.IPv6:
			src, dst = x.SrcIP, x.DstIP
		case *layers.UDP:
			seg := append(append([]byte{}, x.Contents...), x.Payload...)
			if refSum(pseudo(src, dst, 17, len(seg)), seg) != 0 {
				t.Errorf("UDP checksum %#04x does not verify", x.Checksum)
			}
		case *layers.TCP:
			seg := append(append([]byte{}, x.Contents...), x.Payload...)
			if refSum(pseudo(src, dst, 6, len(seg)), seg) != 0 {
				t.Errorf("TCP checksum %#04x does not verify", x.Checksum)
			}
		case *layers.ICMPv4:
			if refSum(x.Contents, x.Payload) != 0 {
				t.Errorf("ICMP checksum %#04x does not verify", x.Checksum)
			}
		case *layers.ICMPv6:
			seg := append(append([]byte{}, x.Contents...), x.Payload...)
			if refSum(pseudo(src, dst, 58, len(seg)), seg) != 0 {
				t.Errorf("ICMPv6 checksum %#04x does not verify", x.Checksum)
			}
		}
	}
}

// roundTrips lists, for every layer, an expression that writes each of
// its fields with a value other than its default.
var roundTrips = []struct {
	expr   string
	layers string
}{
	{`Ether(dst=aa:bb:cc:dd:ee:ff, src=02:11:22:33:44:55, type=0x1234)/Raw("x")`, "Ether/Raw"},
	{`Ether()/Dot1Q(prio=5, dei=1, vlan=4094)/Dot1Q(vlan=7)/IPv4()/UDP()`, "Ether/Dot1Q/Dot1Q/IPv4/UDP"},
	{`Ether()/IPv4(version=4, tos=0xb8, id=0xbeef, flags=DF|MF, frag=0, ttl=3, src=192.0.2.1, dst=198.51.100.7, options=0x94040000)/UDP(sport=1, dport=65535)/Raw("hello\r\n")`, "Ether/IPv4/UDP/Raw"},
	{`Ether()/IPv6(tc=0x2e, fl=0xabcde, hlim=1, src=2001:db8::1, dst=2001:db8:0:1::ff)/UDP(sport=53, dport=5353)/Raw(hex=00ff00ff)`, "Ether/IPv6/UDP/Raw"},
	{`Ether()/IPv4()/TCP(sport=1234, dport=443, seq=4294967295, ack=7, flags=SA, window=65535, urg=9, options=[mss=1460, sack_ok, ts=(1, 2), nop, wscale=7])/Raw("GET / HTTP/1.0\r\n\r\n")`, "Ether/IPv4/TCP/Raw"},
	{`Ether()/IPv6()/TCP(flags=F|P|A|U|E|C|N, reserved=5, options=[nop, nop, sack=(1, 2, 3, 4), opt=(30, 0x0102), eol])`, "Ether/IPv6/TCP"},
	{`Ether()/IPv4()/ICMP(type=echo-reply, code=0, id=77, seq=9)/Raw("abcdefgh")`, "Ether/IPv4/ICMP/Raw"},
	{`Ether()/IPv4()/ICMP(type=dest-unreach, code=3)/IPv4(ttl=1)/UDP()`, "Ether/IPv4/ICMP/IPv4/UDP"},
	{`Ether()/IPv4()/ICMP(type=time-exceeded)/IPv4(ttl=1)/TCP()`, "Ether/IPv4/ICMP/IPv4/TCP"},
	{`Ether()/IPv6()/ICMPv6(type=echo-request, id=1, seq=2)/Raw("ping")`, "Ether/IPv6/ICMPv6/Raw"},
	{`Ether()/IPv4()/IPv4(src=172.16.0.1)/UDP()/Raw("tunnelled")`, "Ether/IPv4/IPv4/UDP/Raw"},
	{`Ether()/IPv4(flags=MF, frag=185)/Raw("fragment")`, "Ether/IPv4/Raw"},
	{`Ether(pad=true)/IPv4()/UDP()`, "Ether/IPv4/UDP/Padding"},
	{`Ether()/IPv4()/UDP()/Raw("x")/Padding(load=0xdeadbeef)`, "Ether/IPv4/UDP/Raw/Padding"},
}

func TestBuildDecodeRoundTrip(t *testing.T) {
	for _, c := range roundTrips {
		t.Run(c.layers, func(t *testing.T) {
			e, err := Parse(c.expr)
			if err != nil {
				t.Fatal(err)
			}
			data, err := e.Build()
			if err != nil {
				t.Fatal(err)
			}
			got := Decode(data, "Ether")
			if s := Summary(got); s != c.layers {
				t.Fatalf("decoded as %s, want %s\n%s", s, c.layers, Dump(data, got))
			}
			// Every field written reads back with the value written.
			if m := Match(e, got); m != nil {
				t.Errorf("decoded fields differ from the expression: %v\n%s", m, Dump(data, got))
			}
			// No field carries a note (a bad checksum, a bad length).
			for _, l := range got {
				for _, f := range l.Fields {
					if f.Note != "" {
						t.Errorf("%s.%s: %s", l.Name, f.Name, f.Note)
					}
				}
				if l.Note != "" {
					t.Errorf("%s: %s", l.Name, l.Note)
				}
			}
			verifyChecksums(t, data)
			// The decoded form, every field written out, builds the same bytes.
			again, err := Build(Format(got))
			if err != nil {
				t.Fatalf("Format(Decode) does not build: %v\n%s", err, Format(got))
			}
			if !bytes.Equal(again, data) {
				t.Errorf("Format(Decode) builds other bytes:\n%s\nwant\n%s", Hexdump(again), Hexdump(data))
			}
		})
	}
}

// TestFieldsAgreeWithGopacket checks the bytes with gopacket's decoders,
// which know nothing of bpfsh's layer code.
func TestFieldsAgreeWithGopacket(t *testing.T) {
	data := MustBuild(`Ether(src=02:00:00:00:00:0a, dst=02:00:00:00:00:0b)/Dot1Q(prio=3, vlan=100)/IPv4(tos=4, id=9, flags=DF, ttl=17, src=10.1.2.3, dst=10.4.5.6)/TCP(sport=1111, dport=2222, seq=100, ack=200, flags=PA, window=300, urg=0, options=[mss=1400, nop, wscale=2])/Raw("data")`)
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	if p.ErrorLayer() != nil {
		t.Fatalf("gopacket cannot decode: %v", p.ErrorLayer().Error())
	}
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	q := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	checks := []struct {
		name      string
		got, want any
	}{
		{"eth.src", eth.SrcMAC.String(), "02:00:00:00:00:0a"},
		{"eth.dst", eth.DstMAC.String(), "02:00:00:00:00:0b"},
		{"eth.type", eth.EthernetType, layers.EthernetTypeDot1Q},
		{"vlan", q.VLANIdentifier, uint16(100)},
		{"prio", q.Priority, uint8(3)},
		{"dot1q.type", q.Type, layers.EthernetTypeIPv4},
		{"tos", ip.TOS, uint8(4)},
		{"id", ip.Id, uint16(9)},
		{"flags", ip.Flags, layers.IPv4DontFragment},
		{"ttl", ip.TTL, uint8(17)},
		{"proto", ip.Protocol, layers.IPProtocolTCP},
		{"ip.len", ip.Length, uint16(len(data) - 18)},
		{"ip.src", ip.SrcIP.String(), "10.1.2.3"},
		{"sport", tcp.SrcPort, layers.TCPPort(1111)},
		{"seq", tcp.Seq, uint32(100)},
		{"ack", tcp.Ack, uint32(200)},
		{"psh", tcp.PSH && tcp.ACK && !tcp.SYN, true},
		{"window", tcp.Window, uint16(300)},
		{"dataofs", tcp.DataOffset, uint8(7)},
		{"mss", binary.BigEndian.Uint16(tcp.Options[0].OptionData), uint16(1400)},
		{"wscale", tcp.Options[2].OptionData[0], byte(2)},
		{"payload", string(tcp.Payload), "data"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: gopacket reads %v, want %v", c.name, c.got, c.want)
		}
	}
	verifyChecksums(t, data)
}

func TestDefaults(t *testing.T) {
	udp := MustBuild(`Ether()/IPv4()/UDP()`)
	want := "02000000000202000000000108004500001c0001000040116" // up to the IPv4 checksum
	if got := hex.EncodeToString(udp); !strings.HasPrefix(got, want) {
		t.Errorf("Ether()/IPv4()/UDP() = %s, want prefix %s", got, want)
	}
	if len(udp) != 14+20+8 {
		t.Errorf("Ether()/IPv4()/UDP() is %d bytes, want 42 (no padding)", len(udp))
	}
	checks := []struct {
		expr  string
		field string // Layer.field
		want  string
	}{
		{`Ether()`, "Ether.type", "0x88b5"},
		{`Ether()/IPv4()`, "Ether.type", "0x0800"},
		{`Ether()/IPv6()`, "Ether.type", "0x86dd"},
		{`Ether()/Dot1Q()/IPv4()`, "Ether.type", "0x8100"},
		{`Ether()/Dot1Q()/IPv4()`, "Dot1Q.vlan", "1"},
		{`Ether()/IPv4()`, "IPv4.proto", "0"},
		{`Ether()/IPv4()/UDP()`, "IPv4.proto", "17"},
		{`Ether()/IPv4()/TCP()`, "IPv4.proto", "6"},
		{`Ether()/IPv4()/ICMP()`, "IPv4.proto", "1"},
		{`Ether()/IPv4()/UDP()`, "IPv4.ttl", "64"},
		{`Ether()/IPv4()/UDP()`, "IPv4.src", "10.0.0.1"},
		{`Ether()/IPv4()/UDP()`, "IPv4.dst", "10.0.0.2"},
		{`Ether()/IPv4()/UDP()`, "IPv4.len", "28"},
		{`Ether()/IPv4()/UDP()`, "UDP.sport", "40000"},
		{`Ether()/IPv4()/UDP()`, "UDP.dport", "7777"},
		{`Ether()/IPv4()/UDP()/Raw("ping")`, "UDP.len", "12"},
		{`Ether()/IPv4()/TCP()`, "TCP.flags", "S"},
		{`Ether()/IPv4()/TCP()`, "TCP.dport", "80"},
		{`Ether()/IPv4()/TCP()`, "TCP.window", "8192"},
		{`Ether()/IPv4()/TCP()`, "TCP.dataofs", "5"},
		{`Ether()/IPv4(options=0x01)/TCP()`, "IPv4.ihl", "6"},
		{`Ether()/IPv6()`, "IPv6.nh", "59"},
		{`Ether()/IPv6()/UDP()`, "IPv6.nh", "17"},
		{`Ether()/IPv6()/ICMPv6()`, "IPv6.nh", "58"},
		{`Ether()/IPv6()/UDP()/Raw("ab")`, "IPv6.plen", "10"},
		{`Ether()/IPv6()/UDP()`, "IPv6.src", "fd00::1"},
		{`Ether()/IPv6()/UDP()`, "IPv6.hlim", "64"},
		{`Ether()/IPv4()/ICMP()`, "ICMP.type", "echo-request"},
		{`Ether()/IPv6()/ICMPv6()`, "ICMPv6.type", "echo-request"},
	}
	for _, c := range checks {
		data, err := Build(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if got := fieldOf(t, Decode(data, "Ether"), c.field); got != c.want {
			t.Errorf("%s: %s = %s, want %s", c.expr, c.field, got, c.want)
		}
		verifyChecksums(t, data)
	}
}

// fieldOf finds "Layer.field" (the first such layer) in decoded layers.
func fieldOf(t *testing.T, ls []Layer, name string) string {
	t.Helper()
	layer, field, _ := strings.Cut(name, ".")
	for _, l := range ls {
		if l.Name == layer {
			if f := l.Field(field); f != nil {
				return f.Value
			}
		}
	}
	t.Errorf("no %s in %s", name, Summary(ls))
	return ""
}

// TestGivenValuesKept checks that lengths and checksums written are sent
// as typed, and that decoding then flags the wrong ones with the right
// value.
func TestGivenValuesKept(t *testing.T) {
	right := MustBuild(`Ether()/IPv4()/UDP()/Raw("ping")`)
	data := MustBuild(`Ether()/IPv4(len=1000, chksum=0x1234)/UDP(len=3, chksum=0xbeef)/Raw("ping")`)
	if len(data) != len(right) {
		t.Fatalf("given lengths changed the packet's size: %d bytes, want %d", len(data), len(right))
	}
	for _, c := range []struct {
		name string
		off  int
		want uint16
	}{{"IPv4.len", 16, 1000}, {"IPv4.chksum", 24, 0x1234}, {"UDP.len", 38, 3}, {"UDP.chksum", 40, 0xbeef}} {
		if got := binary.BigEndian.Uint16(data[c.off:]); got != c.want {
			t.Errorf("%s = %d, want %d as given", c.name, got, c.want)
		}
	}
	ls := Decode(data, "Ether")
	if !strings.Contains(ls[1].Note, "truncated") {
		t.Errorf("IPv4 len 1000 in a 32-byte datagram not flagged: %q", ls[1].Note)
	}
	if n := ls[2].Field("len").Note; n != "shorter than the 8-byte header" {
		t.Errorf("UDP len 3 noted %q", n)
	}
	// The IPv4 note names the checksum the header as sent needs.
	note := ls[1].Field("chksum").Note
	want, ok := strings.CutPrefix(note, "bad checksum, want ")
	if !ok {
		t.Fatalf("IPv4 chksum 0x1234 noted %q", note)
	}
	fixed := MustBuild(`Ether()/IPv4(len=1000, chksum=` + want + `)/UDP(len=3, chksum=0xbeef)/Raw("ping")`)
	if refSum(fixed[14:34]) != 0 {
		t.Errorf("the checksum the note asks for, %s, does not verify", want)
	}
	if ls[2].Field("chksum").Note == "" {
		t.Errorf("UDP chksum 0xbeef not flagged")
	}

	// A checksum of 0 given for UDP is "none", kept as 0 rather than 0xffff.
	zero := MustBuild(`Ether()/IPv4()/UDP(chksum=0)/Raw("x")`)
	if got := binary.BigEndian.Uint16(zero[40:42]); got != 0 {
		t.Errorf("UDP chksum=0 sent as %#x", got)
	}
	if n := Decode(zero, "Ether")[2].Field("chksum").Note; n != "none" {
		t.Errorf("UDP chksum 0 over IPv4 noted %q, want none", n)
	}

	// TCP, ICMP and ICMPv6 checksums and TCP dataofs given are kept and
	// flagged; the values the notes ask for verify.
	bad := MustBuild(`Ether()/IPv4()/TCP(dataofs=6, chksum=0x1)/Raw("xxxx")`)
	if bad[14+20+12]>>4 != 6 || binary.BigEndian.Uint16(bad[14+20+16:]) != 1 {
		t.Errorf("TCP dataofs/chksum not kept: % x", bad[34:])
	}
	for _, c := range []struct{ expr, layer, fix string }{
		{`Ether()/IPv4()/TCP(chksum=0x1)/Raw("xxxx")`, "TCP", `Ether()/IPv4()/TCP(chksum=%s)/Raw("xxxx")`},
		{`Ether()/IPv4()/ICMP(chksum=0x1)`, "ICMP", `Ether()/IPv4()/ICMP(chksum=%s)`},
		{`Ether()/IPv6()/ICMPv6(chksum=0x1)`, "ICMPv6", `Ether()/IPv6()/ICMPv6(chksum=%s)`},
	} {
		ls := Decode(MustBuild(c.expr), "Ether")
		note := ls[2].Field("chksum").Note
		want, ok := strings.CutPrefix(note, "bad checksum, want ")
		if !ok {
			t.Errorf("%s: chksum noted %q", c.expr, note)
			continue
		}
		verifyChecksums(t, MustBuild(strings.Replace(c.fix, "%s", want, 1)))
	}
}

func TestNoImplicitPadding(t *testing.T) {
	for expr, n := range map[string]int{
		`Ether()`:                      14,
		`Ether()/IPv4()/UDP()`:         42,
		`Ether()/IPv4()/ICMP()`:        42,
		`Ether(pad=false)/Raw("a")`:    15,
		`Ether(pad=true)/IPv4()/UDP()`: 60,
		`Ether(pad=true)/Raw(hex=` + strings.Repeat("00", 100) + `)`: 114,
		`Ether()/IPv4()/UDP()/Padding(4)`:                            46,
		`Ether(pad=true)/IPv4()/UDP()/Padding(4)`:                    60,
	} {
		data, err := Build(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if len(data) != n {
			t.Errorf("%s: %d bytes, want %d", expr, len(data), n)
		}
	}
	// Padding is outside the IPv4 and UDP lengths and their checksums.
	data := MustBuild(`Ether()/IPv4()/UDP()/Padding(4)`)
	ls := Decode(data, "Ether")
	if Summary(ls) != "Ether/IPv4/UDP/Padding" || ls[1].Field("len").Value != "28" || ls[2].Field("len").Value != "8" {
		t.Errorf("padding counted in a length:\n%s", Dump(data, ls))
	}
	verifyChecksums(t, data)
	if got := fieldOf(t, Decode(MustBuild(`Ether(pad=true)/IPv4()/UDP()`), "Ether"), "Padding.load"); got != "0x"+strings.Repeat("00", 18) {
		t.Errorf("pad=true padding = %s, want 18 zero bytes", got)
	}
}

// A layer registered from outside the package (as the kv, cache and proxy
// packages will) builds with defaults from its Bind and decodes back.
func TestRegisteredLayer(t *testing.T) {
	Register(&LayerDef{
		Name:    "TestKV",
		Summary: "a test protocol",
		Fields: []FieldDef{
			{Name: "op", Kind: KindEnum, Bits: 8, Names: map[string]uint64{"GET": 1, "SET": 2}, Default: "GET"},
			{Name: "key", Kind: KindBytes},
		},
		Binds: []Bind{{Lower: "UDP", Field: "dport", Value: 6390}, {Lower: "UDP", Field: "sport", Value: 6390}},
		Build: func(c *BuildContext) (gopacket.SerializableLayer, error) {
			key := c.Bytes("key")
			if len(key) > 255 {
				return nil, c.Errorf("key", "%d bytes, at most 255", len(key))
			}
			return gopacket.Payload(append([]byte{byte(c.Uint("op")), byte(len(key))}, key...)), nil
		},
		Decode: func(data []byte, lower *Layer) (*Decoded, error) {
			if len(data) < 2 || len(data) < 2+int(data[1]) {
				return nil, errShort
			}
			n := int(data[1])
			return &Decoded{HeaderLen: 2 + n, Fields: []FieldValue{
				{Name: "op", Value: uint64(data[0]), Off: 0, Len: 1},
				{Name: "key", Value: data[2 : 2+n], Off: 2, Len: n},
			}}, nil
		},
	})
	data := MustBuild(`Ether()/IPv4()/UDP()/TestKV(op=SET, key="a")`)
	ls := Decode(data, "Ether")
	if Summary(ls) != "Ether/IPv4/UDP/TestKV" {
		t.Fatalf("decoded as %s", Summary(ls))
	}
	if got := ls[2].Field("dport").Value; got != "6390" {
		t.Errorf("UDP dport defaulted to %s, want 6390 from TestKV's Bind", got)
	}
	if got := ls[2].Field("sport").Value; got != "40000" {
		t.Errorf("UDP sport = %s; only the first Bind defaults a field", got)
	}
	if got := ls[3].Field("op").Value + " " + ls[3].Field("key").Value; got != `SET "a"` {
		t.Errorf("TestKV decoded as %s", got)
	}
	// Replies, from the port, decode too.
	reply := MustBuild(`Ether()/IPv4()/UDP(sport=6390, dport=50000)/Raw(hex=0100)`)
	if s := Summary(Decode(reply, "Ether")); s != "Ether/IPv4/UDP/TestKV" {
		t.Errorf("reply decoded as %s", s)
	}
	// Its errors point at the field.
	_, err := Build(`Ether()/IPv4()/UDP()/TestKV(key="` + strings.Repeat("k", 256) + `")`)
	if err == nil || !strings.Contains(err.Error(), "column 29: TestKV.key: 256 bytes, at most 255") {
		t.Errorf("error = %v", err)
	}
	// A Bind may name the lower layer by an alias ("IP" for IPv4).
	Register(&LayerDef{
		Name:       "TestExp",
		Fields:     []FieldDef{{Name: "load", Kind: KindBytes}},
		Positional: "load",
		Binds:      []Bind{{Lower: "ip", Field: "proto", Value: 253}},
		Build: func(c *BuildContext) (gopacket.SerializableLayer, error) {
			return gopacket.Payload(c.Bytes("load")), nil
		},
		Decode: decodeRest,
	})
	exp := MustBuild(`Ether()/IPv4()/TestExp("x")`)
	if ls := Decode(exp, "Ether"); Summary(ls) != "Ether/IPv4/TestExp" || ls[1].Field("proto").Value != "253" {
		t.Errorf("alias Bind: %s", Dump(exp, ls))
	}

	// And the name is taken now.
	defer func() {
		if recover() == nil {
			t.Error("registering TestKV twice did not panic")
		}
	}()
	Register(&LayerDef{Name: "testkv", Build: func(*BuildContext) (gopacket.SerializableLayer, error) { return nil, nil }})
}

var errShort = &Error{Msg: "short"}

// TestFieldKinds covers the kinds the built-in layers do not use, through
// a registered layer: strings, lists of strings, booleans, enums.
func TestFieldKinds(t *testing.T) {
	Register(&LayerDef{
		Name: "TestKinds",
		Fields: []FieldDef{
			{Name: "cmd", Kind: KindString, Default: "PING"},
			{Name: "args", Kind: KindStrings},
			{Name: "quiet", Kind: KindBool},
			{Name: "mode", Kind: KindEnum, Bits: 4, Names: map[string]uint64{"fast": 1, "slow": 2}},
		},
		Build: func(c *BuildContext) (gopacket.SerializableLayer, error) {
			text := c.String("cmd") + " " + strings.Join(c.Strings("args"), ",")
			if c.Bool("quiet") {
				text += " q"
			}
			return gopacket.Payload(append([]byte(text), byte(c.Uint("mode")))), nil
		},
	})
	e, err := Parse(`TestKinds(cmd=GET, args=["a b", c], quiet=yes, mode=slow)`)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.String(); got != `TestKinds(cmd="GET", args=["a b", "c"], quiet=true, mode=slow)` {
		t.Errorf("String = %s", got)
	}
	data, err := e.Build()
	if err != nil || string(data) != "GET a b,c q\x02" {
		t.Errorf("built %q, %v", data, err)
	}
	if data := MustBuild(`TestKinds()`); string(data) != "PING \x00" {
		t.Errorf("defaults built %q", data)
	}
	// A layer with no decoder shows as Raw.
	if ls := Decode(MustBuild(`TestKinds()`), "TestKinds"); Summary(ls) != "Raw" || !strings.Contains(ls[0].Note, "TestKinds has no decoder") {
		t.Errorf("decoded as %s (%s)", Summary(ls), ls[0].Note)
	}
	for expr, msg := range map[string]string{
		`TestKinds(args="a")`:      `TestKinds.args: expected a list of strings such as ["GET", "a"], found "a"`,
		`TestKinds(args=[x=1])`:    `TestKinds.args: x=1 is not a string`,
		`TestKinds(mode=medium)`:   `TestKinds.mode: "medium" is not a number or one of fast, slow`,
		`TestKinds(mode=16)`:       `TestKinds.mode: 16 does not fit in 4 bits`,
		`TestKinds(quiet=perhaps)`: `TestKinds.quiet: "perhaps" is not true or false`,
	} {
		if _, err := Parse(expr); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", expr, err, msg)
		}
	}
	// Malformed definitions are refused when registered.
	for _, d := range []*LayerDef{
		{Name: "bad name", Build: nil},
		{Name: "NoBuild"},
		{Name: "BadDefault", Fields: []FieldDef{{Name: "x", Kind: KindUint, Bits: 4, Default: "99"}}, Build: func(*BuildContext) (gopacket.SerializableLayer, error) { return nil, nil }},
		{Name: "ListNoParse", Fields: []FieldDef{{Name: "x", Kind: KindList}}, Build: func(*BuildContext) (gopacket.SerializableLayer, error) { return nil, nil }},
		{Name: "Dup", Fields: []FieldDef{{Name: "x"}, {Name: "X"}}, Build: func(*BuildContext) (gopacket.SerializableLayer, error) { return nil, nil }},
		{Name: "BadPos", Positional: "nope", Build: func(*BuildContext) (gopacket.SerializableLayer, error) { return nil, nil }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%s) did not panic", d.Name)
				}
			}()
			Register(d)
		}()
	}
}

// A registered layer whose code panics fails the build with an error.
func TestLayerPanicIsAnError(t *testing.T) {
	Register(&LayerDef{
		Name: "TestPanic",
		Build: func(*BuildContext) (gopacket.SerializableLayer, error) {
			return serializeFunc(func(gopacket.SerializeBuffer) error { panic("boom") }), nil
		},
		Decode: func([]byte, *Layer) (*Decoded, error) { panic("boom") },
	})
	if _, err := Build(`TestPanic()`); err == nil || !strings.Contains(err.Error(), "column 1: TestPanic: internal error serializing the layer: boom") {
		t.Errorf("error %v", err)
	}
	if ls := Decode([]byte{1}, "TestPanic"); Summary(ls) != "Raw" || !strings.Contains(ls[0].Note, "internal error in the TestPanic decoder: boom") {
		t.Errorf("decoded %s (%s)", Summary(ls), ls[0].Note)
	}
}
