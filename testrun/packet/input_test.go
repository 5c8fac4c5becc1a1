// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// writeCapture writes packets to a pcap (ng false) or pcapng file.
func writeCapture(t *testing.T, ng bool, link layers.LinkType, packets ...[]byte) string {
	t.Helper()
	var buf bytes.Buffer
	ci := func(p []byte) gopacket.CaptureInfo {
		return gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, 0), CaptureLength: len(p), Length: len(p), InterfaceIndex: 0}
	}
	if ng {
		w, err := pcapgo.NewNgWriter(&buf, link)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range packets {
			if err := w.WritePacket(ci(p), p); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	} else {
		w := pcapgo.NewWriter(&buf)
		if err := w.WriteFileHeader(65536, link); err != nil {
			t.Fatal(err)
		}
		for _, p := range packets {
			if err := w.WritePacket(ci(p), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "capture")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInputForms(t *testing.T) {
	first := MustBuild(`Ether()/IPv4()/UDP()/Raw("first")`)
	second := MustBuild(`Ether()/IPv4()/UDP()/Raw("second")`)
	ipOnly := MustBuild(`IPv6()/UDP()/Raw("raw ip")`)
	bin := filepath.Join(t.TempDir(), "frame.bin")
	if err := os.WriteFile(bin, first, 0o644); err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{
		"p":   &Packet{Data: second, First: "Ether", Source: "Ether()/IPv4()/UDP()/Raw(\"second\")"},
		"raw": []byte{1, 2, 3},
	}
	cases := []struct {
		words []string
		data  []byte
		first string
	}{
		{[]string{"hex", "00", "11", "22"}, []byte{0, 0x11, 0x22}, "Ether"},
		{[]string{"hex", "001122", "0x33"}, []byte{0, 0x11, 0x22, 0x33}, "Ether"},
		{[]string{"@" + bin}, first, "Ether"},
		{[]string{"@" + writeCapture(t, false, layers.LinkTypeEthernet, first, second)}, first, "Ether"},
		{[]string{"@" + writeCapture(t, true, layers.LinkTypeEthernet, first, second)}, first, "Ether"},
		{[]string{"@" + writeCapture(t, false, layers.LinkTypeRaw, ipOnly)}, ipOnly, "IPv6"},
		{[]string{"$p"}, second, "Ether"},
		{[]string{"$raw"}, []byte{1, 2, 3}, "Ether"},
		{[]string{"Ether()", "/", "IPv4()", "/", "UDP()/Raw(\"first\")"}, first, "Ether"},
		{[]string{"IPv6()/UDP()/Raw(\"raw", "ip\")"}, ipOnly, "IPv6"},
	}
	for _, c := range cases {
		p, err := Input(c.words, vars)
		if err != nil {
			t.Errorf("%q: %v", c.words, err)
			continue
		}
		if !bytes.Equal(p.Data, c.data) || p.First != c.first {
			t.Errorf("%q: got %x starting with %s, want %x starting with %s", c.words, p.Data, p.First, c.data, c.first)
		}
	}
	// The expression is kept for expect packet, and variables keep it too.
	p, err := Input([]string{"Ether()/IPv4(ttl=3)"}, nil)
	if err != nil || p.Expr == nil || p.Expr.Layers[1].Arg("ttl") == nil {
		t.Fatalf("expression not kept: %+v %v", p, err)
	}
	if p.Summary() != "34 bytes: Ether/IPv4" {
		t.Errorf("Summary = %q", p.Summary())
	}
	v, err := Input([]string{"$q"}, map[string]any{"q": p})
	if err != nil || v.Expr != p.Expr || v.Source != "$q" {
		t.Errorf("$q = %+v, %v", v, err)
	}
}

func TestInputErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	noPackets := writeCapture(t, false, layers.LinkTypeEthernet)
	cases := []struct {
		words []string
		msg   string
	}{
		{nil, "no packet given; write a layer expression"},
		{[]string{"hex"}, "hex: no bytes given"},
		{[]string{"hex", "0g"}, `hex: "0g" is not hex`},
		{[]string{"hex", "123"}, `hex: "123" has an odd number of hex digits`},
		{[]string{"@/nonexistent/x.pcap"}, "@/nonexistent/x.pcap: open /nonexistent/x.pcap: no such file or directory"},
		{[]string{"@" + empty}, "the file is empty"},
		{[]string{"@" + noPackets}, "the capture holds no packets"},
		{[]string{"@" + writeCapture(t, false, layers.LinkTypeIEEE802_11, []byte{1, 2})}, "is not Ethernet or raw IP"},
		{[]string{"@x", "y"}, `@x: unexpected "y" after the file name`},
		{[]string{"$nope"}, "$nope: no such variable; keep a packet with let nope = EXPR"},
		{[]string{"$n"}, "$n holds int, not a packet"},
		{[]string{"Ether()", "IPv4()"}, "column 9: expected '/' between layers"},
	}
	for _, c := range cases {
		_, err := Input(c.words, map[string]any{"n": 3})
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: error %v, want %q", c.words, err, c.msg)
		}
	}
	var pe *Error
	if _, err := Input([]string{"Ether(src", "=", "zz)"}, nil); !errors.As(err, &pe) || pe.Col != 13 {
		t.Errorf("column in joined words: %v", err)
	}
}

func TestExpected(t *testing.T) {
	got := Decode(MustBuild(`Ether()/IPv4(ttl=9)/UDP()/Raw("x")`), "Ether")
	vars := map[string]any{}
	p, _ := Input([]string{`Ether()/IPv4(ttl=9)`}, nil)
	vars["built"] = p
	vars["bytes"] = MustBuild(`Ether()/IPv4(ttl=9)/UDP()/Raw("y")`)
	cases := []struct {
		words []string
		miss  int
	}{
		{[]string{"Ether()/IPv4(ttl=9,", "chksum=*)"}, 0}, // wildcards are fine: not built
		{[]string{"Ether()/IPv4(ttl=8)"}, 1},
		{[]string{"$built"}, 0},      // only ttl=9 is compared
		{[]string{"$bytes"}, 2},      // every field: Raw.load and UDP.chksum differ
		{[]string{"hex", "0200"}, 1}, // too short to be an Ether: Raw vs Ether
	}
	for _, c := range cases {
		e, err := Expected(c.words, vars)
		if err != nil {
			t.Errorf("%q: %v", c.words, err)
			continue
		}
		if m := Match(e, got); len(m) != c.miss {
			t.Errorf("%q: %d mismatches %v, want %d", c.words, len(m), m, c.miss)
		}
	}
}
