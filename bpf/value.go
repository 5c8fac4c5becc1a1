// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf/hexbytes"
)

// Keys and values cross this file in two directions:
//
//   - ParseValue turns what a user typed into the bytes the kernel wants.
//     Several words are bpftool's byte syntax ("hex 01 02", "0x01 0 0 0");
//     one word is a literal typed by the map's BTF (value_literal.go reads
//     its syntax, value_parse.go encodes it by the type).
//   - FormatValue turns the kernel's bytes back into text for tables and
//     into values for JSON (value_format.go). Its text is a literal that
//     ParseValue accepts again, so a dumped value can be pasted back.

// ParseValue turns the words a user typed for a key or value into the size
// bytes the kernel expects, typed by t (nil when the map has no BTF).
//
// words is everything typed for the key or value, as the shell split it: a
// {...} or [...] literal is one word, a quoted word arrives without its
// quotes. Several words are bytes as bpftool takes them: "hex 01 02 03"
// (also "hex 010203") or "0x01 0 0 0" (each 0..255), exactly size of them.
// One word is read by t: 42, 0x2a, -1, true, an enum constant, 10.0.0.1 for a
// 4-byte field (network order), text for a char array, {field: value, ...}
// for a struct or union (omitted fields are zero), [1, 2, 3] for an array
// (missing elements are zero). Without BTF one word is an integer of size
// 1, 2, 4 or 8 bytes in host order.
//
// Errors are one line and name the field they are about, e.g.
// `field comment: "..." is 20 bytes, the field holds 16`. They do not say
// whether the words were a key or a value: callers add that.
func ParseValue(words []string, t btf.Type, size int) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	switch {
	case len(words) == 0:
		return nil, fmt.Errorf("no value given: type a literal such as 42 or bytes such as 0x01 0 0 0")
	case words[0] == "hex":
		b, err = parseHexWords(words[1:])
	case len(words) > 1:
		if _, nerr := parseNumber(words[0]); nerr != nil {
			// A literal and more: the rest is not part of it (bytes
			// would all be numbers).
			return nil, fmt.Errorf("unexpected %q after %q: a literal is one word (quote text that has blanks)", clipWord(words[1]), clipWord(words[0]))
		}
		b, err = parseByteWords(words)
	case t == nil:
		return parseUntyped(words[0], size)
	default:
		return parseTyped(words[0], t, size)
	}
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, fmt.Errorf("%d bytes given, the map wants %d%s", len(b), size, typeNote(t))
	}
	return b, nil
}

// FormatValue renders data typed by t for people (text) and for JSON (obj).
//
// With BTF, text is a literal ParseValue accepts back: integers in decimal
// (addresses too: BTF does not mark them), bools as true/false, enums by
// name, pointers in hex (numbers in obj), floats in their shortest exact form (+Inf, -Inf,
// nan(0x7fc00000)), char arrays as quoted strings (trailing NULs trimmed,
// other bytes escaped as \xHH, '"' as \x22), arrays as [1, 2, 3] and
// structs and unions as {name: value, ...} with every member in declaration
// order (members of anonymous structs and unions inline, as C names them).
// obj holds int64, uint64, json.Number (128-bit integers, floats), bool,
// string, Object and []any values, so numbers never lose precision in JSON;
// it matches bpftool's "formatted" JSON, which shows a char array as a
// string only when it is printable ASCII ended by a NUL (else as numbers).
//
// Without BTF, text is hex bytes as bpftool prints them ("01 00 00 00") and
// obj an array of "0x01" strings. When data is not t's size or t holds
// something with no literal (a long double), obj is the same and text is
// "hex 01 00 00 00", which ParseValue takes back as words.
func FormatValue(data []byte, t btf.Type) (text string, obj any) {
	if t != nil {
		if n, err := btf.Sizeof(t); err == nil && n == len(data) {
			if text, obj, err := formatTyped(data, t); err == nil {
				return text, obj
			}
		}
	}
	text, obj = formatHex(data)
	if t != nil && len(data) > 0 {
		text = "hex " + text
	}
	return text, obj
}

// Object is a struct or union decoded for JSON: its members in declaration
// order, which a Go map would lose.
type Object []Field

// Field is one member of an Object.
type Field struct {
	Name  string
	Value any
}

// MarshalJSON writes o as a JSON object with its fields in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, err := json.Marshal(f.Name)
		if err != nil {
			return nil, err
		}
		val, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(val)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// formatHex is bpftool's rendering of bytes without BTF. It runs for every
// entry of a large map dump, hence the table instead of fmt.
func formatHex(data []byte) (string, []any) {
	obj := make([]any, len(data))
	for i, c := range data {
		obj[i] = hexByteNames[c]
	}
	return hexText(data), obj
}

// hexText is bytes as bpftool prints them without BTF: "01 00 00 00".
func hexText(data []byte) string {
	const digits = "0123456789abcdef"
	if len(data) == 0 {
		return ""
	}
	text := make([]byte, 0, 3*len(data))
	for i, c := range data {
		if i > 0 {
			text = append(text, ' ')
		}
		text = append(text, digits[c>>4], digits[c&15])
	}
	return string(text)
}

// hexByteNames holds "0x00" to "0xff", as bpftool's JSON spells bytes.
var hexByteNames = func() (names [256]any) {
	for i := range names {
		names[i] = fmt.Sprintf("0x%02x", i)
	}
	return names
}()

// parseHexWords reads the words after "hex", as every bpfsh command does
// (see package hexbytes).
func parseHexWords(words []string) ([]byte, error) {
	b, err := hexbytes.Parse(words)
	if err != nil {
		return nil, fmt.Errorf("hex: %w", err)
	}
	return b, nil
}

// parseByteWords reads bpftool's byte list: one word per byte, each a
// number 0..255. bpftool keeps only the low byte of larger numbers; bpfsh
// refuses them, since a silently truncated key finds the wrong entry.
func parseByteWords(words []string) ([]byte, error) {
	out := make([]byte, 0, len(words))
	for _, w := range words {
		n, err := parseNumber(w)
		if err != nil {
			return nil, fmt.Errorf("%q is not a byte: with several words give one byte each, 0..255 in decimal or 0x hex (e.g. 0x01 0 0 0)", w)
		}
		if n.Sign() < 0 || n.Cmp(big.NewInt(255)) > 0 {
			return nil, fmt.Errorf("byte %q is out of range 0..255", w)
		}
		out = append(out, byte(n.Uint64()))
	}
	return out, nil
}

// parseUntyped reads one word for a map without BTF: an integer of the
// map's size in host byte order, signed or unsigned.
func parseUntyped(word string, size int) ([]byte, error) {
	switch size {
	case 1, 2, 4, 8:
	default:
		return nil, fmt.Errorf("the map has no BTF and wants %d bytes: give them as hex (hex 01 02 ...) or one byte per word (0x01 0 0 ...)", size)
	}
	n, err := parseNumber(word)
	if err != nil {
		return nil, fmt.Errorf("%s; the map has no BTF, so give a number or bytes (hex 01 02 ...)", err)
	}
	bits := uint(size * 8)
	lo := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), bits-1))
	hi := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), bits), big.NewInt(1))
	if n.Cmp(lo) < 0 || n.Cmp(hi) > 0 {
		return nil, fmt.Errorf("%s does not fit in %d bytes (%s..%s)", word, size, lo, hi)
	}
	b := make([]byte, size)
	putInt(b, n)
	return b, nil
}

// clipWord shortens a word a message quotes, as other errors clip theirs.
func clipWord(w string) string {
	if len(w) > 60 {
		return w[:60] + "..."
	}
	return w
}

// typeNote is " (TYPE)" for messages about a value of type t.
func typeNote(t btf.Type) string {
	if t == nil {
		return ""
	}
	return " (" + TypeName(t) + ")"
}

// TypeName spells t briefly as C does, for messages and descriptions:
// __u32, struct flow_key, char[16], enum color, struct {...} for an
// anonymous one (CTypeName writes that out in full).
func TypeName(t btf.Type) string {
	return typeNameDepth(t, 0)
}

func typeNameDepth(t btf.Type, depth int) string {
	if depth > maxDepth {
		return "..."
	}
	switch v := t.(type) {
	case nil:
		return "void"
	case *btf.Void:
		return "void"
	case *btf.Int:
		return v.Name
	case *btf.Float:
		return v.Name
	case *btf.Typedef:
		return v.Name
	case *btf.Struct:
		return "struct " + orAnon(v.Name)
	case *btf.Union:
		return "union " + orAnon(v.Name)
	case *btf.Enum:
		return "enum " + orAnon(v.Name)
	case *btf.Fwd:
		return v.Kind.String() + " " + v.Name
	case *btf.Array:
		return fmt.Sprintf("%s[%d]", typeNameDepth(v.Type, depth+1), v.Nelems)
	case *btf.Pointer:
		return typeNameDepth(v.Target, depth+1) + " *"
	case *btf.Const:
		return "const " + typeNameDepth(v.Type, depth+1)
	case *btf.Volatile:
		return "volatile " + typeNameDepth(v.Type, depth+1)
	case *btf.Restrict:
		return typeNameDepth(v.Type, depth+1) + " restrict"
	case *btf.TypeTag:
		return typeNameDepth(v.Type, depth+1)
	}
	if n := t.TypeName(); n != "" {
		return n
	}
	return fmt.Sprintf("%s", t)
}

func orAnon(name string) string {
	if name == "" {
		return "{...}"
	}
	return name
}

// maxDepth bounds how deeply literals and types nest, so that a hostile
// literal or a malformed (cyclic) type ends in an error, not a crash.
const maxDepth = 64

// underlying strips typedefs and qualifiers (const, volatile, restrict,
// type tags), which change nothing about a value's bytes.
func underlying(t btf.Type) btf.Type {
	for range maxDepth {
		switch v := t.(type) {
		case *btf.Typedef:
			t = v.Type
		case *btf.Const:
			t = v.Type
		case *btf.Volatile:
			t = v.Type
		case *btf.Restrict:
			t = v.Type
		case *btf.TypeTag:
			t = v.Type
		default:
			return t
		}
	}
	return nil
}

// isChar reports whether t is C's char, whose arrays hold text. __u8 and
// unsigned char arrays hold numbers.
func isChar(t btf.Type) bool {
	i, ok := underlying(t).(*btf.Int)
	return ok && i.Size == 1 && (i.Encoding == btf.Char || i.Name == "char")
}

// charArray returns t as an array of char, or nil.
func charArray(t btf.Type) *btf.Array {
	if a, ok := underlying(t).(*btf.Array); ok && isChar(a.Type) {
		return a
	}
	return nil
}

// fieldPath names a member below path: "stats" + "comment" = "stats.comment".
func fieldPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fieldErr is an error about the value at path ("" for the whole value).
func fieldErr(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		return fmt.Errorf("%s", msg)
	}
	return fmt.Errorf("field %s: %s", path, msg)
}

// hexDigit reads one hex digit (for \xHH escapes in quoted text).
func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
