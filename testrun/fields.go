// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// field is one named member of a context struct, with anonymous unions
// and structs flattened into their parent (so __sk_buff's flow_keys and
// bpf_sk_lookup's cookie are found by name).
type field struct {
	Name   string
	Offset int // bytes
	Size   int
	Type   btf.Type // as declared (typedefs kept)
	// BigEndian is true for __be16/__be32 fields: users type port 40000,
	// the kernel wants network order.
	BigEndian bool
}

// fields lists st's members in order, flattening anonymous members.
// Bitfields (only padding in the kernel's context structs) are skipped.
func fields(st btf.Type, base int) []field {
	var out []field
	for _, m := range bpf.Members(st) {
		if m.BitfieldSize != 0 || m.Offset%8 != 0 {
			continue
		}
		off := base + int(m.Offset/8)
		if m.Name == "" {
			out = append(out, fields(m.Type, off)...)
			continue
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			continue
		}
		out = append(out, field{Name: m.Name, Offset: off, Size: size, Type: m.Type, BigEndian: isBigEndian(m.Type)})
	}
	return out
}

// isBigEndian reports whether t is declared through a __be* typedef.
func isBigEndian(t btf.Type) bool {
	for {
		td, ok := btf.QualifiedType(t).(*btf.Typedef)
		if !ok {
			return false
		}
		if strings.HasPrefix(td.Name, "__be") {
			return true
		}
		t = td.Type
	}
}

// isInt reports whether t is an integer (or enum) of a size bytes can hold.
func isInt(t btf.Type) bool {
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		return u.Size <= 8
	case *btf.Enum:
		return u.Size <= 8
	}
	return false
}

// isSigned reports whether the integer type t is signed.
func isSigned(t btf.Type) bool {
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		return u.Encoding == btf.Signed
	case *btf.Enum:
		return u.Signed
	}
	return false
}

// addrKind says whether a field holds an IP address: fields named like the
// kernel's (remote_ip4, ipv4_src, local_ip6, ipv6_dst) of 4 or 16 bytes.
func (f field) addrKind() int {
	n := strings.ToLower(f.Name)
	switch {
	case f.Size == 4 && (strings.Contains(n, "ip4") || strings.Contains(n, "ipv4")):
		return 4
	case f.Size == 16 && (strings.Contains(n, "ip6") || strings.Contains(n, "ipv6")):
		return 6
	}
	return 0
}

// encode turns the text a user typed for f into f.Size bytes. Integers,
// IP addresses and arrays of integers (what the kernel's context structs
// are made of) are encoded here, so that __be16 ports and address fields
// take the numbers and addresses people write; anything else (a syscall
// program's own nested structs, char arrays) goes to bpf.ParseValue.
func (f field) encode(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	out := make([]byte, f.Size)
	if k := f.addrKind(); k != 0 {
		if a, err := netip.ParseAddr(text); err == nil {
			switch {
			case k == 4 && a.Is4():
				b := a.As4()
				return b[:], nil
			case k == 6 && (a.Is6() || a.Is4()):
				b := a.As16()
				return b[:], nil
			}
			return nil, fmt.Errorf("%s holds an IPv%d address, not %s", f.Name, k, text)
		}
	}
	if isInt(f.Type) {
		if err := putInt(out, text, f.BigEndian, isSigned(f.Type)); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		return out, nil
	}
	if arr, ok := btf.UnderlyingType(f.Type).(*btf.Array); ok && isInt(arr.Type) {
		elems, err := splitList(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		esize := f.Size / max(int(arr.Nelems), 1)
		if len(elems) > int(arr.Nelems) {
			return nil, fmt.Errorf("%s has %d elements, got %d", f.Name, arr.Nelems, len(elems))
		}
		for i, e := range elems {
			if err := putInt(out[i*esize:(i+1)*esize], e, isBigEndian(arr.Type), isSigned(arr.Type)); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", f.Name, i, err)
			}
		}
		return out, nil
	}
	if _, ok := btf.UnderlyingType(f.Type).(*btf.Pointer); ok {
		if text == "0" || text == "null" || text == "NULL" {
			return out, nil
		}
		return nil, fmt.Errorf("%s is a kernel pointer; the kernel does not take it from user space", f.Name)
	}
	b, err := bpf.ParseValue([]string{text}, f.Type, f.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return b, nil
}

// putInt writes the integer text (decimal, 0x hex, 0o octal; negative
// values wrap, as -1 is all ones) into out in native or network order,
// checking that it fits.
func putInt(out []byte, text string, bigEndian, signed bool) error {
	bits := len(out) * 8
	var v uint64
	if strings.HasPrefix(text, "-") {
		n, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 0, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", text)
		}
		if bits < 64 && n < -(1<<(bits-1)) {
			return fmt.Errorf("%d does not fit in %d bits", n, bits)
		}
		v = uint64(n)
	} else {
		n, err := strconv.ParseUint(strings.ReplaceAll(text, "_", ""), 0, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", text)
		}
		if bits < 64 && n >= 1<<bits {
			return fmt.Errorf("%d does not fit in %d bits (at most %d)", n, bits, uint64(1)<<bits-1)
		}
		if signed && bits < 64 && n >= 1<<(bits-1) {
			return fmt.Errorf("%d does not fit in a signed %d-bit field (at most %d)", n, bits, uint64(1)<<(bits-1)-1)
		}
		v = n
	}
	var buf [8]byte
	if bigEndian {
		binary.BigEndian.PutUint64(buf[:], v)
		copy(out, buf[8-len(out):])
	} else {
		binary.NativeEndian.PutUint64(buf[:], v)
		copy(out, buf[:len(out)])
	}
	return nil
}

// getInt reads the integer in b (1, 2, 4 or 8 bytes).
func getInt(b []byte, bigEndian, signed bool) (uint64, int64) {
	var buf [8]byte
	if bigEndian {
		copy(buf[8-len(b):], b)
		u := binary.BigEndian.Uint64(buf[:])
		return u, int64(u)
	}
	copy(buf[:], b)
	u := binary.NativeEndian.Uint64(buf[:])
	if signed && len(b) < 8 && b[len(b)-1]&0x80 != 0 {
		return u, int64(u) - (1 << (8 * len(b)))
	}
	return u, int64(u)
}

// format renders f's bytes for people and for JSON: addresses as
// addresses, integers and arrays of them as numbers (as encode reads them
// back), anything else as bpf.FormatValue renders map values.
func (f field) format(b []byte) (string, any) {
	switch f.addrKind() {
	case 4:
		a := netip.AddrFrom4([4]byte(b))
		return a.String(), a.String()
	case 6:
		a := netip.AddrFrom16([16]byte(b))
		return a.String(), a.String()
	}
	if nb, t, ok := f.numbers(b); ok {
		return bpf.FormatValue(nb, t)
	}
	return bpf.FormatValue(b, f.Type)
}

// numbers returns f's bytes in host order with a type that reads them as
// plain integers, when f is an integer (an enum, a bool or a char too) or
// an array of them: that is how encode takes them, so bpf.FormatValue
// then prints numbers, not enum names or text, and network-order fields
// (ports) the numbers people write.
func (f field) numbers(b []byte) ([]byte, btf.Type, bool) {
	if isInt(f.Type) {
		if f.BigEndian {
			b = hostOrder(b, f.Size)
		}
		return b, plainInt(f.Type), true
	}
	arr, ok := btf.UnderlyingType(f.Type).(*btf.Array)
	if !ok || !isInt(arr.Type) || arr.Nelems == 0 {
		return nil, nil, false
	}
	if isBigEndian(arr.Type) {
		b = hostOrder(b, f.Size/int(arr.Nelems))
	}
	return b, &btf.Array{Index: arr.Index, Type: plainInt(arr.Type), Nelems: arr.Nelems}, true
}

// plainInt is an integer of the size and sign of t, an integer or enum.
func plainInt(t btf.Type) *btf.Int {
	size, _ := btf.Sizeof(t)
	enc := btf.Unsigned
	if isSigned(t) {
		enc = btf.Signed
	}
	return &btf.Int{Size: uint32(size), Encoding: enc}
}

// hostOrder returns b, network-order integers of size bytes each, with
// each in host order.
func hostOrder(b []byte, size int) []byte {
	out := bytes.Clone(b)
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 { // a little-endian host
		for i := 0; i+size <= len(out); i += size {
			slices.Reverse(out[i : i+size])
		}
	}
	return out
}

// splitList splits "[1, 2, 3]" into its elements.
func splitList(text string) ([]string, error) {
	parts, ok, err := splitInside(text, '[', ']')
	if !ok {
		return nil, fmt.Errorf("want a list such as [1, 2, 3], got %q", text)
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, err
}

// splitInside splits what is between text's opening and closing bracket
// at its top-level commas (nothing when it is blank); ok is false when
// text is not so bracketed.
func splitInside(text string, open, close byte) (parts []string, ok bool, err error) {
	if len(text) < 2 || text[0] != open || text[len(text)-1] != close {
		return nil, false, nil
	}
	inner := strings.TrimSpace(text[1 : len(text)-1])
	if inner == "" {
		return nil, true, nil
	}
	parts, err = splitTop(inner, ',')
	return parts, true, err
}

// splitTop splits s at sep where sep is outside brackets and quotes.
func splitTop(s string, sep byte) ([]string, error) {
	var (
		parts []string
		depth int
		quote byte
		start int
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '{' || c == '[' || c == '(':
			depth++
		case c == '}' || c == ']' || c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced %q at offset %d", c, i)
			}
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced brackets")
	}
	return append(parts, s[start:]), nil
}

// structPair is one "name: value" of a struct literal.
type structPair struct{ Name, Value string }

// parseStructLiteral splits "{mark: 5, ingress_ifindex: 1}" into pairs.
func parseStructLiteral(text string) ([]structPair, error) {
	text = strings.TrimSpace(text)
	parts, ok, err := splitInside(text, '{', '}')
	if !ok {
		return nil, fmt.Errorf("want fields in braces, e.g. {mark: 5, ingress_ifindex: 1}, got %q", text)
	}
	if err != nil {
		return nil, err
	}
	var out []structPair
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, value, ok := strings.Cut(p, ":")
		if !ok {
			return nil, fmt.Errorf("%q is not 'field: value'", p)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if name == "" || value == "" {
			return nil, fmt.Errorf("%q is not 'field: value'", p)
		}
		out = append(out, structPair{Name: strings.TrimPrefix(name, "."), Value: value})
	}
	return out, nil
}
