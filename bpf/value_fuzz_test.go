// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/fixture"
	"github.com/cilium/ebpf/btf"
)

// FuzzParseValue feeds any words for any type to ParseValue. It must never
// panic, must return one-line errors, and whatever it accepts must have the
// map's size and survive FormatValue -> ParseValue unchanged.
//
// The type is one of the hand-built and fixture types, no type at all, or
// one built from the fuzzer's shape bytes (structs, unions, bitfields,
// arrays, enums, and some malformed layouts). words are input split at
// newlines.
func FuzzParseValue(f *testing.F) {
	types := fuzzTypes(f)
	seeds := []struct {
		sel   int
		input string
	}{
		{1, "42"}, {1, "0x2a"}, {1, "-1"}, {1, "10.0.0.1"}, {2, "-128"},
		{5, "hex\n01\n02"}, {5, "0x01\n0\n0\n0"}, {5, "hex\n01020304"},
		{9, "true"}, {10, "BLUE"}, {11, "LOW"}, {12, "nan(0x7fc00001)"}, {13, "1e308"},
		{14, "0xffff888000000000"}, {15, `hello\x00world`}, {15, `"a,b"`},
		{16, "[1, 2, 3]"}, {17, "fe80::1"}, {18, "[[1], [2, 3]]"},
		{19, "{saddr: 10.0.0.1, sport: 40000, proto: 6}"},
		{20, "{a: 7, b: -16, c: BLUE, d: true, e: 65535}"},
		{21, "{v4: 1.2.3.4}"}, {22, recordLiteral}, {23, "{h: 1}"},
		{24, "{saddr: 10.0.0.1, sport: 40000}"},
		{25, `{packets: 1, comment: "x", tags: [1]}`},
		{0, "42"}, {0, "hex\nffff"},
	}
	for _, s := range seeds {
		f.Add(uint8(s.sel), []byte(nil), s.input, int8(4))
	}
	f.Add(uint8(200), []byte{8, 3, 0, 2, 1, 6, 1, 7, 3, 0, 1}, "{}", int8(0))
	f.Add(uint8(201), []byte{9, 2, 8, 2, 0, 0, 2, 1, 4}, "{f0: 1, f1: 2}", int8(0))

	f.Fuzz(func(t *testing.T, sel uint8, shape []byte, input string, sizeHint int8) {
		var typ btf.Type
		switch {
		case sel == 0:
		case int(sel) < len(types):
			typ = types[sel]
		default:
			g := &typeGen{shape: shape}
			typ = g.gen(0)
		}
		size := int(uint8(sizeHint)) % 20
		if typ != nil {
			n, err := btf.Sizeof(typ)
			if err != nil {
				n = 0
			}
			size = n
			if sizeHint == -1 {
				size++ // a map whose size disagrees with its BTF
			}
		}
		words := strings.Split(input, "\n")

		// Any bytes of the right size format to text that parses back.
		raw := make([]byte, size)
		copy(raw, input)
		fuzzRoundTrip(t, raw, typ)

		b, err := bpf.ParseValue(words, typ, size)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if len(b) != size {
			t.Fatalf("ParseValue(%q, %v, %d) gave %d bytes", words, typ, size, len(b))
		}
		fuzzRoundTrip(t, b, typ)
	})
}

// fuzzRoundTrip checks that FormatValue's text for b parses back to b: to
// the same bytes when the text is hex, else to the same bits in every
// member (padding is not shown, so it comes back as zero), and to the same
// text once more.
func fuzzRoundTrip(t *testing.T, b []byte, typ btf.Type) {
	text, obj := bpf.FormatValue(b, typ)
	if _, err := json.Marshal(obj); err != nil {
		t.Fatalf("FormatValue(% x, %v) gave an object JSON cannot take: %v", b, typ, err)
	}
	// The dump's fast paths must say exactly what FormatValue says.
	if fast := bpf.FormatText(b, typ); fast != text {
		t.Fatalf("FormatText(% x, %v) = %q, FormatValue's text is %q", b, typ, fast, text)
	}
	if fast, slow := bpf.AppendValueJSON(nil, b, typ), bpf.AppendJSON(nil, obj); !bytes.Equal(fast, slow) {
		t.Fatalf("AppendValueJSON(% x, %v) = %s, FormatValue's obj is %s", b, typ, fast, slow)
	}
	if len(b) == 0 && text == "" {
		return
	}
	exact := typ == nil || strings.HasPrefix(text, "hex ")
	words := []string{text}
	switch {
	case typ == nil:
		words = append([]string{"hex"}, strings.Fields(text)...)
	case exact:
		words = strings.Fields(text)
	}
	b2, err := bpf.ParseValue(words, typ, len(b))
	if err != nil {
		t.Fatalf("ParseValue(%q) of FormatValue(% x, %v): %v", words, b, typ, err)
	}
	if exact {
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip of % x through %q gave % x", b, text, b2)
		}
		return
	}
	mask := make([]byte, len(b))
	meaningful(typ, mask, 0, 0)
	for i := range b {
		if b[i]&mask[i] != b2[i]&mask[i] {
			t.Fatalf("round trip of % x through %q gave % x (mask % x)", b, text, b2, mask)
		}
	}
	if text2, _ := bpf.FormatValue(b2, typ); text2 != text {
		t.Fatalf("text changed on the second round: %q then %q", text, text2)
	}
}

// fuzzTypes lists the types FuzzParseValue picks from by index (0 is nil).
func fuzzTypes(f *testing.F) []btf.Type {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(fixture.FixtureObject()))
	if err != nil {
		f.Fatal(err)
	}
	var key, stats *btf.Struct
	if err := spec.TypeByName("flow_key", &key); err != nil {
		f.Fatal(err)
	}
	if err := spec.TypeByName("flow_stats", &stats); err != nil {
		f.Fatal(err)
	}
	return []btf.Type{
		nil, tU32, tS8, tU8, tU16, tU32, tS32, tU64, tS64, tBool, tColor, tLevel,
		tF32, tF64, tPtr, tName, tPorts, tAddr6, tMatrix, tTuple, tFlags, tAddrUnion,
		tRecord, tOdd, key, stats, tU128, tS128, tChar, tF16,
	}
}

// meaningful sets in mask the bits of a value of type t (at bit offset bit)
// that its members cover: padding between and after members is not kept by
// a round trip through text, since the text does not show it.
func meaningful(t btf.Type, mask []byte, bit uint64, depth int) {
	if depth > 64 {
		return
	}
	set := func(from, n uint64) {
		for i := from; i < from+n && i/8 < uint64(len(mask)); i++ {
			mask[i/8] |= 1 << (i % 8)
		}
	}
	switch v := btf.UnderlyingType(t).(type) {
	case *btf.Int, *btf.Enum, *btf.Float, *btf.Pointer:
		n, _ := btf.Sizeof(v)
		set(bit, uint64(n)*8)
	case *btf.Array:
		n, _ := btf.Sizeof(v.Type)
		for i := range uint64(v.Nelems) {
			if (bit+i*uint64(n)*8)/8 >= uint64(len(mask)) {
				break
			}
			meaningful(v.Type, mask, bit+i*uint64(n)*8, depth+1)
		}
	case *btf.Struct:
		meaningfulMembers(v.Members, mask, bit, depth)
	case *btf.Union:
		meaningfulMembers(v.Members, mask, bit, depth)
	}
}

func meaningfulMembers(members []btf.Member, mask []byte, bit uint64, depth int) {
	for _, m := range members {
		off := bit + uint64(m.Offset)
		switch {
		case m.BitfieldSize > 0 && m.Name != "":
			for i := off; i < off+uint64(m.BitfieldSize) && i/8 < uint64(len(mask)); i++ {
				mask[i/8] |= 1 << (i % 8)
			}
		case m.BitfieldSize > 0:
			// unnamed padding
		case m.Name != "":
			meaningful(m.Type, mask, off, depth+1)
		default:
			switch btf.UnderlyingType(m.Type).(type) {
			case *btf.Struct, *btf.Union:
				meaningful(m.Type, mask, off, depth+1)
			}
		}
	}
}

// typeGen builds a type from fuzzer bytes; when they run out it reads zeros.
type typeGen struct {
	shape []byte
	names int
}

func (g *typeGen) next() int {
	if len(g.shape) == 0 {
		return 0
	}
	c := g.shape[0]
	g.shape = g.shape[1:]
	return int(c)
}

func (g *typeGen) name(prefix string) string {
	g.names++
	return fmt.Sprintf("%s%d", prefix, g.names)
}

func (g *typeGen) gen(depth int) btf.Type {
	kind := g.next()
	if depth > 3 {
		kind %= 5 // scalars only below this depth
	}
	switch kind % 12 {
	case 0:
		sizes := []uint32{1, 2, 4, 8, 16, 3}
		encs := []btf.IntEncoding{btf.Unsigned, btf.Signed, btf.Char, btf.Bool}
		return &btf.Int{Name: g.name("int"), Size: sizes[g.next()%len(sizes)], Encoding: encs[g.next()%len(encs)]}
	case 1:
		return &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	case 2:
		sizes := []uint32{1, 2, 4, 8}
		e := &btf.Enum{Name: g.name("enum"), Size: sizes[g.next()%len(sizes)], Signed: g.next()%2 == 1}
		for range g.next() % 4 {
			v := uint64(g.next()) - 2 // small values, some negative
			if !e.Signed {
				v &= 0xff
			}
			e.Values = append(e.Values, btf.EnumValue{Name: g.name("E"), Value: v})
		}
		return e
	case 3:
		sizes := []uint32{4, 8, 2}
		return &btf.Float{Name: g.name("float"), Size: sizes[g.next()%len(sizes)]}
	case 4:
		return &btf.Pointer{Target: &btf.Void{}}
	case 5:
		return &btf.Typedef{Name: g.name("td"), Type: g.gen(depth + 1)}
	case 6:
		return &btf.Const{Type: &btf.Volatile{Type: g.gen(depth + 1)}}
	case 7:
		return &btf.Array{Type: g.gen(depth + 1), Nelems: uint32(g.next() % 5)}
	case 8:
		return &btf.Array{Type: &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}, Nelems: uint32(g.next() % 20)}
	case 9, 10:
		return g.composite(depth, false)
	default:
		return g.composite(depth, true)
	}
}

// composite lays out a struct (members one after another, some bitfields,
// some padding) or a union (members at offset 0). Now and then it puts a
// member somewhere wrong, as broken BTF would.
func (g *typeGen) composite(depth int, union bool) btf.Type {
	var members []btf.Member
	var bit, end uint64
	for range g.next() % 5 {
		mt := g.gen(depth + 1)
		m := btf.Member{Name: g.name("f"), Type: mt}
		size, err := btf.Sizeof(mt)
		if err != nil {
			continue
		}
		if union {
			bit = 0
		}
		switch u := btf.UnderlyingType(mt).(type) {
		case *btf.Struct, *btf.Union:
			if g.next()%3 == 0 {
				m.Name = "" // anonymous: its members are named directly
			}
		case *btf.Int, *btf.Enum:
			if u2, ok := u.(*btf.Int); ok && u2.Size > 8 {
				break
			}
			if g.next()%3 == 0 {
				m.BitfieldSize = btf.Bits(1 + g.next()%(size*8))
				if g.next()%5 == 0 {
					m.Name = "" // padding
				}
			}
		}
		if m.BitfieldSize == 0 {
			bit = (bit + 7) / 8 * 8
			bit += uint64(g.next()%3) * 8 // padding before
		}
		m.Offset = btf.Bits(bit)
		if g.next()%16 == 15 {
			m.Offset = btf.Bits(g.next() * 8) // malformed: anywhere
		}
		n := uint64(size) * 8
		if m.BitfieldSize > 0 {
			n = uint64(m.BitfieldSize)
		}
		bit += n
		end = max(end, bit)
		members = append(members, m)
	}
	size := uint32((end+7)/8) + uint32(g.next()%3)
	if union {
		return &btf.Union{Name: g.name("u"), Size: size, Members: members}
	}
	return &btf.Struct{Name: g.name("s"), Size: size, Members: members}
}
