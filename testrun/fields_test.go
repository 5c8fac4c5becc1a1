// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"encoding/json"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestFieldFormat checks that context fields print as encode reads them
// back: integers of every kind as numbers, network-order ones converted,
// arrays of them as lists, addresses as addresses.
func TestFieldFormat(t *testing.T) {
	u8 := &btf.Int{Name: "unsigned char", Size: 1}
	u16 := &btf.Int{Name: "unsigned short", Size: 2}
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	s32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	be16 := &btf.Typedef{Name: "__be16", Type: &btf.Typedef{Name: "__u16", Type: u16}}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}
	boolean := &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
	enum := &btf.Enum{Name: "proto", Size: 4, Values: []btf.EnumValue{{Name: "UDP", Value: 17}}}
	for _, c := range []struct {
		f        field
		in       []byte
		text     string
		jsonText string
	}{
		{field{Name: "mark", Size: 4, Type: u32}, []byte{42, 0, 0, 0}, "42", "42"},
		{field{Name: "delta", Size: 4, Type: s32}, []byte{0xff, 0xff, 0xff, 0xff}, "-1", "-1"},
		{field{Name: "sport", Size: 2, Type: be16, BigEndian: true}, []byte{0x9c, 0x40}, "40000", "40000"},
		{field{Name: "proto", Size: 4, Type: enum}, []byte{17, 0, 0, 0}, "17", "17"},
		{field{Name: "flag", Size: 1, Type: boolean}, []byte{1}, "1", "1"},
		{field{Name: "cb", Size: 12, Type: &btf.Array{Type: u32, Nelems: 3}}, []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}, "[1, 2, 3]", "[1,2,3]"},
		{field{Name: "ports", Size: 4, Type: &btf.Array{Type: be16, Nelems: 2}}, []byte{0, 80, 0x1f, 0x90}, "[80, 8080]", "[80,8080]"},
		{field{Name: "tag", Size: 2, Type: &btf.Array{Type: char, Nelems: 2}}, []byte{'h', 'i'}, "[104, 105]", "[104,105]"},
		{field{Name: "bytes", Size: 2, Type: &btf.Array{Type: u8, Nelems: 2}}, []byte{1, 2}, "[1, 2]", "[1,2]"},
		{field{Name: "remote_ip4", Size: 4, Type: u32}, []byte{10, 0, 0, 1}, "10.0.0.1", `"10.0.0.1"`},
		{field{Name: "remote_ip6", Size: 16, Type: &btf.Array{Type: u32, Nelems: 4}}, []byte{15: 1}, "::1", `"::1"`},
	} {
		text, obj := c.f.format(c.in)
		j, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("%s: %v", c.f.Name, err)
		}
		if text != c.text || string(j) != c.jsonText {
			t.Errorf("%s: %q %s, want %q %s", c.f.Name, text, j, c.text, c.jsonText)
		}
		if c.f.addrKind() != 0 {
			continue
		}
		// What format prints, encode takes back.
		back, err := c.f.encode(text)
		if err != nil || string(back) != string(c.in) {
			t.Errorf("%s: encode(%q) = %v, %v, want %v", c.f.Name, text, back, err, c.in)
		}
	}
}
