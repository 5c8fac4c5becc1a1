// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"math/big"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/cilium/ebpf/btf"
)

// Addresses and ports
//
// BTF says a field is a __u32; people typed 10.0.0.1 into it. A value is
// shown as what it was typed as, and what is shown parses back to the
// same bytes:
//
//   - a field named like an address (saddr, daddr, addr, ip, ..._addr,
//     ..._ip, ..._ip4, ..._ip6) of 4 bytes is an IPv4 address, of 16
//     bytes (u8[16], u32[4], struct in6_addr) an IPv6 address, whatever
//     its integer type: the bytes in memory order, as sockets and packet
//     headers keep them (the number 16777226 typed into it shows as
//     10.0.0.1, which parses back to the same bytes);
//   - a 2-byte integer named like a port (port, sport, dport, lport,
//     rport, ..._port) is a port in network byte order, as packet headers
//     carry it and as programs copy it from them (udp->source): shown, and
//     read, as the port number (a port copied from a header as 0x9c40
//     reads 40000, not 16540). A program that keeps a port in host order
//     says so with the tag "bpfsh:raw", or --raw-numbers shows it raw;
//   - the kernel's __be16, __be32 and __be64 typedefs hold numbers in
//     network byte order: they are shown, and read, as the number the
//     bytes mean on the wire (a __be16 dport of 7777 reads 7777, not
//     24862); a whole key or value that is a __be32 is an IPv4 address
//     (a block list keyed by address);
//   - a BTF declaration tag on the field says it outright, for fields
//     whose names do not (clang: __attribute__((btf_decl_tag("bpfsh:ipv4")))):
//     "bpfsh:ipv4", "bpfsh:ipv6", "bpfsh:addr" (either, by size),
//     "bpfsh:be" or "bpfsh:port" (a number in network byte order), and
//     "bpfsh:raw" (none of this, for a field whose name misleads). A tag
//     on a typedef works for every field of that type.
//
// JSON keeps the raw numbers, as bpftool's "formatted" objects show them.
// SetRawNumbers(true) (--raw-numbers) shows and reads every integer as
// the plain number in host order again.

// hint is how to show (and read) one value beyond its BTF type.
type hint int

const (
	hintNone hint = iota
	hintIPv4      // 4 bytes: a dotted quad
	hintIPv6      // 16 bytes: an IPv6 address
	hintBE        // an integer in network byte order
)

var rawNumbers atomic.Bool

// SetRawNumbers makes FormatValue and ParseValue treat every integer as a
// plain number in host byte order, without address or network-order
// display (bpfsh --raw-numbers).
func SetRawNumbers(raw bool) { rawNumbers.Store(raw) }

// RawNumbers reports whether SetRawNumbers(true) is in effect.
func RawNumbers() bool { return rawNumbers.Load() }

// hintFor is the hint for a value of type t named name (a struct member;
// "" for a whole key or value when top, or an array element), with the
// member's declaration tags.
func hintFor(name string, t btf.Type, tags []string, top bool) hint {
	if rawNumbers.Load() {
		return hintNone
	}
	size, err := btf.Sizeof(t)
	if err != nil {
		return hintNone
	}
	tags, be := typeTags(t, tags)
	byTag := hintNone
	for _, tag := range tags {
		switch tag {
		case "bpfsh:raw":
			return hintNone
		case "bpfsh:ipv4", "bpfsh:ipv6", "bpfsh:addr":
			byTag = addrHint(size)
		case "bpfsh:be", "bpfsh:port":
			byTag = hintBE
		}
	}
	switch {
	case byTag != hintNone:
		return byTag
	case addressName(name):
		if h := addrHint(size); h != hintNone {
			return h
		}
	case top && be && size == 4 && isInt(t):
		return hintIPv4
	case portName(name) && size == 2 && isInt(t):
		return hintBE
	}
	if be && isInt(t) {
		return hintBE
	}
	return hintNone
}

// addrHint is the address a value of size bytes can be.
func addrHint(size int) hint {
	switch size {
	case 4:
		return hintIPv4
	case 16:
		return hintIPv6
	}
	return hintNone
}

func isInt(t btf.Type) bool {
	_, ok := underlying(t).(*btf.Int)
	return ok
}

// typeTags adds the tags of the typedefs t goes through to tags, and says
// whether one of them is the kernel's __be16, __be32 or __be64.
func typeTags(t btf.Type, tags []string) ([]string, bool) {
	be := false
	for range maxDepth {
		switch v := t.(type) {
		case *btf.Typedef:
			tags = append(tags, v.Tags...)
			switch v.Name {
			case "__be16", "__be32", "__be64":
				be = true
			}
			t = v.Type
			continue
		case *btf.Const:
			t = v.Type
			continue
		case *btf.Volatile:
			t = v.Type
			continue
		case *btf.TypeTag:
			tags = append(tags, v.Value)
			t = v.Type
			continue
		}
		break
	}
	return tags, be
}

// addressName reports whether a field's name says it holds an address.
func addressName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "ip", "ip4", "ip6", "ipv4", "ipv6", "addr", "saddr", "daddr":
		return true
	}
	for _, suffix := range []string{"addr", "_ip", "_ip4", "_ip6", "_ipv4", "_ipv6"} {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// portName reports whether a field's name says it holds a port.
func portName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "port", "sport", "dport", "lport", "rport":
		return true
	}
	return strings.HasSuffix(n, "_port")
}

// addressText writes data (4 or 16 bytes) as the address hint says, or
// reports false.
func addressText(data []byte, h hint) (string, bool) {
	switch {
	case h == hintIPv4 && len(data) == 4:
		return netip.AddrFrom4([4]byte(data)).String(), true
	case h == hintIPv6 && len(data) == 16:
		return netip.AddrFrom16([16]byte(data)).String(), true
	}
	return "", false
}

// readBE reads data as a big-endian unsigned integer.
func readBE(data []byte) uint64 {
	var u uint64
	for _, c := range data {
		u = u<<8 | uint64(c)
	}
	return u
}

// putBE writes n into b big-endian (two's complement when negative).
func putBE(b []byte, n *big.Int) {
	v := n
	if v.Sign() < 0 {
		v = new(big.Int).Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	v.FillBytes(b)
}
