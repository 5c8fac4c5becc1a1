// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// bprintf formats like bpf_trace_printk and bpf_snprintf: the kernel
// checks the format in bpf_bprintf_prepare (kernel/bpf/helpers.c), which
// allows flags "0+- ", a width, no precision, the lengths l and ll, and
// the conversions d i u x X c s and p with its extensions; then formats
// with bstr_printf. Integer arguments without l are int-sized.
//
// incomparable is set when the output depends on kernel addresses (%p,
// %pK, %px), which the emulator cannot reproduce.
func (m *machine) bprintf(format string, args []uint64) (out string, incomparable string, err error) {
	var b strings.Builder
	next := 0
	arg := func() (uint64, error) {
		if next >= len(args) {
			return 0, fmt.Errorf("format %q has more conversions than arguments (%d)", format, len(args))
		}
		next++
		return args[next-1], nil
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		i++
		var left, zero, plus, space bool
		for ; i < len(format); i++ {
			switch format[i] {
			case '-':
				left = true
				continue
			case '0':
				zero = true
				continue
			case '+':
				plus = true
				continue
			case ' ':
				space = true
				continue
			}
			break
		}
		width := 0
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			width = width*10 + int(format[i]-'0')
			i++
		}
		if i >= len(format) {
			return "", "", fmt.Errorf("format %q ends in the middle of a conversion", format)
		}
		pad := func(s string, numeric bool) {
			if len(s) >= width {
				b.WriteString(s)
				return
			}
			fill := strings.Repeat(" ", width-len(s))
			switch {
			case left:
				b.WriteString(s + fill)
			case zero && numeric:
				sign := ""
				if s != "" && (s[0] == '-' || s[0] == '+' || s[0] == ' ') {
					sign, s = s[:1], s[1:]
				}
				b.WriteString(sign + strings.Repeat("0", width-len(s)-len(sign)) + s)
			default:
				b.WriteString(fill + s)
			}
		}
		switch format[i] {
		case 'c':
			v, err := arg()
			if err != nil {
				return "", "", err
			}
			pad(string([]byte{byte(v)}), false)
			continue
		case 's':
			v, err := arg()
			if err != nil {
				return "", "", err
			}
			s, ok := m.cString(v, 512)
			if !ok {
				s = "(efault)"
			}
			pad(s, false)
			continue
		case 'p':
			v, err := arg()
			if err != nil {
				return "", "", err
			}
			ext := ""
			for i+1 < len(format) && strings.IndexByte("KxBiIS46hsuk", format[i+1]) >= 0 {
				ext += format[i+1 : i+2]
				i++
				if len(ext) == 2 {
					break
				}
			}
			switch ext {
			case "i4", "I4":
				ip, ok := m.readBytes(v, 4)
				if !ok {
					return "", "", fmt.Errorf("%%p%s of %s", ext, m.describeAddr(v))
				}
				a := netip.AddrFrom4([4]byte(ip))
				s := a.String()
				if ext == "i4" {
					s = fmt.Sprintf("%03d.%03d.%03d.%03d", ip[0], ip[1], ip[2], ip[3])
				}
				pad(s, false)
			case "i6", "I6":
				ip, ok := m.readBytes(v, 16)
				if !ok {
					return "", "", fmt.Errorf("%%p%s of %s", ext, m.describeAddr(v))
				}
				var s string
				if ext == "I6" {
					var parts []string
					for j := 0; j < 16; j += 2 {
						parts = append(parts, fmt.Sprintf("%x", uint16(ip[j])<<8|uint16(ip[j+1])))
					}
					s = strings.Join(parts, ":")
				} else {
					s = fmt.Sprintf("%x", ip)
				}
				pad(s, false)
			default:
				incomparable = "bpf_printk printed a pointer (%p): the kernel prints its own addresses, hashed"
				pad(fmt.Sprintf("%016x", v), true)
			}
			continue
		}
		long := 0
		for i < len(format) && format[i] == 'l' && long < 2 {
			long++
			i++
		}
		if i >= len(format) {
			return "", "", fmt.Errorf("format %q ends in the middle of a conversion", format)
		}
		v, err := arg()
		if err != nil {
			return "", "", err
		}
		if long == 0 {
			v = uint64(uint32(v))
		}
		var s string
		switch format[i] {
		case 'd', 'i':
			var n int64
			if long == 0 {
				n = int64(int32(uint32(v)))
			} else {
				n = int64(v)
			}
			s = strconv.FormatInt(n, 10)
			if n >= 0 && plus {
				s = "+" + s
			} else if n >= 0 && space {
				s = " " + s
			}
		case 'u':
			s = strconv.FormatUint(v, 10)
		case 'x':
			s = strconv.FormatUint(v, 16)
		case 'X':
			s = strings.ToUpper(strconv.FormatUint(v, 16))
		default:
			return "", "", fmt.Errorf("format %q: conversion %%%c is not one bpf_trace_printk takes", format, format[i])
		}
		pad(s, true)
	}
	return b.String(), incomparable, nil
}

// cString reads a NUL-terminated string of at most max bytes.
func (m *machine) cString(addr uint64, max int) (string, bool) {
	r, off, ok := m.resolve(addr, 1)
	if !ok || r.ctx != nil || r.dead {
		return "", false
	}
	end := off
	for end < r.hi && int(end-off) < max && r.buf[end] != 0 {
		end++
	}
	return string(r.buf[off:end]), true
}
