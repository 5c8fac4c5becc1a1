// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cilium/ebpf/btf"
)

// errUndecodable makes FormatValue fall back to hex bytes: the type holds
// something with no literal form (a long double, a function) or is
// malformed (members outside the struct, nesting without end).
var errUndecodable = errors.New("value cannot be decoded by its type")

// formatTyped renders data, which is exactly t's size, by t.
func formatTyped(data []byte, t btf.Type) (string, any, error) {
	var f formatter
	f.hint = hintFor("", t, nil, true)
	obj, err := f.value(data, t, 0)
	if err != nil {
		return "", nil, err
	}
	return f.sb.String(), obj, nil
}

// formatter writes a value's text while it builds its JSON form.
type formatter struct {
	sb    strings.Builder
	steps int
	// hint is how to show the next value, set by its container (see
	// value_hints.go) and used by value once.
	hint hint
}

// maxSteps bounds the work on one value: only a malformed type (a struct
// holding itself) comes near it.
const maxSteps = 1 << 20

func (f *formatter) value(data []byte, t btf.Type, depth int) (any, error) {
	f.steps++
	if depth > maxDepth || f.steps > maxSteps {
		return nil, errUndecodable
	}
	h := f.hint
	f.hint = hintNone
	if text, ok := addressText(data, h); ok {
		// JSON keeps what it would show without the hint.
		var raw formatter
		obj, err := raw.value(data, t, depth)
		if err == nil {
			f.sb.WriteString(text)
		}
		return obj, err
	}
	switch v := underlying(t).(type) {
	case *btf.Int:
		if v.Size == 0 || v.Size > 16 || int(v.Size) != len(data) {
			return nil, errUndecodable
		}
		if v.Size > 8 {
			return f.bigInt(data, v.Encoding == btf.Signed), nil
		}
		if h == hintBE && v.Encoding != btf.Bool {
			// The number the bytes mean on the wire; JSON keeps the raw one.
			var raw formatter
			obj := raw.integer(readUint(data), uint(8*v.Size), v)
			f.integer(readBE(data), uint(8*v.Size), v)
			return obj, nil
		}
		return f.integer(readUint(data), uint(8*v.Size), v), nil
	case *btf.Enum:
		if v.Size == 0 || v.Size > 8 || int(v.Size) != len(data) {
			return nil, errUndecodable
		}
		return f.enum(readUint(data), uint(8*v.Size), v), nil
	case *btf.Float:
		return f.float(data)
	case *btf.Pointer:
		if len(data) != 8 {
			return nil, errUndecodable
		}
		// Hex for people, a number for JSON, as bpftool shows pointers.
		u := readUint(data)
		f.sb.WriteString("0x")
		f.sb.WriteString(strconv.FormatUint(u, 16))
		return u, nil
	case *btf.Array:
		return f.array(data, v, depth)
	case *btf.Struct:
		return f.composite(data, v.Members, depth)
	case *btf.Union:
		return f.composite(data, v.Members, depth)
	}
	return nil, errUndecodable
}

// integer writes an integer bits wide (its size, or a bitfield's width)
// whose bits are the low bits of u.
func (f *formatter) integer(u uint64, bits uint, it *btf.Int) any {
	switch {
	case it.Encoding == btf.Bool && u <= 1:
		b := u == 1
		f.sb.WriteString(strconv.FormatBool(b))
		return b
	case it.Encoding == btf.Signed:
		s := signExtend(u, bits)
		f.sb.WriteString(strconv.FormatInt(s, 10))
		return s
	}
	f.sb.WriteString(strconv.FormatUint(u, 10))
	return u
}

// bigInt writes a 128-bit integer; JSON gets a json.Number since no Go
// integer holds it.
func (f *formatter) bigInt(data []byte, signed bool) any {
	be := make([]byte, len(data))
	copy(be, data)
	if hostLittleEndian {
		for i, j := 0, len(be)-1; i < j; i, j = i+1, j-1 {
			be[i], be[j] = be[j], be[i]
		}
	}
	n := new(big.Int).SetBytes(be)
	if signed && len(be) > 0 && be[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(be))))
	}
	s := n.String()
	f.sb.WriteString(s)
	return json.Number(s)
}

// enum writes an enum's constant by name, or its number when no constant
// has that value. A constant matches only if it fits the field, so that
// its name parses back to the same bits.
func (f *formatter) enum(u uint64, bits uint, e *btf.Enum) any {
	s := signExtend(u, bits)
	for _, v := range e.Values {
		if e.Signed && int64(v.Value) == s || !e.Signed && v.Value == u {
			f.sb.WriteString(v.Name)
			return v.Name
		}
	}
	if e.Signed {
		f.sb.WriteString(strconv.FormatInt(s, 10))
		return s
	}
	f.sb.WriteString(strconv.FormatUint(u, 10))
	return u
}

// float writes a float exactly enough to read back the same bits. JSON has
// no NaN or infinities, so those become strings; a NaN keeps its bits as
// nan(0x7fc00000).
func (f *formatter) float(data []byte) (any, error) {
	var (
		v    float64
		bits int
	)
	switch len(data) {
	case 4:
		v, bits = float64(math.Float32frombits(uint32(readUint(data)))), 32
	case 8:
		v, bits = math.Float64frombits(readUint(data)), 64
	default:
		return nil, errUndecodable
	}
	switch {
	case math.IsNaN(v):
		s := fmt.Sprintf("nan(0x%x)", readUint(data))
		f.sb.WriteString(s)
		return s, nil
	case math.IsInf(v, 0):
		s := strconv.FormatFloat(v, 'g', -1, bits)
		f.sb.WriteString(s)
		return s, nil
	}
	s := strconv.FormatFloat(v, 'g', -1, bits)
	f.sb.WriteString(s)
	return json.Number(s), nil
}

func (f *formatter) array(data []byte, a *btf.Array, depth int) (any, error) {
	esize, err := btf.Sizeof(a.Type)
	if err != nil || esize*int(a.Nelems) != len(data) {
		return nil, errUndecodable
	}
	if isChar(a.Type) {
		f.sb.WriteString(quoteText(bytes.TrimRight(data, "\x00")))
		if s, ok := cString(data); ok {
			return s, nil
		}
		signed := underlying(a.Type).(*btf.Int).Encoding == btf.Signed
		obj := make([]any, len(data))
		for i, c := range data {
			if signed {
				obj[i] = int64(int8(c))
			} else {
				obj[i] = uint64(c)
			}
		}
		return obj, nil
	}
	obj := []any{}
	f.sb.WriteByte('[')
	if esize > 0 {
		for i := range int(a.Nelems) {
			if i > 0 {
				f.sb.WriteString(", ")
			}
			f.hint = hintFor("", a.Type, nil, false)
			v, err := f.value(data[i*esize:(i+1)*esize], a.Type, depth+1)
			if err != nil {
				return nil, err
			}
			obj = append(obj, v)
		}
	}
	f.sb.WriteByte(']')
	return obj, nil
}

func (f *formatter) composite(data []byte, members []btf.Member, depth int) (any, error) {
	obj := Object{}
	f.sb.WriteByte('{')
	if err := f.members(data, members, 0, &obj, depth, 0); err != nil {
		return nil, err
	}
	f.sb.WriteByte('}')
	return obj, nil
}

// members writes every named member in declaration order; the members of
// an anonymous struct or union are written inline, as C names them. Every
// member of a union is written: which one is live is not known, and parsing
// them back in order rebuilds the same bytes.
func (f *formatter) members(data []byte, members []btf.Member, base btf.Bits, obj *Object, depth, anon int) error {
	f.steps++
	if depth > maxDepth || anon > maxAnonDepth || f.steps > maxSteps {
		return errUndecodable
	}
	for _, m := range members {
		off := base + m.Offset
		if m.Name == "" {
			// An unnamed bitfield is padding that C cannot name either.
			if inner := Members(m.Type); inner != nil && m.BitfieldSize == 0 {
				if err := f.members(data, inner, off, obj, depth+1, anon+1); err != nil {
					return err
				}
			}
			continue
		}
		if len(*obj) > 0 {
			f.sb.WriteString(", ")
		}
		f.sb.WriteString(m.Name)
		f.sb.WriteString(": ")
		var (
			v   any
			err error
		)
		if m.BitfieldSize > 0 {
			v, err = f.bitfield(data, m, off)
		} else {
			size, serr := btf.Sizeof(m.Type)
			start := int(off / 8)
			if serr != nil || off%8 != 0 || uint64(start)+uint64(size) > uint64(len(data)) {
				return errUndecodable
			}
			f.hint = hintFor(m.Name, m.Type, m.Tags, false)
			v, err = f.value(data[start:start+size], m.Type, depth+1)
		}
		if err != nil {
			return err
		}
		*obj = append(*obj, Field{Name: m.Name, Value: v})
	}
	return nil
}

// bitfield writes an integer or enum member that is m.BitfieldSize bits
// wide at bit off of the outermost struct's bytes.
func (f *formatter) bitfield(data []byte, m btf.Member, off btf.Bits) (any, error) {
	width := uint(m.BitfieldSize)
	if width > 64 || uint64(off)+uint64(width) > uint64(len(data))*8 {
		return nil, errUndecodable
	}
	u := getBits(data, uint64(off), width)
	switch v := underlying(m.Type).(type) {
	case *btf.Int:
		return f.integer(u, width, v), nil
	case *btf.Enum:
		return f.enum(u, width, v), nil
	}
	return nil, errUndecodable
}

// cString returns a char array's text for JSON when bpftool would show it
// as a string too: printable ASCII ended by a NUL. bpftool shows other
// char arrays as numbers, and so does bpfsh, also when bytes follow the
// first NUL (which bpftool would drop).
func cString(data []byte) (string, bool) {
	end := bytes.IndexByte(data, 0)
	if end < 0 {
		return "", false
	}
	for _, c := range data[:end] {
		if c < 0x20 || c >= 0x7f {
			return "", false
		}
	}
	for _, c := range data[end:] {
		if c != 0 {
			return "", false
		}
	}
	return string(data[:end]), true
}

// quoteText quotes a char array's text so that both the shell and
// ParseValue read it back: printable characters as they are, a backslash
// as \\, the double quote as \x22 (the shell's quotes have no escapes, so
// \" would end the word) and other bytes as \n, \t, \r or \xHH.
func quoteText(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '"':
			sb.WriteString(`\x22`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == utf8.RuneError && n == 1, !strconv.IsPrint(r):
			for _, c := range b[i : i+n] {
				fmt.Fprintf(&sb, `\x%02x`, c)
			}
		default:
			sb.Write(b[i : i+n])
		}
		i += n
	}
	sb.WriteByte('"')
	return sb.String()
}
