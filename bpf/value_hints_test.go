// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

var (
	tBe16 = &btf.Typedef{Name: "__be16", Type: tU16}
	tBe32 = &btf.Typedef{Name: "__be32", Type: tU32}
	// A typedef tagged as an address works for every field of its type.
	tAddrT = &btf.Typedef{Name: "my_addr_t", Type: tU32, Tags: []string{"bpfsh:ipv4"}}
	tU8x16 = &btf.Array{Index: tU32, Type: tU8, Nelems: 16}

	// struct wire {
	//	__be32 reqid;                      // network order, not an address
	//	__be16 len;                        // network order
	//	__u16 port;                        // named: a port, network order
	//	__u32 peer __tag("bpfsh:ipv4");    // tagged
	//	__u16 hport __tag("bpfsh:raw");    // named like a port, kept raw
	//	__u8 src_addr[16];                 // an IPv6 address
	//	my_addr_t gw;                      // tagged typedef
	//	__be16 lens[2];                    // elements in network order
	// };
	tWire = &btf.Struct{Name: "wire", Size: 40, Members: []btf.Member{
		{Name: "reqid", Type: tBe32, Offset: 0},
		{Name: "len", Type: tBe16, Offset: 32},
		{Name: "port", Type: tU16, Offset: 48},
		{Name: "peer", Type: tU32, Offset: 64, Tags: []string{"bpfsh:ipv4"}},
		{Name: "hport", Type: tU16, Offset: 96, Tags: []string{"bpfsh:raw"}},
		{Name: "src_addr", Type: tU8x16, Offset: 128},
		{Name: "gw", Type: tAddrT, Offset: 256},
		{Name: "lens", Type: &btf.Array{Index: tU32, Type: tBe16, Nelems: 2}, Offset: 288},
	}}
)

// Addresses and ports show as what they were typed as, and what shows
// reads back to the same bytes; JSON keeps the raw numbers; with raw
// numbers on, everything is the plain host-order number (issue item 10).
func TestAddressesAndPorts(t *testing.T) {
	data := hexBytes(t, "0000002a 0010 9c40 c0a80001 409c 0000 20010db8000000000000000000000001 0a000001 0001 0002")
	text, obj := bpf.FormatValue(data, tWire)
	want := "{reqid: 42, len: 16, port: 40000, peer: 192.168.0.1, hport: 40000, src_addr: 2001:db8::1, gw: 10.0.0.1, lens: [1, 2]}"
	if text != want {
		t.Errorf("text\n got %s\nwant %s", text, want)
	}
	j, _ := json.Marshal(obj)
	if !strings.HasPrefix(string(j), `{"reqid":704643072,"len":4096,"port":16540,"peer":16820416,"hport":40000,"src_addr":[32,1,13,184,`) {
		t.Errorf("JSON keeps the raw numbers: %s", j)
	}
	checkRoundTrip(t, data, tWire)
	back, err := bpf.ParseValue([]string{want}, tWire, len(data))
	if err != nil || string(back) != string(data) {
		t.Errorf("the text parses back to % x (%v), want % x", back, err, data)
	}
	// A number typed into a network-order field means the number on the wire.
	b, err := bpf.ParseValue([]string{"{reqid: 42, len: 0x10, port: 40000}"}, tWire, len(data))
	if err != nil || string(b[:8]) != string(data[:8]) {
		t.Errorf("typed numbers: % x, %v", b[:8], err)
	}

	// A whole key that is a __be32 is an address; one that is a __be16 a number.
	if text, _ := bpf.FormatValue(hexBytes(t, "0a000001"), tBe32); text != "10.0.0.1" {
		t.Errorf("a __be32 key shows as %s", text)
	}
	if text, _ := bpf.FormatValue(hexBytes(t, "1e61"), tBe16); text != "7777" {
		t.Errorf("a __be16 key shows as %s", text)
	}
	if text, _ := bpf.FormatValue(hexBytes(t, "0a000001"), tU32); text != "16777226" {
		t.Errorf("a plain __u32 key shows as %s", text)
	}

	bpf.SetRawNumbers(true)
	defer bpf.SetRawNumbers(false)
	text, _ = bpf.FormatValue(data, tWire)
	if !strings.HasPrefix(text, "{reqid: 704643072, len: 4096, port: 16540, peer: 16820416, hport: 40000, src_addr: [32, 1, 13, 184,") {
		t.Errorf("raw numbers: %s", text)
	}
	checkRoundTrip(t, data, tWire)
}
