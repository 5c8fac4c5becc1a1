// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// tcpOption is one TCP option: kind and data (without the kind and length
// bytes), or, when raw, bytes sent verbatim (a malformed tail as decoded).
type tcpOption struct {
	kind byte
	data []byte
	raw  bool
}

// TCP option kinds with a name of their own.
const (
	tcpOptEOL    = 0
	tcpOptNOP    = 1
	tcpOptMSS    = 2
	tcpOptWScale = 3
	tcpOptSACKOK = 4
	tcpOptSACK   = 5
	tcpOptTS     = 8
)

// parseTCPOptions reads [mss=1460, sack_ok, ts=(1, 2), nop, wscale=7,
// sack=(l, r, ...), eol, opt=(kind, 0xdata), raw=0xbytes].
func parseTCPOptions(v Value) (any, error) {
	if v.Kind != ValueList {
		return nil, fmt.Errorf("expected a list such as [mss=1460, sack_ok, nop, wscale=7], found %s", v)
	}
	opts := []tcpOption{}
	for _, it := range v.Items {
		o, err := parseTCPOption(it)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	return opts, nil
}

func parseTCPOption(it *Arg) (tcpOption, error) {
	name := strings.ToLower(it.Name)
	if name == "" && it.Value.Kind == ValueWord {
		switch strings.ToLower(it.Value.Text) {
		case "nop":
			return tcpOption{kind: tcpOptNOP}, nil
		case "eol":
			return tcpOption{kind: tcpOptEOL}, nil
		case "sack_ok":
			return tcpOption{kind: tcpOptSACKOK, data: []byte{}}, nil
		}
	}
	nums := func(n int, bits int) ([]uint64, error) {
		items := []*Arg{{Value: it.Value}}
		if it.Value.Kind == ValueTuple {
			items = it.Value.Items
		}
		if n > 0 && len(items) != n || n < 0 && (len(items) == 0 || len(items)%2 != 0) {
			return nil, fmt.Errorf("%s: wrong number of values", it)
		}
		out := make([]uint64, len(items))
		for i, x := range items {
			if x.Name != "" || x.Value.Kind != ValueWord {
				return nil, fmt.Errorf("%s: %s is not a number", name, x)
			}
			var err error
			if out[i], err = parseUint(x.Value.Text, bits); err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
		}
		return out, nil
	}
	switch name {
	case "mss":
		n, err := nums(1, 16)
		if err != nil {
			return tcpOption{}, err
		}
		return tcpOption{kind: tcpOptMSS, data: binary.BigEndian.AppendUint16(nil, uint16(n[0]))}, nil
	case "wscale":
		n, err := nums(1, 8)
		if err != nil {
			return tcpOption{}, err
		}
		return tcpOption{kind: tcpOptWScale, data: []byte{byte(n[0])}}, nil
	case "ts":
		n, err := nums(2, 32)
		if err != nil {
			return tcpOption{}, fmt.Errorf("%v; write ts=(value, echo)", err)
		}
		return tcpOption{kind: tcpOptTS, data: binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(n[0])), uint32(n[1]))}, nil
	case "sack":
		n, err := nums(-1, 32)
		if err != nil {
			return tcpOption{}, fmt.Errorf("%v; write sack=(left, right, ...) in pairs", err)
		}
		var data []byte
		for _, x := range n {
			data = binary.BigEndian.AppendUint32(data, uint32(x))
		}
		return tcpOption{kind: tcpOptSACK, data: data}, nil
	case "opt":
		items := it.Value.Items
		if it.Value.Kind != ValueTuple || len(items) < 1 || len(items) > 2 || items[0].Value.Kind != ValueWord {
			return tcpOption{}, fmt.Errorf("%s: write opt=(kind, 0xdata)", it)
		}
		kind, err := parseUint(items[0].Value.Text, 8)
		if err != nil {
			return tcpOption{}, fmt.Errorf("opt: %v", err)
		}
		data := []byte{}
		if len(items) == 2 {
			if data, err = parseHex(items[1].Value.Text); err != nil {
				return tcpOption{}, fmt.Errorf("opt: %v", err)
			}
		}
		if kind <= tcpOptNOP && len(data) > 0 || len(data) > 38 {
			return tcpOption{}, fmt.Errorf("opt: kind %d cannot carry %d bytes", kind, len(data))
		}
		if kind <= tcpOptNOP {
			return tcpOption{kind: byte(kind)}, nil
		}
		return tcpOption{kind: byte(kind), data: data}, nil
	case "raw":
		data, err := parseHex(it.Value.Text)
		if err != nil || it.Value.Kind == ValueList || it.Value.Kind == ValueTuple {
			return tcpOption{}, fmt.Errorf("raw: write raw=0xbytes")
		}
		return tcpOption{data: data, raw: true}, nil
	}
	return tcpOption{}, fmt.Errorf("unknown TCP option %s; options are mss=N, wscale=N, sack_ok, ts=(value, echo), sack=(left, right), nop, eol, opt=(kind, 0xdata), raw=0xbytes", it)
}

// formatTCPOptions writes options as parseTCPOptions reads them.
func formatTCPOptions(v any) string {
	opts, _ := v.([]tcpOption)
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = o.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (o tcpOption) String() string {
	u32 := func(b []byte) string { return strconv.FormatUint(uint64(binary.BigEndian.Uint32(b)), 10) }
	switch {
	case o.raw:
		return "raw=0x" + hex.EncodeToString(o.data)
	case o.kind == tcpOptEOL:
		return "eol"
	case o.kind == tcpOptNOP:
		return "nop"
	case o.kind == tcpOptMSS && len(o.data) == 2:
		return fmt.Sprintf("mss=%d", binary.BigEndian.Uint16(o.data))
	case o.kind == tcpOptWScale && len(o.data) == 1:
		return fmt.Sprintf("wscale=%d", o.data[0])
	case o.kind == tcpOptSACKOK && len(o.data) == 0:
		return "sack_ok"
	case o.kind == tcpOptTS && len(o.data) == 8:
		return "ts=(" + u32(o.data) + ", " + u32(o.data[4:]) + ")"
	case o.kind == tcpOptSACK && len(o.data) > 0 && len(o.data)%8 == 0:
		var edges []string
		for i := 0; i < len(o.data); i += 4 {
			edges = append(edges, u32(o.data[i:]))
		}
		return "sack=(" + strings.Join(edges, ", ") + ")"
	case len(o.data) == 0:
		return fmt.Sprintf("opt=(%d)", o.kind)
	}
	return fmt.Sprintf("opt=(%d, 0x%x)", o.kind, o.data)
}

func encodeTCPOptions(opts []tcpOption) []byte {
	var b []byte
	for _, o := range opts {
		switch {
		case o.raw:
			b = append(b, o.data...)
		case o.kind <= tcpOptNOP:
			b = append(b, o.kind)
		default:
			b = append(b, o.kind, byte(2+len(o.data)))
			b = append(b, o.data...)
		}
	}
	return b
}

// decodeTCPOptions walks the option bytes. A malformed tail becomes one
// raw item so that the options read back build the same bytes, and the
// zeros that pad the list to 32 bits are dropped (building adds them).
func decodeTCPOptions(b []byte) []tcpOption {
	opts := []tcpOption{}
	for i := 0; i < len(b); {
		k := b[i]
		if k <= tcpOptNOP {
			opts = append(opts, tcpOption{kind: k})
			i++
			continue
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			opts = append(opts, tcpOption{data: append([]byte{}, b[i:]...), raw: true})
			break
		}
		n := int(b[i+1])
		opts = append(opts, tcpOption{kind: k, data: append([]byte{}, b[i+2:i+n]...)})
		i += n
	}
	for len(opts) > 0 {
		last := opts[len(opts)-1]
		if last.raw || last.kind != tcpOptEOL || len(pad4(encodeTCPOptions(opts[:len(opts)-1]))) != len(b) {
			break
		}
		opts = opts[:len(opts)-1]
	}
	return opts
}
