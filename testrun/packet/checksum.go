// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"fmt"
	"net"

	"github.com/gopacket/gopacket"
)

// Internet checksums (RFC 1071) for verifying what Decode reads. Building
// leaves checksums to gopacket; decoding recomputes them here so that a
// wrong checksum (crafted, or written by a BPF program that forgot to fix
// it) is flagged on the field.

// checksumAt returns the checksum data should carry in the 2 bytes at off
// (an even offset, as in every header here), given the one's complement
// sum of a pseudo-header: the sum of data with those 2 bytes left out.
func checksumAt(data []byte, off int, pseudo uint32) uint16 {
	sum := gopacket.ComputeChecksum(data[:off], pseudo)
	return gopacket.FoldChecksum(gopacket.ComputeChecksum(data[off+2:], sum))
}

// pseudoHeader is the one's complement sum of the IPv4 or IPv6
// pseudo-header for a transport segment of length bytes of protocol proto
// carried by lower; false when lower is not IPv4 or IPv6.
func pseudoHeader(lower *Layer, proto uint8, length int) (uint32, bool) {
	if lower == nil || (lower.Name != "IPv4" && lower.Name != "IPv6") {
		return 0, false
	}
	src, ok1 := fieldIP(lower, "src")
	dst, ok2 := fieldIP(lower, "dst")
	if !ok1 || !ok2 {
		return 0, false
	}
	var sum uint32
	sum = gopacket.ComputeChecksum(src, sum)
	sum = gopacket.ComputeChecksum(dst, sum)
	sum += uint32(proto) + uint32(length&0xffff) + uint32(length>>16)
	return sum, true
}

func fieldIP(l *Layer, name string) (net.IP, bool) {
	f := l.Field(name)
	if f == nil {
		return nil, false
	}
	ip, ok := f.val.(net.IP)
	return ip, ok
}

// checkNote compares a checksum read with the one computed.
func checkNote(got, want uint16) string {
	if got == want {
		return ""
	}
	return fmt.Sprintf("bad checksum, want 0x%04x", want)
}
