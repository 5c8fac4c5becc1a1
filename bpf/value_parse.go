// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// parseTyped reads one word as a literal of type t into size bytes.
func parseTyped(word string, t btf.Type, size int) ([]byte, error) {
	n, err := btf.Sizeof(t)
	if err != nil {
		return nil, fmt.Errorf("cannot size %s (%v): give the bytes as hex (hex 01 02 ...)", TypeName(t), err)
	}
	if n != size {
		return nil, fmt.Errorf("%s is %d bytes but the map wants %d: give the bytes as hex (hex 01 02 ...)", TypeName(t), n, size)
	}
	l, err := topLiteral(word, t)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if err := encodeHinted(l, t, hintFor("", t, nil, true), "", buf, 0); err != nil {
		return nil, err
	}
	return buf, nil
}

// encodeHinted is encode for a value whose container gave it a hint (see
// value_hints.go): an integer in network byte order is written so.
// Addresses need nothing: encode reads them in network order anywhere.
func encodeHinted(l *lit, t btf.Type, h hint, path string, buf []byte, depth int) error {
	if it, ok := underlying(t).(*btf.Int); ok && h == hintBE && it.Size <= 8 && it.Encoding != btf.Bool {
		if ip, ok := ipLiteral(l, len(buf)); ok {
			copy(buf, ip)
			return nil
		}
		n, err := intValue(l, t, it, uint(8*it.Size), path)
		if err != nil {
			return err
		}
		putBE(buf, n)
		return nil
	}
	return encode(l, t, path, buf, depth)
}

// topLiteral parses the one word given for a whole key or value. The shell
// removed the quotes around a quoted word, so a char array takes as its
// text any word that does not open one of its literals (a list or a
// string; "{" opens nothing for an array, so "{x}" is text).
func topLiteral(word string, t btf.Type) (*lit, error) {
	trimmed := strings.TrimLeft(word, " \t\r\n")
	opensLiteral := trimmed != "" && strings.ContainsRune(`["'`, rune(trimmed[0]))
	if !opensLiteral && charArray(t) != nil {
		text, err := unescapeText(word)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", shorten(word), err)
		}
		return &lit{kind: litString, text: text, raw: word}, nil
	}
	return parseLiteral(word)
}

// encode writes literal l of type t into buf, which is exactly t's size.
// path names the field for messages.
func encode(l *lit, t btf.Type, path string, buf []byte, depth int) error {
	if depth > maxDepth {
		return fieldErr(path, "%s nests deeper than %d levels", TypeName(t), maxDepth)
	}
	switch v := underlying(t).(type) {
	case *btf.Int:
		return encodeInt(l, t, v, path, buf)
	case *btf.Enum:
		if v.Size == 0 || v.Size > 8 {
			break
		}
		n, err := enumValue(l, t, v, uint(8*v.Size), path)
		if err != nil {
			return err
		}
		putInt(buf, n)
		return nil
	case *btf.Float:
		return encodeFloat(l, t, v, path, buf)
	case *btf.Pointer:
		if l.kind == litAtom {
			if n, err := parseNumber(l.text); err == nil {
				if err := checkRange(n, 64, false, false); err != nil {
					return fieldErr(path, "%s is out of range for a pointer (%v)", l.raw, err)
				}
				putInt(buf, n)
				return nil
			}
		}
		return wrongLiteral(l, t, path)
	case *btf.Array:
		return encodeArray(l, t, v, path, buf, depth)
	case *btf.Struct:
		return encodeComposite(l, t, v.Members, path, buf, depth)
	case *btf.Union:
		return encodeComposite(l, t, v.Members, path, buf, depth)
	}
	return fieldErr(path, "cannot write a value of type %s; give the whole value as hex (hex 01 02 ...)", TypeName(t))
}

// wrongLiteral is the error for a literal of the wrong form for t.
func wrongLiteral(l *lit, t btf.Type, path string) error {
	return fieldErr(path, "%s wants %s, not %s", TypeName(t), wants(t), shorten(l.raw))
}

// wants describes the literals type t takes, for messages.
func wants(t btf.Type) string {
	switch v := underlying(t).(type) {
	case *btf.Int:
		switch {
		case v.Encoding == btf.Bool:
			return "true, false or a number"
		case isChar(v):
			return "a number or a quoted character such as 'a'"
		}
		examples := "42 or 0x2a" // unsigned: -1 would be refused
		if v.Encoding == btf.Signed {
			examples = "42, 0x2a or -1"
		}
		if v.Size == 4 {
			return "a number such as " + examples + ", or an IPv4 address"
		}
		return "a number such as " + examples
	case *btf.Enum:
		return "a number or one of " + enumNames(v)
	case *btf.Float:
		return "a number such as 1.5"
	case *btf.Pointer:
		return "an address such as 0xffff0000"
	case *btf.Array:
		if isChar(v.Type) {
			return "text or a list of numbers"
		}
		return "a list such as [1, 2, 3]"
	case *btf.Struct:
		return "{field: value, ...} with fields " + memberNames(v.Members)
	case *btf.Union:
		return "{field: value} with fields " + memberNames(v.Members)
	}
	return "hex bytes"
}

// intValue reads literal l for an integer of type t that is bits wide
// (less than its size for a bitfield).
func intValue(l *lit, t btf.Type, it *btf.Int, bits uint, path string) (*big.Int, error) {
	var n *big.Int
	switch {
	case l.kind == litString && isChar(it) && len(l.text) == 1:
		n = big.NewInt(int64(l.text[0]))
	case l.kind != litAtom:
		return nil, wrongLiteral(l, t, path)
	case it.Encoding == btf.Bool && l.text == "true":
		n = big.NewInt(1)
	case it.Encoding == btf.Bool && l.text == "false":
		n = big.NewInt(0)
	default:
		var err error
		if n, err = parseNumber(l.text); err != nil {
			return nil, fieldErr(path, "%s wants %s: %v", TypeName(t), wants(t), err)
		}
	}
	if err := checkRange(n, bits, it.Encoding == btf.Signed, isChar(it)); err != nil {
		return nil, fieldErr(path, "%s is out of range for %s (%v)", l.raw, sizedName(t, bits), err)
	}
	return n, nil
}

// sizedName is t's name, saying how wide it is when it is a bitfield.
func sizedName(t btf.Type, bits uint) string {
	if n, err := btf.Sizeof(t); err == nil && uint(n)*8 == bits {
		return TypeName(t)
	}
	return fmt.Sprintf("a %d-bit %s bitfield", bits, TypeName(t))
}

func encodeInt(l *lit, t btf.Type, it *btf.Int, path string, buf []byte) error {
	if it.Size == 0 || it.Size > 16 {
		return fieldErr(path, "cannot write a %d-byte integer (%s); give the whole value as hex", it.Size, TypeName(t))
	}
	if ip, ok := ipLiteral(l, len(buf)); ok {
		copy(buf, ip)
		return nil
	}
	n, err := intValue(l, t, it, uint(8*it.Size), path)
	if err != nil {
		return err
	}
	putInt(buf, n)
	return nil
}

// ipLiteral reads an IPv4 address for a 4-byte field or an IPv6 address
// for a 16-byte one, in network byte order as sockets keep them.
func ipLiteral(l *lit, size int) ([]byte, bool) {
	if l.kind != litAtom || (size != 4 && size != 16) || !strings.ContainsAny(l.text, ".:") {
		return nil, false
	}
	a, err := netip.ParseAddr(l.text)
	if err != nil || a.Zone() != "" {
		return nil, false
	}
	if size == 4 && a.Is4() {
		b := a.As4()
		return b[:], true
	}
	if size == 16 && a.Is6() {
		b := a.As16()
		return b[:], true
	}
	return nil, false
}

// enumValue reads an enum constant by name or as a number, for an enum or
// an enum bitfield bits wide.
func enumValue(l *lit, t btf.Type, e *btf.Enum, bits uint, path string) (*big.Int, error) {
	if l.kind != litAtom {
		return nil, wrongLiteral(l, t, path)
	}
	var n *big.Int
	for _, v := range e.Values {
		if v.Name == l.text {
			if e.Signed {
				n = big.NewInt(int64(v.Value))
			} else {
				n = new(big.Int).SetUint64(v.Value)
			}
			break
		}
	}
	if n == nil {
		var err error
		if n, err = parseNumber(l.text); err != nil {
			return nil, fieldErr(path, "%s is not a number or a value of %s (%s)", shorten(l.text), TypeName(t), enumNames(e))
		}
	}
	if err := checkRange(n, bits, e.Signed, false); err != nil {
		return nil, fieldErr(path, "%s is out of range for %s (%v)", l.raw, sizedName(t, bits), err)
	}
	return n, nil
}

// enumNames lists an enum's constants for messages.
func enumNames(e *btf.Enum) string {
	names := make([]string, 0, len(e.Values))
	for _, v := range e.Values {
		names = append(names, v.Name)
	}
	return listNames(names)
}

// listNames joins names for a message, cutting a long list.
func listNames(names []string) string {
	const max = 16
	if len(names) == 0 {
		return "(none)"
	}
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(", ... (%d in all)", len(names))
	}
	return strings.Join(names, ", ")
}

func encodeFloat(l *lit, t btf.Type, f *btf.Float, path string, buf []byte) error {
	if f.Size != 4 && f.Size != 8 {
		return fieldErr(path, "cannot write a %d-byte float (%s); give the whole value as hex", f.Size, TypeName(t))
	}
	if l.kind != litAtom {
		return wrongLiteral(l, t, path)
	}
	bits := int(8 * f.Size)
	var raw uint64
	if nan, ok := strings.CutPrefix(strings.ToLower(l.text), "nan(0x"); ok && strings.HasSuffix(nan, ")") {
		// nan(0x7fc00001) keeps a NaN's exact bits, as FormatValue prints them.
		u, err := strconv.ParseUint(strings.TrimSuffix(nan, ")"), 16, bits)
		if err != nil || !isNaNBits(u, bits) {
			return fieldErr(path, "%s is not the bits of a %d-bit NaN", l.raw, bits)
		}
		raw = u
	} else {
		v, err := strconv.ParseFloat(l.text, bits)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return fieldErr(path, "%s is out of range for %s", l.raw, TypeName(t))
			}
			return fieldErr(path, "%s wants %s, not %s", TypeName(t), wants(t), shorten(l.raw))
		}
		if bits == 32 {
			raw = uint64(math.Float32bits(float32(v)))
		} else {
			raw = math.Float64bits(v)
		}
	}
	putInt(buf, new(big.Int).SetUint64(raw))
	return nil
}

func isNaNBits(u uint64, bits int) bool {
	if bits == 32 {
		f := math.Float32frombits(uint32(u))
		return f != f
	}
	return math.IsNaN(math.Float64frombits(u))
}

func encodeArray(l *lit, t btf.Type, a *btf.Array, path string, buf []byte, depth int) error {
	esize, err := btf.Sizeof(a.Type)
	if err != nil || esize*int(a.Nelems) != len(buf) {
		return fieldErr(path, "cannot write %s (elements of unknown size); give the whole value as hex", TypeName(t))
	}
	if isChar(a.Type) && (l.kind == litString || l.kind == litAtom) {
		text := l.text
		if _, nerr := parseNumber(l.text); l.kind == litAtom && nerr == nil && path != "" {
			// {last: 5} could mean the text "5" or the byte 5: ask.
			return fieldErr(path, "%s holds text, and %s is a number: write \"%s\" for the text, or [%s] for the byte", holder(path, t), l.raw, l.text, l.text)
		}
		if l.kind == litAtom {
			if text, err = unescapeText(text); err != nil {
				return fieldErr(path, "%s: %v", shorten(l.raw), err)
			}
		}
		if len(text) > len(buf) {
			return fieldErr(path, "%s is %d bytes, %s holds %d", shorten(l.raw), len(text), holder(path, t), len(buf))
		}
		copy(buf, text)
		return nil
	}
	if ip, ok := ipLiteral(l, len(buf)); ok {
		copy(buf, ip)
		return nil
	}
	if l.kind != litList {
		return wrongLiteral(l, t, path)
	}
	if len(l.elems) > int(a.Nelems) {
		return fieldErr(path, "%d elements given, %s holds %d", len(l.elems), holder(path, t), a.Nelems)
	}
	for i, e := range l.elems {
		p := fmt.Sprintf("%s[%d]", path, i)
		if err := encodeHinted(e, a.Type, hintFor("", a.Type, nil, false), p, buf[i*esize:(i+1)*esize], depth+1); err != nil {
			return err
		}
	}
	return nil
}

// holder names what holds a value in size messages: "the field" inside a
// struct, else the type.
func holder(path string, t btf.Type) string {
	if path != "" {
		return "the field"
	}
	return TypeName(t)
}

func encodeComposite(l *lit, t btf.Type, members []btf.Member, path string, buf []byte, depth int) error {
	if ip, ok := ipLiteral(l, len(buf)); ok {
		copy(buf, ip)
		return nil
	}
	if l.kind != litStruct {
		return wrongLiteral(l, t, path)
	}
	seen := make(map[string]bool, len(l.fields))
	for _, f := range l.fields {
		p := fieldPath(path, f.name)
		if seen[f.name] {
			return fieldErr(p, "given twice")
		}
		seen[f.name] = true
		m, ok := findMember(members, f.name, 0, 0)
		if !ok {
			return fieldErr(p, "%s has no such field; its fields are %s", TypeName(t), memberNames(members))
		}
		if m.BitfieldSize > 0 {
			if err := encodeBitfield(f.val, m, p, buf); err != nil {
				return err
			}
			continue
		}
		msize, err := btf.Sizeof(m.Type)
		off := int(m.Offset / 8)
		if err != nil || m.Offset%8 != 0 || off+msize > len(buf) {
			return fieldErr(p, "cannot write %s at bit %d of %s; give the whole value as hex", TypeName(m.Type), m.Offset, TypeName(t))
		}
		if err := encodeHinted(f.val, m.Type, hintFor(m.Name, m.Type, m.Tags, false), p, buf[off:off+msize], depth+1); err != nil {
			return err
		}
	}
	return nil
}

// findMember looks name up among members, and among the members of
// anonymous structs and unions, as C does. The member returned has its
// offset counted from the start of the outermost struct.
func findMember(members []btf.Member, name string, base btf.Bits, depth int) (btf.Member, bool) {
	if depth > maxAnonDepth {
		return btf.Member{}, false
	}
	for _, m := range members {
		if m.Name == name {
			m.Offset += base
			return m, true
		}
		if m.Name == "" {
			if inner := Members(m.Type); inner != nil {
				if found, ok := findMember(inner, name, base+m.Offset, depth+1); ok {
					return found, true
				}
			}
		}
	}
	return btf.Member{}, false
}

// maxAnonDepth bounds how deeply anonymous structs and unions nest when
// looking up a field: real types nest them a level or two, and a malformed
// type holding itself must not make the search explode.
const maxAnonDepth = 8

// Members returns the members of a struct or union type (behind typedefs
// and qualifiers), or nil for any other type.
func Members(t btf.Type) []btf.Member {
	switch v := underlying(t).(type) {
	case *btf.Struct:
		return v.Members
	case *btf.Union:
		return v.Members
	}
	return nil
}

// memberNames lists the field names a literal may use for members.
func memberNames(members []btf.Member) string {
	var names []string
	var walk func([]btf.Member, int)
	walk = func(ms []btf.Member, depth int) {
		for _, m := range ms {
			if m.Name != "" {
				names = append(names, m.Name)
			} else if inner := Members(m.Type); inner != nil && depth < maxAnonDepth {
				walk(inner, depth+1)
			}
		}
	}
	walk(members, 0)
	return listNames(names)
}

// encodeBitfield writes an integer or enum bitfield into the struct's
// bytes buf.
func encodeBitfield(l *lit, m btf.Member, path string, buf []byte) error {
	width := uint(m.BitfieldSize)
	if width > 64 || uint64(m.Offset)+uint64(width) > uint64(len(buf))*8 {
		return fieldErr(path, "cannot write a %d-bit bitfield at bit %d; give the whole value as hex", width, m.Offset)
	}
	var (
		n   *big.Int
		err error
	)
	switch v := underlying(m.Type).(type) {
	case *btf.Int:
		n, err = intValue(l, m.Type, v, width, path)
	case *btf.Enum:
		n, err = enumValue(l, m.Type, v, width, path)
	default:
		return fieldErr(path, "cannot write a bitfield of type %s; give the whole value as hex", TypeName(m.Type))
	}
	if err != nil {
		return err
	}
	if n.Sign() < 0 {
		n = new(big.Int).Add(n, new(big.Int).Lsh(big.NewInt(1), width))
	}
	setBits(buf, uint64(m.Offset), width, n.Uint64())
	return nil
}
