// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/cilium/ebpf/btf"
)

// recordBytes is the struct record that recordLiteral spells.
func recordBytes(t *testing.T) []byte {
	b := make([]byte, 96)
	put := func(off int, h string) { copy(b[off:], hexBytes(t, h)) }
	put(0, "01020304 0a000002 9c40 0050 11") // t: ports in network order, as named
	put(16, "68 69")                         // name "hi"
	put(32, "0100 0200 0000")                // ports
	put(40, "00000000000000000000000000000001")
	put(56, "01000000")         // col GREEN
	put(64, "0500000000000000") // count
	put(72, "0000000088ffffff") // p
	put(80, "0000c03f")         // f 1.5
	put(84, "8706ffff")         // fl
	put(88, "00000000000000c0") // d -2
	return b
}

const recordLiteral = `{t: {saddr: 1.2.3.4, daddr: 10.0.0.2, sport: 40000, dport: 80, proto: 17}, ` +
	`name: "hi", ports: [1, 2], v6: ::1, col: GREEN, count: 5, p: 0xffffff8800000000, ` +
	`f: 1.5, fl: {a: 7, b: -16, c: BLUE, d: true, e: 65535}, d: -2}`

func TestParseValue(t *testing.T) {
	for _, c := range []struct {
		name  string
		words []string
		typ   btf.Type
		want  string // hex; the size is its length
	}{
		{"decimal", []string{"42"}, tU32, "2a000000"},
		{"hex number", []string{"0x2a"}, tU32, "2a000000"},
		{"octal number", []string{"0o52"}, tU32, "2a000000"},
		{"binary number", []string{"0b101010"}, tU32, "2a000000"},
		{"plus sign", []string{"+42"}, tU32, "2a000000"},
		{"leading zero below 8", []string{"07"}, tU32, "07000000"},
		{"negative", []string{"-1"}, tS32, "ffffffff"},
		{"u8 max", []string{"255"}, tU8, "ff"},
		{"s8 min", []string{"-128"}, tS8, "80"},
		{"u64 max", []string{"18446744073709551615"}, tU64, "ffffffffffffffff"},
		{"s64 min", []string{"-9223372036854775808"}, tS64, "0000000000000080"},
		{"u128 max", []string{"340282366920938463463374607431768211455"}, tU128, strings.Repeat("ff", 16)},
		{"s128 -2", []string{"-2"}, tS128, "fe" + strings.Repeat("ff", 15)},
		{"ipv4 in network order", []string{"10.0.0.1"}, tU32, "0a000001"},
		{"ipv4 in an int", []string{"192.168.1.254"}, tS32, "c0a801fe"},
		{"blanks around", []string{"  42 "}, tU32, "2a000000"},
		{"bool true", []string{"true"}, tBool, "01"},
		{"bool false", []string{"false"}, tBool, "00"},
		{"bool number", []string{"1"}, tBool, "01"},
		{"char quoted", []string{"'a'"}, tChar, "61"},
		{"char number", []string{"-1"}, tChar, "ff"},
		{"char unsigned number", []string{"255"}, tChar, "ff"},
		{"enum by name", []string{"BLUE"}, tColor, "02000000"},
		{"enum by number", []string{"7"}, tColor, "07000000"},
		{"signed enum by name", []string{"LOW"}, tLevel, "ff"},
		{"double", []string{"1.5"}, tF64, "000000000000f83f"},
		{"float", []string{"-0.25"}, tF32, "000080be"},
		{"float exponent", []string{"1e3"}, tF32, "00007a44"},
		{"float inf", []string{"+Inf"}, tF64, "000000000000f07f"},
		{"float nan bits", []string{"nan(0x7ff8000000000001)"}, tF64, "010000000000f87f"},
		{"pointer", []string{"0xffff888000000000"}, tPtr, "00000000 8088ffff"},
		{"text bare", []string{"hello"}, tName, "68656c6c6f" + strings.Repeat("00", 11)},
		{"text with blanks (quotes removed by the shell)", []string{"hello world"}, tName, "68656c6c6f20776f726c64" + strings.Repeat("00", 5)},
		{"text quoted", []string{`"a,b"`}, tName, "612c62" + strings.Repeat("00", 13)},
		{"text single quoted", []string{`'it"s'`}, tName, "6974227300" + strings.Repeat("00", 11)},
		{"text escapes", []string{`a\x00b\n\\\t`}, tName, "6100620a5c09" + strings.Repeat("00", 10)},
		{"text fills the array", []string{"0123456789abcdef"}, tName, "30313233343536373839616263646566"},
		{"empty text", []string{""}, tName, strings.Repeat("00", 16)},
		{"text in braces", []string{"{x}"}, tName, "7b787d" + strings.Repeat("00", 13)},
		{"char array as numbers", []string{"[104, 105]"}, tName, "6869" + strings.Repeat("00", 14)},
		{"array", []string{"[1, 2, 3]"}, tPorts, "010002000300"},
		{"array short", []string{"[1]"}, tPorts, "010000000000"},
		{"array trailing comma", []string{"[1, 2,]"}, tPorts, "010002000000"},
		{"array empty", []string{"[]"}, tPorts, "000000000000"},
		{"array of arrays", []string{"[[1, 2], [3]]"}, tMatrix, "01020300"},
		{"ipv6 in a byte array", []string{"fe80::1"}, tAddr6, "fe800000000000000000000000000001"},
		{"ipv4 in a byte array", []string{"10.0.0.1"}, &btf.Array{Type: tU8, Nelems: 4}, "0a000001"},
		{"struct", []string{"{saddr: 10.0.0.1, daddr: 10.0.0.2, sport: 40000, dport: 80, proto: 6}"}, tTuple, "0a000001 0a000002 9c40 0050 06 000000"},
		{"struct omitted fields are zero", []string{"{proto: 17}"}, tTuple, "00000000 00000000 0000 0000 11 000000"},
		{"struct with = and no blanks", []string{"{proto=17,sport=1}"}, tTuple, "00000000 00000000 0001 0000 11 000000"},
		{"struct trailing comma", []string{"{ proto : 17 , }"}, tTuple, "00000000 00000000 0000 0000 11 000000"},
		{"struct empty", []string{"{}"}, tTuple, strings.Repeat("00", 16)},
		{"bitfields", []string{"{a: 7, b: -16, c: BLUE, d: true, e: 65535}"}, tFlags, "8706ffff"},
		{"bitfield alone", []string{"{b: 1}"}, tFlags, "08000000"},
		{"union member", []string{"{v4: 10.0.0.1}"}, tAddrUnion, "0a000001" + strings.Repeat("00", 12)},
		{"nested, anonymous union, every kind", []string{recordLiteral}, tRecord, ""},
		{"bpftool bytes", []string{"0x01", "0", "0", "0"}, tU32, "01000000"},
		{"bpftool bytes decimal", []string{"1", "2", "255", "0XfF"}, tU32, "0102ffff"},
		{"hex bytes", []string{"hex", "01", "02", "03", "04"}, tU32, "01020304"},
		{"hex run", []string{"hex", "01020304"}, tU32, "01020304"},
		{"hex mixed", []string{"hex", "0x01", "2", "0304"}, tU32, "01020304"},
		{"hex for a struct", []string{"hex", "0a000001", "0a000002", "409c", "5000", "06", "000000"}, tTuple, "0a000001 0a000002 409c 5000 06 000000"},
		{"no btf: number", []string{"42"}, nil, "2a000000"},
		{"no btf: negative", []string{"-1"}, nil, "ffff"},
		{"no btf: u64", []string{"0xffffffffffffffff"}, nil, "ffffffffffffffff"},
		{"no btf: one byte", []string{"255"}, nil, "ff"},
		{"no btf: bytes", []string{"0xff", "1", "2"}, nil, "ff0102"},
		{"no btf: hex", []string{"hex", "ffff"}, nil, "ffff"},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := hexBytes(t, c.want)
			if c.typ == tRecord {
				want = recordBytes(t)
			}
			got, err := bpf.ParseValue(c.words, c.typ, len(want))
			if err != nil {
				t.Fatalf("ParseValue(%q): %v", c.words, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ParseValue(%q) = % x, want % x", c.words, got, want)
			}
			checkRoundTrip(t, got, c.typ)
		})
	}
}

// checkRoundTrip formats b and parses the text back: a dumped value can be
// typed in again.
func checkRoundTrip(t *testing.T, b []byte, typ btf.Type) {
	t.Helper()
	text, obj := bpf.FormatValue(b, typ)
	if _, err := json.Marshal(obj); err != nil {
		t.Fatalf("FormatValue(% x) obj does not marshal: %v", b, err)
	}
	words := []string{text}
	if typ == nil {
		words = append([]string{"hex"}, strings.Fields(text)...)
	} else if strings.HasPrefix(text, "hex ") {
		words = strings.Fields(text)
	}
	back, err := bpf.ParseValue(words, typ, len(b))
	if err != nil {
		t.Fatalf("ParseValue(FormatValue(% x) = %s): %v", b, text, err)
	}
	if !bytes.Equal(back, b) {
		t.Fatalf("round trip of % x through %s gave % x", b, text, back)
	}
}

func TestParseValueErrors(t *testing.T) {
	for _, c := range []struct {
		words []string
		typ   btf.Type
		size  int
		want  string
	}{
		{nil, tU32, 4, "no value given: type a literal such as 42 or bytes such as 0x01 0 0 0"},
		{[]string{"hex"}, tU32, 4, "hex: no bytes given; write them as 01 00 00 00, 01000000 or 0x01:00:00:00"},
		{[]string{"hex", "0g"}, tU32, 4, `hex: "0g" is not hex bytes: use the digits 0-9 and a-f`},
		{[]string{"hex", "123"}, tU32, 4, `hex: "123" has an odd number of hex digits: give each byte as two (01 or 0102...)`},
		{[]string{"hex", "0x"}, tU32, 4, `hex: "0x" has no hex digits`},
		{[]string{"hex", "01", "02", "03", "04"}, tU64, 8, "4 bytes given, the map wants 8 (__u64)"},
		{[]string{"0x01", "0", "0", "300"}, tU32, 4, `byte "300" is out of range 0..255`},
		{[]string{"0x01", "0", "0", "-1"}, tU32, 4, `byte "-1" is out of range 0..255`},
		{[]string{"0x01", "x"}, tU32, 4, `"x" is not a byte: with several words give one byte each, 0..255 in decimal or 0x hex (e.g. 0x01 0 0 0)`},
		{[]string{"0x01", "{a: 1}"}, tU32, 4, `"{a: 1}" is not a byte: with several words give one byte each, 0..255 in decimal or 0x hex (e.g. 0x01 0 0 0)`},
		{[]string{"1", "2", "3"}, tU32, 4, "3 bytes given, the map wants 4 (__u32)"},
		{[]string{"1", "2", "3"}, nil, 4, "3 bytes given, the map wants 4"},
		{[]string{"42"}, tU32, 8, "__u32 is 4 bytes but the map wants 8: give the bytes as hex (hex 01 02 ...)"},
		{[]string{"70000"}, tU16, 2, "70000 is out of range for __u16 (0..65535)"},
		{[]string{"-1"}, tU32, 4, "-1 is out of range for __u32 (0..4294967295)"},
		{[]string{"128"}, tS8, 1, "128 is out of range for signed char (-128..127)"},
		{[]string{"-129"}, tS8, 1, "-129 is out of range for signed char (-128..127)"},
		{[]string{"256"}, tChar, 1, "256 is out of range for char (-128..255)"},
		{[]string{"2"}, &btf.Int{Name: "x", Size: 1, Encoding: btf.Signed}, 1, ""},
		{[]string{"18446744073709551616"}, tU64, 8, "18446744073709551616 is out of range for __u64 (0..18446744073709551615)"},
		{[]string{"abc"}, tU32, 4, "__u32 wants a number such as 42 or 0x2a, or an IPv4 address: abc is not a number"},
		{[]string{"0x"}, tU16, 2, "__u16 wants a number such as 42 or 0x2a: 0x is not a number"},
		{[]string{"0x-1"}, tU16, 2, "__u16 wants a number such as 42 or 0x2a: 0x-1 is not a number"},
		{[]string{"--1"}, tS32, 4, "int wants a number such as 42, 0x2a or -1, or an IPv4 address: --1 is not a number"},
		{[]string{"010"}, tU32, 4, "__u32 wants a number such as 42 or 0x2a, or an IPv4 address: 010 is ambiguous (bpftool reads a leading 0 as octal): write 0o10 for octal or drop the leading 0"},
		{[]string{"1.2.3"}, tU32, 4, "__u32 wants a number such as 42 or 0x2a, or an IPv4 address: 1.2.3 is not a number"},
		{[]string{"10.0.0.1"}, tU16, 2, "__u16 wants a number such as 42 or 0x2a: 10.0.0.1 is not a number"},
		{[]string{"::1"}, tU32, 4, "__u32 wants a number such as 42 or 0x2a, or an IPv4 address: ::1 is not a number"},
		{[]string{"maybe"}, tBool, 1, "_Bool wants true, false or a number: maybe is not a number"},
		{[]string{"2 3"}, tU32, 4, "column 3 of 2 3: unexpected '3' after the literal; quote text with blanks and put several fields in {...}"},
		{[]string{"{a: 1}"}, tU32, 4, "__u32 wants a number such as 42 or 0x2a, or an IPv4 address, not {a: 1}"},
		{[]string{`"x"`}, tU32, 4, `__u32 wants a number such as 42 or 0x2a, or an IPv4 address, not "x"`},
		{[]string{`"ab"`}, tChar, 1, `char wants a number or a quoted character such as 'a', not "ab"`},
		{[]string{"42"}, tTuple, 16, "struct tuple wants {field: value, ...} with fields saddr, daddr, sport, dport, proto, not 42"},
		{[]string{"[1]"}, tTuple, 16, "struct tuple wants {field: value, ...} with fields saddr, daddr, sport, dport, proto, not [1]"},
		{[]string{"{sadr: 1}"}, tTuple, 16, "field sadr: struct tuple has no such field; its fields are saddr, daddr, sport, dport, proto"},
		{[]string{"{proto: 1, proto: 2}"}, tTuple, 16, "field proto: given twice"},
		{[]string{"{proto: 300}"}, tTuple, 16, "field proto: 300 is out of range for __u8 (0..255)"},
		{[]string{"{proto: }"}, tTuple, 16, "column 9 of {proto: }: expected a value, found '}'"},
		{[]string{"{saddr 1}"}, tTuple, 16, "column 8 of {saddr 1}: expected ':' after field name saddr, found '1'"},
		{[]string{"{saddr: 1"}, tTuple, 16, "column 10 of {saddr: 1: expected ',' or '}', found end (quote text with blanks)"},
		{[]string{"{saddr: 1 2}"}, tTuple, 16, "column 11 of {saddr: 1 2}: expected ',' or '}', found '2' (quote text with blanks)"},
		{[]string{"{1: 2}"}, tTuple, 16, "column 2 of {1: 2}: expected a field name or '}', found '1'"},
		{[]string{"{t: {sport: -1}}"}, tRecord, 96, "field t.sport: -1 is out of range for __u16 (0..65535)"},
		{[]string{`{name: "01234567890123456789"}`}, tRecord, 96, `field name: "01234567890123456789" is 20 bytes, the field holds 16`},
		{[]string{`{name: toolongtoolongtoolong}`}, tRecord, 96, `field name: toolongtoolongtoolong is 21 bytes, the field holds 16`},
		{[]string{"01234567890123456789"}, tName, 16, "01234567890123456789 is 20 bytes, char[16] holds 16"},
		{[]string{`{name: "abc}`}, tRecord, 96, `column 8 of {name: "abc}: unterminated " quote; close it with "`},
		{[]string{`{name: "a\qb"}`}, tRecord, 96, `column 10 of {name: "a\qb"}: unknown escape \q; write \\ for a backslash (escapes: \\ \" \' \n \t \r \0 \xHH)`},
		{[]string{`a\x4`}, tName, 16, `a\x4: \x needs two hex digits, as in \x00`},
		{[]string{`ab\`}, tName, 16, `ab\: a lone \ ends the text; write \\ for a backslash`},
		{[]string{"{name: 42}"}, tRecord, 96, `field name: the field holds text, and 42 is a number: write "42" for the text, or [42] for the byte`},
		{[]string{`{name: "42"}`}, tRecord, 96, ""}, // quoted: the text "42"
		{[]string{"{name: abc}"}, tRecord, 96, ""},  // a bare word that is no number is text
		{[]string{"{name: {a: 1}}"}, tRecord, 96, "field name: char[16] wants text or a list of numbers, not {a: 1}"},
		{[]string{"{ports: [1, 2, 3, 4]}"}, tRecord, 96, "field ports: 4 elements given, the field holds 3"},
		{[]string{"[1, 2, 3, 4]"}, tPorts, 6, "4 elements given, __u16[3] holds 3"},
		{[]string{"{ports: [1, 2, x]}"}, tRecord, 96, "field ports[2]: __u16 wants a number such as 42 or 0x2a: x is not a number"},
		{[]string{"{ports: 1}"}, tRecord, 96, "field ports: __u16[3] wants a list such as [1, 2, 3], not 1"},
		{[]string{"[[1, 2, 3]]"}, tMatrix, 4, "field [0]: 3 elements given, the field holds 2"},
		{[]string{"{col: PURPLE}"}, tRecord, 96, "field col: PURPLE is not a number or a value of enum color (RED, GREEN, BLUE)"},
		{[]string{"{col: -1}"}, tRecord, 96, "field col: -1 is out of range for enum color (0..4294967295)"},
		{[]string{"{col: [1]}"}, tRecord, 96, "field col: enum color wants a number or one of RED, GREEN, BLUE, not [1]"},
		{[]string{"HIGHER"}, tLevel, 1, "HIGHER is not a number or a value of enum level (LOW, HIGH)"},
		{[]string{"{fl: {a: 8}}"}, tRecord, 96, "field fl.a: 8 is out of range for a 3-bit unsigned int bitfield (0..7)"},
		{[]string{"{fl: {b: 16}}"}, tRecord, 96, "field fl.b: 16 is out of range for a 5-bit int bitfield (-16..15)"},
		{[]string{"{fl: {c: 4}}"}, tRecord, 96, "field fl.c: 4 is out of range for a 2-bit enum color bitfield (0..3)"},
		{[]string{"{fl: {d: 2}}"}, tRecord, 96, "field fl.d: 2 is out of range for a 1-bit _Bool bitfield (0..1)"},
		{[]string{"{fl: {c: NONE}}"}, tRecord, 96, "field fl.c: NONE is not a number or a value of enum color (RED, GREEN, BLUE)"},
		{[]string{"{v7: 1}"}, tRecord, 96, "field v7: struct record has no such field; its fields are t, name, ports, v4, v6, col, count, p, f, fl, d"},
		{[]string{"{f: abc}"}, tRecord, 96, "field f: float wants a number such as 1.5, not abc"},
		{[]string{"{f: 1e40}"}, tRecord, 96, "field f: 1e40 is out of range for float"},
		{[]string{"{d: nan(0x1)}"}, tRecord, 96, "field d: nan(0x1) is not the bits of a 64-bit NaN"},
		{[]string{"{p: -1}"}, tRecord, 96, "field p: -1 is out of range for a pointer (0..18446744073709551615)"},
		{[]string{"{p: x}"}, tRecord, 96, "field p: void * wants an address such as 0xffff0000, not x"},
		{[]string{"{t: 10.0.0.1}"}, tRecord, 96, "field t: struct tuple wants {field: value, ...} with fields saddr, daddr, sport, dport, proto, not 10.0.0.1"},
		{[]string{"1.0"}, tF16, 2, "cannot write a 2-byte float (_Float16); give the whole value as hex"},
		{[]string{"{h: 1}"}, tOdd, 2, "field h: cannot write a 2-byte float (_Float16); give the whole value as hex"},
		{[]string{"1"}, &btf.Fwd{Name: "later", Kind: btf.FwdStruct}, 4, "cannot size struct later (type *btf.Fwd: type is unsized): give the bytes as hex (hex 01 02 ...)"},
		{[]string{strings.Repeat("[", 100) + strings.Repeat("]", 100)}, tPorts, 6, "column 66 of [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[...: literal nests deeper than 64 levels"},
		{[]string{"42"}, nil, 3, "the map has no BTF and wants 3 bytes: give them as hex (hex 01 02 ...) or one byte per word (0x01 0 0 ...)"},
		{[]string{"x"}, nil, 4, "x is not a number; the map has no BTF, so give a number or bytes (hex 01 02 ...)"},
		{[]string{"70000"}, nil, 2, "70000 does not fit in 2 bytes (-32768..65535)"},
	} {
		got, err := bpf.ParseValue(c.words, c.typ, c.size)
		if c.want == "" {
			// Accepted: listed to show the edge of what is refused.
			if err != nil {
				t.Errorf("ParseValue(%q, %s): %v", c.words, c.typ, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseValue(%q, %s) = % x, want error %q", c.words, c.typ, got, c.want)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("ParseValue(%q, %s):\n got %s\nwant %s", c.words, c.typ, err, c.want)
		}
		if strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("error for %q is not one line: %q", c.words, err)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		name string
		data string
		typ  btf.Type
		text string
		json string
	}{
		{"no btf", "01000000", nil, "01 00 00 00", `["0x01","0x00","0x00","0x00"]`},
		{"no btf empty", "", nil, "", `[]`},
		{"u32", "2a000000", tU32, "42", `42`},
		{"u64 beyond float precision", "ffffffffffffffff", tU64, "18446744073709551615", `18446744073709551615`},
		{"s64 min", "0000000000000080", tS64, "-9223372036854775808", `-9223372036854775808`},
		{"u128", strings.Repeat("ff", 16), tU128, "340282366920938463463374607431768211455", `340282366920938463463374607431768211455`},
		{"s128", strings.Repeat("ff", 16), tS128, "-1", `-1`},
		{"char", "ff", tChar, "-1", `-1`},
		{"bool", "01", tBool, "true", `true`},
		{"bool other", "02", tBool, "2", `2`},
		{"enum", "02000000", tColor, "BLUE", `"BLUE"`},
		{"enum unknown", "09000000", tColor, "9", `9`},
		{"signed enum", "ff", tLevel, "LOW", `"LOW"`},
		{"signed enum unknown", "fe", tLevel, "-2", `-2`},
		{"float", "0000c03f", tF32, "1.5", `1.5`},
		{"float tenth", "cdcccc3d", tF32, "0.1", `0.1`},
		{"double big", "000000000000f043", tF64, "1.8446744073709552e+19", `1.8446744073709552e+19`},
		{"float inf", "0000807f", tF32, "+Inf", `"+Inf"`},
		{"float nan", "0000c07f", tF32, "nan(0x7fc00000)", `"nan(0x7fc00000)"`},
		{"pointer", "00000000 8088ffff", tPtr, "0xffff888000000000", `18446612682070032384`},
		{"text", "6869" + strings.Repeat("00", 14), tName, `"hi"`, `"hi"`},
		{"text escaped", `22 5c 0a 01 c3 a9 41 00 42` + strings.Repeat("00", 7), tName, `"\x22\\\n\x01éA\x00B"`, `[34,92,10,1,-61,-87,65,0,66,0,0,0,0,0,0,0]`},
		{"text with quotes", `22 5c 41 7e` + strings.Repeat("00", 12), tName, `"\x22\\A~"`, `"\"\\A~"`},
		{"text not utf-8", "ff41" + strings.Repeat("00", 14), tName, `"\xffA"`, `[-1,65,0,0,0,0,0,0,0,0,0,0,0,0,0,0]`},
		// As bpftool: no NUL, no string in JSON.
		{"text full", "30313233343536373839616263646566", tName, `"0123456789abcdef"`, `[48,49,50,51,52,53,54,55,56,57,97,98,99,100,101,102]`},
		{"array", "010002000300", tPorts, "[1, 2, 3]", `[1,2,3]`},
		{"array of arrays", "01020304", tMatrix, "[[1, 2], [3, 4]]", `[[1,2],[3,4]]`},
		// Named like addresses and ports: shown as typed; JSON keeps the
		// raw numbers, as bpftool's.
		{"struct", "0a000001 0a000002 9c40 0050 06 000000", tTuple,
			"{saddr: 10.0.0.1, daddr: 10.0.0.2, sport: 40000, dport: 80, proto: 6}",
			`{"saddr":16777226,"daddr":33554442,"sport":16540,"dport":20480,"proto":6}`},
		{"bitfields", "8706ffff", tFlags, "{a: 7, b: -16, c: BLUE, d: true, e: 65535}", `{"a":7,"b":-16,"c":"BLUE","d":true,"e":65535}`},
		{"union", "0a000001" + strings.Repeat("00", 12), tAddrUnion, "{v4: 16777226, v6: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}",
			`{"v4":16777226,"v6":[10,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0]}`},
		{"undecodable", "003c", tOdd, "hex 00 3c", `["0x00","0x3c"]`},
		{"wrong size", "010203", tU32, "hex 01 02 03", `["0x01","0x02","0x03"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := hexBytes(t, c.data)
			text, obj := bpf.FormatValue(data, c.typ)
			if text != c.text {
				t.Errorf("text %s, want %s", text, c.text)
			}
			j, err := json.Marshal(obj)
			if err != nil {
				t.Fatalf("marshal %#v: %v", obj, err)
			}
			if string(j) != c.json {
				t.Errorf("json %s, want %s", j, c.json)
			}
			if c.typ != nil && len(data) > 0 && c.name != "wrong size" {
				checkRoundTrip(t, data, c.typ)
			}
		})
	}
}

func TestFormatRecord(t *testing.T) {
	text, obj := bpf.FormatValue(recordBytes(t), tRecord)
	want := `{t: {saddr: 1.2.3.4, daddr: 10.0.0.2, sport: 40000, dport: 80, proto: 17}, name: "hi", ` +
		`ports: [1, 2, 0], v4: 0, v6: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], col: GREEN, count: 5, ` +
		`p: 0xffffff8800000000, f: 1.5, fl: {a: 7, b: -16, c: BLUE, d: true, e: 65535}, d: -2}`
	if text != want {
		t.Errorf("text\n got %s\nwant %s", text, want)
	}
	j, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"t":{"saddr":67305985,"daddr":33554442,"sport":16540,"dport":20480,"proto":17},"name":"hi",` +
		`"ports":[1,2,0],"v4":0,"v6":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1],"col":"GREEN","count":5,` +
		`"p":18446743558313476096,"f":1.5,"fl":{"a":7,"b":-16,"c":"BLUE","d":true,"e":65535},"d":-2}`
	if string(j) != wantJSON {
		t.Errorf("json\n got %s\nwant %s", j, wantJSON)
	}
	checkRoundTrip(t, recordBytes(t), tRecord)
}

// A union's members overlap: formatting prints each and parsing writes
// each in turn, so the bytes come back whichever member was written.
func TestUnionRoundTrip(t *testing.T) {
	for _, h := range []string{"0a000001" + strings.Repeat("00", 12), "fe800000000000000000000000000001"} {
		checkRoundTrip(t, hexBytes(t, h), tAddrUnion)
	}
}

func TestObjectMarshalKeepsOrder(t *testing.T) {
	o := bpf.Object{{Name: "z", Value: uint64(1)}, {Name: "a", Value: bpf.Object{}}, {Name: `q"`, Value: []any{"x"}}}
	j, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"z":1,"a":{},"q\"":["x"]}`; string(j) != want {
		t.Fatalf("got %s, want %s", j, want)
	}
}
