// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/bpf/hexbytes"
)

// FieldKind says how a field's value is written and which Go type it has
// once parsed (the type Build reads and Decode reports).
type FieldKind int

// The field kinds. The Go type of each is given after the example.
const (
	KindUint    FieldKind = iota // 64, 0x40: uint64, at most Bits bits
	KindMAC                      // 02:00:00:00:00:01: net.HardwareAddr
	KindIPv4                     // 10.0.0.1: net.IP of 4 bytes
	KindIPv6                     // fd00::1: net.IP of 16 bytes
	KindBytes                    // "text" (escapes \n \r \t \\ \" \xHH) or hex digits (0x optional): []byte
	KindHex                      // hex digits, quoted or not (0x optional): []byte
	KindString                   // "text" or a bare word: string
	KindStrings                  // ["a", "b"]: []string
	KindBool                     // true, false (1, 0, yes, no, on, off): bool
	KindFlags                    // named bits, S|A or SA (Letters), or a number: uint64
	KindEnum                     // a name from Names, or a number: uint64
	KindList                     // [...] read by the field's own Parse (TCP options): Parse's type
)

var kindNames = map[FieldKind]string{
	KindUint: "number", KindMAC: "MAC", KindIPv4: "IPv4 address", KindIPv6: "IPv6 address",
	KindBytes: "bytes", KindHex: "hex", KindString: "string", KindStrings: "list of strings",
	KindBool: "bool", KindFlags: "flags", KindEnum: "enum", KindList: "list",
}

func (k FieldKind) String() string { return kindNames[k] }

// FieldDef describes one field of a layer.
type FieldDef struct {
	Name string
	Kind FieldKind
	// Bits is the width of a KindUint, KindFlags or KindEnum field; 0
	// means 64.
	Bits int
	// Hex writes a number as 0x with Bits/4 digits (checksums, types).
	Hex bool
	// Names are the bits of a KindFlags field or the values of a KindEnum
	// field, by name. Names are matched without regard to case.
	Names map[string]uint64
	// Letters writes KindFlags as one letter per bit ("SA"), and lets
	// users write them so; the names must then be single letters or have
	// single-letter synonyms with the same bit.
	Letters bool
	// Default is the value used when the field is omitted, in expression
	// syntax; empty means the kind's zero value. Ignored when Auto.
	Default string
	// Auto marks a field the layer computes when it is omitted (lengths,
	// checksums); a value written is kept as typed.
	Auto bool
	// Next marks a field that names the next layer (Ether.type,
	// IPv4.proto): when omitted it is taken from the next layer's Bind,
	// and a next layer that binds to this layer but not through this field
	// is an error rather than a silent default.
	Next bool
	// BuildOnly marks an option of building (Ether's pad) rather than a
	// header field: Decode never reports it and Match ignores it.
	BuildOnly bool
	// Alias makes this name another way to write the field Alias (Raw's
	// hex= is load= written in hex): it parses with its own Kind and is
	// stored under the target.
	Alias string
	// Help is a short description for "packet layers".
	Help string
	// Parse and Format replace the kind's own conversion; a KindList field
	// needs them (TCP options). Parse gets the value as written and
	// returns the field's Go value (nil is not allowed); Format must write
	// what Parse reads, in one canonical form, since Match compares text.
	Parse  func(v Value) (any, error)
	Format func(v any) string

	layer  *LayerDef
	target *FieldDef // for an alias
	def    any       // Default parsed
	byVal  map[uint64]string
}

func (f *FieldDef) prepare() error {
	if f.Bits == 0 {
		f.Bits = 64
	}
	if (f.Kind == KindList && f.Parse == nil) || (f.Parse == nil) != (f.Format == nil) {
		return fmt.Errorf("Parse and Format come together, and a KindList field needs them")
	}
	if f.Bits < 0 || f.Bits > 64 {
		return fmt.Errorf("width %d bits", f.Bits)
	}
	if f.Kind == KindFlags || f.Kind == KindEnum {
		f.byVal = map[uint64]string{}
		// The shortest name of a value is the one written back, so SYN
		// prints as S; among names of equal length the first in order.
		for _, name := range slices.Sorted(maps.Keys(f.Names)) {
			v := f.Names[name]
			if old, ok := f.byVal[v]; !ok || len(name) < len(old) {
				f.byVal[v] = name
			}
		}
	}
	if f.Auto || f.Default == "" {
		return nil
	}
	v, err := parseExprValue(f.Default)
	if err != nil {
		return fmt.Errorf("default %q: %v", f.Default, err)
	}
	if f.def, err = f.parse(v); err != nil {
		return fmt.Errorf("default %q: %v", f.Default, err)
	}
	return nil
}

// DefaultText says what an omitted field becomes, for help: its Default,
// its kind's zero value, "computed" for an Auto field, and for an alias
// the field it sets.
func (f *FieldDef) DefaultText() string {
	switch {
	case f.Auto:
		return "computed"
	case f.Alias != "":
		return "(sets " + f.Alias + ")"
	case f.Default != "":
		return f.Default
	case f.Kind == KindList:
		return "[]"
	}
	return f.format(f.zero())
}

// qualified is Layer.field, as errors name a field.
func (f *FieldDef) qualified() string { return f.layer.Name + "." + f.Name }

// zero is the value of an omitted field with no Default.
func (f *FieldDef) zero() any {
	switch f.Kind {
	case KindList:
		return nil
	case KindMAC:
		return net.HardwareAddr(make([]byte, 6))
	case KindIPv4:
		return net.IPv4zero.To4()
	case KindIPv6:
		return net.IPv6zero
	case KindBytes, KindHex:
		return []byte{}
	case KindString:
		return ""
	case KindStrings:
		return []string{}
	case KindBool:
		return false
	}
	return uint64(0)
}

// parse converts a value as written into the field's Go type.
func (f *FieldDef) parse(v Value) (any, error) {
	if f.Parse != nil {
		return f.Parse(v)
	}
	if v.Kind == ValueList || v.Kind == ValueTuple {
		if f.Kind == KindStrings && v.Kind == ValueList {
			out := make([]string, 0, len(v.Items))
			for _, it := range v.Items {
				if it.Name != "" || (it.Value.Kind != ValueWord && it.Value.Kind != ValueString) {
					return nil, fmt.Errorf("%s is not a string", it)
				}
				out = append(out, it.Value.Text)
			}
			return out, nil
		}
		return nil, fmt.Errorf("expected %s, found a %s", f.describe(), map[ValueKind]string{ValueList: "list", ValueTuple: "tuple"}[v.Kind])
	}
	text := v.Text
	switch f.Kind {
	case KindUint:
		if v.Kind == ValueString {
			return nil, fmt.Errorf("expected a number, found the string %s", Quote(text))
		}
		return parseUint(text, f.Bits)
	case KindMAC:
		mac, err := net.ParseMAC(text)
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("%q is not a MAC address (like 02:00:00:00:00:01)", text)
		}
		return mac, nil
	case KindIPv4:
		ip := net.ParseIP(text).To4()
		if ip == nil || strings.Contains(text, ":") {
			return nil, fmt.Errorf("%q is not an IPv4 address (like 10.0.0.1)", text)
		}
		return ip, nil
	case KindIPv6:
		ip := net.ParseIP(text)
		if ip == nil || !strings.Contains(text, ":") {
			return nil, fmt.Errorf("%q is not an IPv6 address (like fd00::1)", text)
		}
		return ip.To16(), nil
	case KindBytes:
		if v.Kind == ValueString {
			return []byte(text), nil
		}
		b, err := parseHex(text)
		if err != nil {
			return nil, fmt.Errorf("%v; quote text: \"...\"", err)
		}
		return b, nil
	case KindHex:
		return parseHex(text)
	case KindString:
		return text, nil
	case KindStrings:
		return nil, fmt.Errorf("expected a list of strings such as [\"GET\", \"a\"], found %s", v)
	case KindBool:
		switch strings.ToLower(text) {
		case "true", "1", "yes", "on":
			return true, nil
		case "false", "0", "no", "off":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not true or false", text)
	case KindFlags:
		return f.parseFlags(text)
	case KindEnum:
		if n, ok := f.lookupName(text); ok {
			return n, nil
		}
		if !isNumber(text) {
			return nil, fmt.Errorf("%q is not a number or one of %s", text, f.nameList())
		}
		return parseUint(text, f.Bits)
	}
	return nil, fmt.Errorf("field kind %d has no parser", f.Kind)
}

func (f *FieldDef) describe() string {
	switch f.Kind {
	case KindFlags, KindEnum:
		return "a number or one of " + f.nameList()
	case KindStrings:
		return "a list of strings"
	}
	return "a " + f.Kind.String()
}

func (f *FieldDef) lookupName(s string) (uint64, bool) {
	for name, v := range f.Names {
		if strings.EqualFold(name, s) {
			return v, true
		}
	}
	return 0, false
}

// flagHelp says how to write the flags: TCP's letters in bit order
// ("FSRPAUECN") or the names.
func (f *FieldDef) flagHelp() string {
	if !f.Letters {
		return "flags are " + f.nameList() + ", combined with | (or a number)"
	}
	var letters strings.Builder
	for bit := uint64(1); bit != 0 && bit>>f.Bits == 0; bit <<= 1 {
		if name, ok := f.byVal[bit]; ok && len(name) == 1 {
			letters.WriteString(name)
		}
	}
	return "write the letters " + letters.String() + " (SA), or names joined by | (SYN|ACK), or a number"
}

func (f *FieldDef) nameList() string {
	return strings.Join(slices.Sorted(maps.Keys(f.Names)), ", ")
}

// parseFlags reads S|A, SA (one letter per flag), SYN|ACK, or a number;
// parts of an | expression may also be numbers.
func (f *FieldDef) parseFlags(text string) (uint64, error) {
	if text == "" {
		return 0, nil
	}
	var bits uint64
	for part := range strings.SplitSeq(text, "|") {
		part = strings.TrimSpace(part)
		if v, ok := f.lookupName(part); ok {
			bits |= v
			continue
		}
		if isNumber(part) {
			v, err := parseUint(part, f.Bits)
			if err != nil {
				return 0, err
			}
			bits |= v
			continue
		}
		if f.Letters && part != "" {
			ok := true
			var v uint64
			for _, r := range part {
				b, found := f.lookupName(string(r))
				if !found {
					ok = false
					break
				}
				v |= b
			}
			if ok {
				bits |= v
				continue
			}
		}
		return 0, fmt.Errorf("unknown flag %q; %s", part, f.flagHelp())
	}
	if f.Bits < 64 && bits>>f.Bits != 0 {
		return 0, fmt.Errorf("%#x does not fit in %d bits", bits, f.Bits)
	}
	return bits, nil
}

// format writes a value of the field's Go type in expression syntax; the
// canonical form Decode reports and Match compares.
func (f *FieldDef) format(v any) string {
	if f.Format != nil {
		return f.Format(v)
	}
	switch x := v.(type) {
	case uint64:
		switch f.Kind {
		case KindFlags:
			return f.formatFlags(x)
		case KindEnum:
			if name, ok := f.byVal[x]; ok {
				return name
			}
		}
		if f.Hex {
			return fmt.Sprintf("0x%0*x", (f.Bits+3)/4, x)
		}
		return strconv.FormatUint(x, 10)
	case net.HardwareAddr:
		return x.String()
	case net.IP:
		if a, ok := netip.AddrFromSlice(x); ok && f.Kind == KindIPv6 {
			// net.IP writes an IPv4-mapped address as 1.2.3.4, which
			// reads back as IPv4; netip keeps ::ffff:1.2.3.4.
			return netip.AddrFrom16(a.As16()).String()
		}
		return x.String()
	case []byte:
		if f.Kind == KindBytes && printable(x) {
			return Quote(string(x))
		}
		if len(x) == 0 {
			return `""`
		}
		return "0x" + hex.EncodeToString(x)
	case string:
		return Quote(x)
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = Quote(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func (f *FieldDef) formatFlags(bits uint64) string {
	if bits == 0 {
		return "0"
	}
	var parts []string
	rest := bits
	for bit := uint64(1); bit != 0 && bit <= bits; bit <<= 1 {
		name, ok := f.byVal[bit]
		if bits&bit == 0 || !ok {
			continue
		}
		parts = append(parts, name)
		rest &^= bit
	}
	sep := "|"
	if f.Letters {
		sep = ""
	}
	out := strings.Join(parts, sep)
	if rest != 0 {
		if out != "" {
			out += "|"
		}
		out += fmt.Sprintf("%#x", rest)
	}
	return out
}

// parseUint reads a decimal or 0x/0b number that fits in bits. A leading
// zero does not mean octal: ttl=010 is ten.
func parseUint(text string, bits int) (uint64, error) {
	s, base := text, 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) > 2 && (s[:2] == "0b" || s[:2] == "0B"):
		s, base = s[2:], 2
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s does not fit in %d bits", text, bits)
		}
		return 0, fmt.Errorf("%q is not a number", text)
	}
	if bits < 64 && n>>bits != 0 {
		return 0, fmt.Errorf("%s does not fit in %d bits (0..%d)", text, bits, uint64(1)<<bits-1)
	}
	return n, nil
}

// isNumber reports whether s is written as a number (starts with a
// digit), so that errors can say "does not fit" rather than "unknown name".
func isNumber(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// parseHex reads a hex field value as "hex" words are read (see package
// hexbytes): 0x6162, 6162, 0x61:62.
// An empty value is no bytes.
func parseHex(text string) ([]byte, error) {
	if text == "" {
		return []byte{}, nil
	}
	return hexbytes.Word(text)
}

// printable reports whether b reads well as a quoted string: printable
// ASCII and \r \n \t, and no '"' (the shell's tokenizer ends a quoted
// string at the first '"', escaped or not).
func printable(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	for _, c := range b {
		if (c < 0x20 || c > 0x7e || c == '"') && c != '\r' && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}

// Quote writes s as a double-quoted string with the escapes the parser
// reads: \\ \" \n \r \t and \xHH for other bytes outside printable ASCII.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c > 0x7e {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
