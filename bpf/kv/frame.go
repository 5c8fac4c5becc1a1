// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// Addressing is where a request frame comes from and goes to: Ethernet,
// IPv4 or IPv6 (by the length of the addresses), an optional 802.1Q tag,
// and UDP ports.
type Addressing struct {
	SrcMAC, DstMAC   net.HardwareAddr
	SrcIP, DstIP     net.IP // both 4 bytes (IPv4) or both 16 bytes (IPv6)
	SrcPort, DstPort uint16
	VLAN             uint16 // 802.1Q VLAN id; 0: untagged
}

// DefaultAddressing is 02:00:00:00:00:01 10.0.0.1:40000 to
// 02:00:00:00:00:02 10.0.0.2:6390, the packet layers' defaults.
func DefaultAddressing() Addressing {
	return Addressing{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		SrcIP: net.IPv4(10, 0, 0, 1).To4(), DstIP: net.IPv4(10, 0, 0, 2).To4(),
		SrcPort: 40000, DstPort: Port,
	}
}

// IPv6 reports whether a carries IPv6 addresses.
func (a Addressing) IPv6() bool { return len(a.SrcIP) == net.IPv6len }

// Reply is the addressing of a reply to a: everything swapped.
func (a Addressing) Reply() Addressing {
	return Addressing{SrcMAC: a.DstMAC, DstMAC: a.SrcMAC, SrcIP: a.DstIP, DstIP: a.SrcIP,
		SrcPort: a.DstPort, DstPort: a.SrcPort, VLAN: a.VLAN}
}

func (a Addressing) String() string {
	return fmt.Sprintf("%s %s:%d -> %s %s:%d", a.SrcMAC, a.SrcIP, a.SrcPort, a.DstMAC, a.DstIP, a.DstPort)
}

func (a Addressing) equal(b Addressing) bool {
	return bytes.Equal(a.SrcMAC, b.SrcMAC) && bytes.Equal(a.DstMAC, b.DstMAC) && a.SrcIP.Equal(b.SrcIP) &&
		a.DstIP.Equal(b.DstIP) && a.SrcPort == b.SrcPort && a.DstPort == b.DstPort && a.VLAN == b.VLAN
}

// Frame builds an Ethernet frame carrying payload as a UDP datagram from
// a, with correct lengths and checksums (IPv4 TTL and IPv6 hop limit 64).
func (a Addressing) Frame(payload []byte) []byte {
	b := make([]byte, 0, 14+4+40+8+len(payload))
	b = append(b, a.DstMAC...)
	b = append(b, a.SrcMAC...)
	if a.VLAN != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, a.VLAN&0xfff)
	}
	udpLen := 8 + len(payload)
	var pseudo []byte
	if a.IPv6() {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		b = append(b, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
		b = append(b, 17, 64)
		b = append(b, a.SrcIP.To16()...)
		b = append(b, a.DstIP.To16()...)
		pseudo = pseudoHeader(a.SrcIP.To16(), a.DstIP.To16(), udpLen)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ip := len(b)
		b = append(b, 0x45, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(20+udpLen))
		b = append(b, 0, 1, 0, 0, 64, 17, 0, 0)
		b = append(b, a.SrcIP.To4()...)
		b = append(b, a.DstIP.To4()...)
		binary.BigEndian.PutUint16(b[ip+10:], checksum(b[ip:ip+20], 0))
		pseudo = pseudoHeader(a.SrcIP.To4(), a.DstIP.To4(), udpLen)
	}
	u := len(b)
	b = binary.BigEndian.AppendUint16(b, a.SrcPort)
	b = binary.BigEndian.AppendUint16(b, a.DstPort)
	b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
	b = append(b, 0, 0)
	b = append(b, payload...)
	sum := checksum(b[u:], sum16(pseudo))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(b[u+6:], sum)
	return b
}

// ParseFrame reads the addressing and UDP payload of an Ethernet frame
// and checks it the way a receiver would: lengths consistent, the IPv4
// header checksum right, the UDP checksum right (0 allowed for IPv4).
func ParseFrame(f []byte) (Addressing, []byte, error) {
	var a Addressing
	if len(f) < 14 {
		return a, nil, fmt.Errorf("frame of %d bytes is shorter than an Ethernet header", len(f))
	}
	a.DstMAC, a.SrcMAC = net.HardwareAddr(f[0:6]), net.HardwareAddr(f[6:12])
	et, off := binary.BigEndian.Uint16(f[12:]), 14
	if et == 0x8100 {
		if len(f) < 18 {
			return a, nil, errors.New("frame ends inside its VLAN tag")
		}
		a.VLAN = binary.BigEndian.Uint16(f[14:]) & 0xfff
		et, off = binary.BigEndian.Uint16(f[16:]), 18
	}
	var (
		udp    []byte
		pseudo []byte
	)
	switch et {
	case 0x0800:
		if len(f) < off+20 {
			return a, nil, errors.New("frame ends inside its IPv4 header")
		}
		ip := f[off:]
		hl, tot := int(ip[0]&15)*4, int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0]>>4 != 4 || hl < 20 || tot < hl+8 || tot > len(ip) {
			return a, nil, fmt.Errorf("bad IPv4 header: version %d, header %d bytes, total length %d, %d bytes here", ip[0]>>4, hl, tot, len(ip))
		}
		if ip[9] != 17 {
			return a, nil, fmt.Errorf("IPv4 protocol %d, not UDP", ip[9])
		}
		if s := checksum(ip[:hl], 0); s != 0 {
			return a, nil, fmt.Errorf("bad IPv4 header checksum 0x%04x", binary.BigEndian.Uint16(ip[10:]))
		}
		a.SrcIP, a.DstIP = net.IP(ip[12:16]), net.IP(ip[16:20])
		udp = ip[hl:tot]
		pseudo = pseudoHeader(a.SrcIP, a.DstIP, len(udp))
	case 0x86dd:
		if len(f) < off+40 {
			return a, nil, errors.New("frame ends inside its IPv6 header")
		}
		ip := f[off:]
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || 40+pl > len(ip) {
			return a, nil, fmt.Errorf("bad IPv6 header: version %d, payload length %d, %d bytes here", ip[0]>>4, pl, len(ip)-40)
		}
		if ip[6] != 17 {
			return a, nil, fmt.Errorf("IPv6 next header %d, not UDP", ip[6])
		}
		a.SrcIP, a.DstIP = net.IP(ip[8:24]), net.IP(ip[24:40])
		udp = ip[40 : 40+pl]
		pseudo = pseudoHeader(a.SrcIP, a.DstIP, len(udp))
	default:
		return a, nil, fmt.Errorf("EtherType 0x%04x is neither IPv4 nor IPv6", et)
	}
	if len(udp) < 8 || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return a, nil, fmt.Errorf("UDP length does not match the IP payload's %d bytes", len(udp))
	}
	a.SrcPort, a.DstPort = binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:])
	sum := binary.BigEndian.Uint16(udp[6:])
	if !(sum == 0 && !a.IPv6()) && checksum(udp, sum16(pseudo)) != 0 {
		return a, nil, fmt.Errorf("bad UDP checksum 0x%04x", sum)
	}
	return a, udp[8:], nil
}

func pseudoHeader(src, dst net.IP, udpLen int) []byte {
	p := append(append([]byte{}, src...), dst...)
	if len(src) == net.IPv6len {
		p = binary.BigEndian.AppendUint32(p, uint32(udpLen))
		return append(p, 0, 0, 0, 17)
	}
	p = append(p, 0, 17)
	return binary.BigEndian.AppendUint16(p, uint16(udpLen))
}

// sum16 is the one's complement sum of b as big-endian 16-bit words.
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// checksum is the Internet checksum of b with initial sum init: what to
// store, or 0 when b already holds a correct one.
func checksum(b []byte, init uint32) uint16 {
	s := uint64(init) + uint64(sum16(b))
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
