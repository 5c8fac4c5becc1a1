// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"encoding/json"
	"github.com/cilium/ebpf/btf"
	"math/big"
	"slices"
	"strconv"
)

// A map dump writes a million entries; encoding/json's reflection would
// cost more than reading them from the kernel. These appenders write the
// shapes the value codec returns (strings, integers, bools, nil, slices and
// maps of them, and values that marshal themselves) directly, and hand
// anything else to encoding/json.

// AppendValueJSON appends data typed by t as JSON, the obj of FormatValue,
// without building obj for the common cases: bytes without BTF and plain
// integers.
func AppendValueJSON(dst, data []byte, t btf.Type) []byte {
	if t == nil {
		return appendHexJSON(dst, data)
	}
	if it, ok := plainInt(data, t); ok {
		if it.Encoding == btf.Signed {
			return strconv.AppendInt(dst, signExtend(readUint(data), uint(8*it.Size)), 10)
		}
		return strconv.AppendUint(dst, readUint(data), 10)
	}
	_, obj := FormatValue(data, t)
	return AppendJSON(dst, obj)
}

// FormatText is the text of FormatValue alone, without building the JSON
// form for the common cases: bytes without BTF and plain integers.
func FormatText(data []byte, t btf.Type) string {
	if t == nil {
		return hexText(data)
	}
	if it, ok := plainInt(data, t); ok {
		// strconv's Format* (unlike Append*) allocate nothing for small
		// numbers, common in dumps of counters.
		if it.Encoding == btf.Signed {
			return strconv.FormatInt(signExtend(readUint(data), uint(8*it.Size)), 10)
		}
		return strconv.FormatUint(readUint(data), 10)
	}
	text, _ := FormatValue(data, t)
	return text
}

// plainInt says whether data, typed by t, is an integer that prints as a
// plain number: the common case the fast paths above take.
func plainInt(data []byte, t btf.Type) (*btf.Int, bool) {
	it, ok := underlying(t).(*btf.Int)
	return it, ok && int(it.Size) == len(data) && it.Size <= 8 && it.Encoding != btf.Bool
}

// appendHexJSON appends bytes as bpftool's JSON spells them without BTF:
// ["0x01","0x00"].
func appendHexJSON(dst, data []byte) []byte {
	const digits = "0123456789abcdef"
	dst = append(dst, '[')
	for i, c := range data {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"', '0', 'x', digits[c>>4], digits[c&15], '"')
	}
	return append(dst, ']')
}

// AppendJSON appends v, a value of the shapes FormatValue returns (or
// anything encoding/json takes), as JSON.
func AppendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int8:
		return strconv.AppendInt(b, int64(v), 10)
	case int16:
		return strconv.AppendInt(b, int64(v), 10)
	case int32:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint:
		return strconv.AppendUint(b, uint64(v), 10)
	case uint8:
		return strconv.AppendUint(b, uint64(v), 10)
	case uint16:
		return strconv.AppendUint(b, uint64(v), 10)
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case *big.Int:
		if v == nil {
			return append(b, "null"...)
		}
		return v.Append(b, 10)
	case []string:
		return appendList(b, v, appendJSONString)
	case json.Marshaler:
		// The codec's ordered objects encode themselves; encoding/json
		// would call this too, then re-scan its output.
		enc, err := v.MarshalJSON()
		if err != nil {
			return appendJSONString(b, "unencodable value: "+err.Error())
		}
		return append(b, enc...)
	case []any:
		return appendList(b, v, AppendJSON)
	case map[string]any:
		if v == nil {
			return append(b, "null"...)
		}
		// Sorted, as encoding/json writes maps.
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = AppendJSON(b, v[k])
		}
		return append(b, '}')
	}
	enc, err := marshalJSON(v)
	if err != nil {
		// A codec returned something JSON cannot hold; say so in place
		// rather than break the whole array.
		return appendJSONString(b, "unencodable value: "+err.Error())
	}
	return append(b, enc...)
}

// appendList appends v as a JSON array (null when nil), each element
// written by elem.
func appendList[E any](b []byte, v []E, elem func([]byte, E) []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, e := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, e)
	}
	return append(b, ']')
}

// marshalJSON is json.Marshal without HTML escaping, as the shell prints
// JSON: output goes to terminals and jq, where "<" must stay readable.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// appendJSONString appends s quoted. Plain printable ASCII, the common
// case, is copied; anything else is left to encoding/json's escaping.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			enc, _ := marshalJSON(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
