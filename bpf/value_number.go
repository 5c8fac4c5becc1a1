// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"strings"
)

// Integers as keys and values hold them: in host byte order, two's
// complement, and bitfields packed from the start of their struct.

// parseNumber reads an integer: decimal, 0x hex, 0o octal or 0b binary,
// with an optional sign. A decimal with a leading 0 such as 010 is refused
// when octal would read it differently, because bpftool reads it as octal.
func parseNumber(s string) (*big.Int, error) {
	if len(s) > 140 {
		return nil, fmt.Errorf("%s is not a number (too long)", shorten(s))
	}
	digits, neg := s, false
	if digits != "" && (digits[0] == '-' || digits[0] == '+') {
		neg = digits[0] == '-'
		digits = digits[1:]
	}
	base := 10
	if len(digits) > 1 && digits[0] == '0' {
		switch digits[1] {
		case 'x', 'X':
			base, digits = 16, digits[2:]
		case 'o', 'O':
			base, digits = 8, digits[2:]
		case 'b', 'B':
			base, digits = 2, digits[2:]
		}
	}
	// big.Int.SetString takes a sign of its own: the digits must have none.
	if digits == "" || digits[0] == '+' || digits[0] == '-' {
		return nil, fmt.Errorf("%s is not a number", shorten(s))
	}
	n, ok := new(big.Int).SetString(digits, base)
	if !ok {
		return nil, fmt.Errorf("%s is not a number", shorten(s))
	}
	if base == 10 && len(digits) > 1 && digits[0] == '0' && n.Cmp(big.NewInt(7)) > 0 {
		return nil, fmt.Errorf("%s is ambiguous (bpftool reads a leading 0 as octal): write 0o%s for octal or drop the leading 0", s, strings.TrimLeft(digits, "0"))
	}
	if neg {
		n.Neg(n)
	}
	return n, nil
}

// checkRange checks that n fits an integer of bits bits. A char takes both
// the signed and the unsigned range, since BTF does not say which it is.
func checkRange(n *big.Int, bits uint, signed, char bool) error {
	lo, hi := big.NewInt(0), new(big.Int).Lsh(big.NewInt(1), bits)
	if signed || char {
		lo.Neg(new(big.Int).Lsh(big.NewInt(1), bits-1))
	}
	if signed && !char {
		hi.Rsh(hi, 1)
	}
	hi.Sub(hi, big.NewInt(1))
	if n.Cmp(lo) < 0 || n.Cmp(hi) > 0 {
		return fmt.Errorf("%s..%s", lo, hi)
	}
	return nil
}

// setBits stores the low width bits of v at bit offset off of buf.
//
// BTF numbers a bitfield's bits from the start of the struct in memory
// order, which on the little-endian hosts bpfsh runs on (amd64, arm64) is
// bit off%8 of byte off/8, least significant bit first.
func setBits(buf []byte, off uint64, width uint, v uint64) {
	for i := range uint64(width) {
		bit := off + i
		mask := byte(1) << (bit % 8)
		if v>>i&1 != 0 {
			buf[bit/8] |= mask
		} else {
			buf[bit/8] &^= mask
		}
	}
}

// getBits reads width bits at bit offset off of buf (see setBits).
func getBits(buf []byte, off uint64, width uint) uint64 {
	var v uint64
	for i := range uint64(width) {
		bit := off + i
		if buf[bit/8]>>(bit%8)&1 != 0 {
			v |= 1 << i
		}
	}
	return v
}

// putInt stores n (already range-checked) in b as a two's complement
// integer in host byte order.
func putInt(b []byte, n *big.Int) {
	v := n
	if v.Sign() < 0 {
		v = new(big.Int).Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	v.FillBytes(b) // big-endian
	if hostLittleEndian {
		for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
	}
}

// hostLittleEndian says how the kernel lays out integers in keys and values.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// signExtend reads the low bits bits of u as a two's complement integer.
func signExtend(u uint64, bits uint) int64 {
	shift := 64 - bits
	return int64(u<<shift) >> shift
}

// readUint reads up to 8 bytes as an unsigned integer in host byte order.
func readUint(b []byte) uint64 {
	var v uint64
	if hostLittleEndian {
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v
	}
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
