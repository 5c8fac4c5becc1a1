// SPDX-License-Identifier: Apache-2.0

// Package hexbytes reads bytes written in hex, the one way every bpfsh
// command takes them: map keys and values, packets, run input, kv keys
// and values, program contexts, and hex fields of packet layers.
//
// A word is bytes in hex with an optional 0x prefix:
//
//	01            one byte
//	1             one byte (bpftool's "hex 1 0 0 0" is 01 00 00 00)
//	01020304      a run of digits: one byte per two (an even count)
//	0x01:00:00:00 bytes separated by ':' (one or two digits each), as
//	              ip(8) and ethtool print them
//
// Several words follow one another: "hex 01 02", "hex 0102" and
// "hex 0x01:02" are the same two bytes.
package hexbytes

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNone is returned by Parse for no words at all.
var ErrNone = errors.New("no bytes given; write them as 01 00 00 00, 01000000 or 0x01:00:00:00")

// Parse reads the bytes of words, each as Word reads it.
func Parse(words []string) ([]byte, error) {
	if len(words) == 0 {
		return nil, ErrNone
	}
	var out []byte
	for _, w := range words {
		b, err := Word(w)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// Word reads the bytes of one word.
func Word(w string) ([]byte, error) {
	digits := w
	if len(digits) >= 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') {
		digits = digits[2:]
	}
	if digits == "" {
		return nil, fmt.Errorf("%q has no hex digits", clip(w))
	}
	var out []byte
	if strings.Contains(digits, ":") {
		for _, part := range strings.Split(digits, ":") {
			if len(part) < 1 || len(part) > 2 {
				return nil, fmt.Errorf("%q: between ':' give each byte as one or two hex digits", clip(w))
			}
			b, ok := pair(part)
			if !ok {
				return nil, notHex(w)
			}
			out = append(out, b)
		}
		return out, nil
	}
	if len(digits) == 1 {
		b, ok := pair(digits)
		if !ok {
			return nil, notHex(w)
		}
		return []byte{b}, nil
	}
	if len(digits)%2 != 0 {
		return nil, fmt.Errorf("%q has an odd number of hex digits: give each byte as two (01 or 0102...)", clip(w))
	}
	for i := 0; i < len(digits); i += 2 {
		b, ok := pair(digits[i : i+2])
		if !ok {
			return nil, notHex(w)
		}
		out = append(out, b)
	}
	return out, nil
}

func notHex(w string) error {
	return fmt.Errorf("%q is not hex bytes: use the digits 0-9 and a-f", clip(w))
}

// pair reads one or two hex digits as a byte.
func pair(s string) (byte, bool) {
	var b byte
	for i := 0; i < len(s); i++ {
		d, ok := digit(s[i])
		if !ok {
			return 0, false
		}
		b = b<<4 | d
	}
	return b, true
}

func digit(c byte) (byte, bool) {
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

// clip shortens a word for an error message.
func clip(w string) string {
	const max = 40
	if len(w) <= max {
		return w
	}
	return w[:max] + "..."
}
