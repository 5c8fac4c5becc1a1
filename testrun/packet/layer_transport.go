// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TCP flag bits, in the order scapy writes them (FSRPAUECN).
var tcpFlags = map[string]uint64{
	"F": 0x001, "S": 0x002, "R": 0x004, "P": 0x008, "A": 0x010, "U": 0x020, "E": 0x040, "C": 0x080, "N": 0x100,
	"FIN": 0x001, "SYN": 0x002, "RST": 0x004, "PSH": 0x008, "ACK": 0x010, "URG": 0x020, "ECE": 0x040, "CWR": 0x080, "NS": 0x100,
}

var udpDef = &LayerDef{
	Name:    "UDP",
	Summary: "UDP header; len and chksum computed unless given",
	Fields: []FieldDef{
		{Name: "sport", Kind: KindUint, Bits: 16, Default: "40000"},
		{Name: "dport", Kind: KindUint, Bits: 16, Default: "7777"},
		{Name: "len", Kind: KindUint, Bits: 16, Auto: true, Help: "header and payload length"},
		{Name: "chksum", Kind: KindUint, Bits: 16, Hex: true, Auto: true, Help: "checksum over the IP pseudo-header; 0 means none (IPv4)"},
	},
	Binds:  []Bind{{"IPv4", "proto", 17}, {"IPv6", "nh", 17}},
	Build:  buildUDP,
	Decode: decodeUDP,
}

var tcpDef = &LayerDef{
	Name:    "TCP",
	Summary: "TCP header; dataofs and chksum computed unless given; flags default to S (a SYN)",
	Fields: []FieldDef{
		{Name: "sport", Kind: KindUint, Bits: 16, Default: "40000"},
		{Name: "dport", Kind: KindUint, Bits: 16, Default: "80"},
		{Name: "seq", Kind: KindUint, Bits: 32},
		{Name: "ack", Kind: KindUint, Bits: 32},
		{Name: "dataofs", Kind: KindUint, Bits: 4, Auto: true, Help: "header length in 32-bit words"},
		{Name: "reserved", Kind: KindUint, Bits: 3},
		{Name: "flags", Kind: KindFlags, Bits: 9, Names: tcpFlags, Letters: true, Default: "S", Help: "FSRPAUECN letters (SA) or names (SYN|ACK)"},
		{Name: "window", Kind: KindUint, Bits: 16, Default: "8192"},
		{Name: "chksum", Kind: KindUint, Bits: 16, Hex: true, Auto: true},
		{Name: "urg", Kind: KindUint, Bits: 16, Help: "urgent pointer"},
		{Name: "options", Kind: KindList, Parse: parseTCPOptions, Format: formatTCPOptions,
			Help: "[mss=1460, sack_ok, ts=(1, 2), nop, wscale=7, sack=(l, r), eol, opt=(kind, 0xdata), raw=0xbytes]"},
	},
	Binds:  []Bind{{"IPv4", "proto", 6}, {"IPv6", "nh", 6}},
	Build:  buildTCP,
	Decode: decodeTCP,
}

// transportSum is the pseudo-header sum for a segment of length bytes of
// protocol proto carried by lower, which must be a built IPv4 or IPv6.
func transportSum(lower gopacket.SerializableLayer, proto uint8, length int) (uint32, bool) {
	nl, ok := lower.(networkLayer)
	if !ok {
		return 0, false
	}
	src, dst := nl.addresses()
	if _, v6 := lower.(*ipv6Layer); v6 {
		src, dst = src.To16(), dst.To16()
	} else {
		src, dst = src.To4(), dst.To4()
	}
	sum := gopacket.ComputeChecksum(src, 0)
	sum = gopacket.ComputeChecksum(dst, sum)
	return sum + uint32(proto) + uint32(length&0xffff) + uint32(length>>16), true
}

// noNetwork is the error for a checksum with no IP layer below.
func noNetwork(c *BuildContext) error {
	return c.Errorf("chksum", "no IPv4 or IPv6 layer below %s to compute it from; write chksum=N", c.Layer.Def.Name)
}

func buildUDP(c *BuildContext) (gopacket.SerializableLayer, error) {
	udp := layers.UDP{SrcPort: layers.UDPPort(c.Uint("sport")), DstPort: layers.UDPPort(c.Uint("dport"))}
	length, givenLen := c.Given("len")
	sum, givenSum := c.Given("chksum")
	if _, ok := c.Lower.(networkLayer); !ok && !givenSum {
		return nil, noNetwork(c)
	}
	udp.Length, udp.Checksum = uint16(length), uint16(sum)
	lower := c.Lower
	return serializeFunc(func(b gopacket.SerializeBuffer) error {
		n := len(b.Bytes()) + 8
		if !givenLen {
			if n > 0xffff {
				return FieldErrorf("len", "%d bytes do not fit the 16-bit length", n)
			}
			udp.Length = uint16(n)
		}
		if err := udp.SerializeTo(b, gopacket.SerializeOptions{}); err != nil {
			return err
		}
		if !givenSum {
			seg := b.Bytes()[:n]
			pseudo, _ := transportSum(lower, 17, n)
			s := checksumAt(seg, 6, pseudo)
			if s == 0 {
				s = 0xffff // RFC 768: a computed 0 is sent as all ones; 0 means "no checksum"
			}
			binary.BigEndian.PutUint16(seg[6:8], s)
		}
		return nil
	}), nil
}

// decodeUDP reads the header as sent; gopacket's decoder rejects a length
// below 8, which a crafted or broken packet must be able to show.
func decodeUDP(data []byte, lower *Layer) (*Decoded, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("a UDP header needs 8 bytes, %d are here", len(data))
	}
	length := int(binary.BigEndian.Uint16(data[4:6]))
	sum := binary.BigEndian.Uint16(data[6:8])
	d := &Decoded{HeaderLen: 8, End: length, Fields: []FieldValue{
		{Name: "sport", Value: uint64(binary.BigEndian.Uint16(data[0:2])), Off: 0, Len: 2},
		{Name: "dport", Value: uint64(binary.BigEndian.Uint16(data[2:4])), Off: 2, Len: 2},
		{Name: "len", Value: uint64(length), Off: 4, Len: 2},
		{Name: "chksum", Value: uint64(sum), Off: 6, Len: 2},
	}}
	switch {
	case length == 0:
		d.Fields[2].Note = "0: a jumbogram's, the payload runs to the end of the IP payload"
	case length < 8:
		d.Fields[2].Note = "shorter than the 8-byte header"
		d.End = 8
	}
	seg := data[:min(max(length, 8), len(data))]
	if length == 0 {
		seg = data
	}
	if pseudo, ok := pseudoHeader(lower, 17, len(seg)); ok {
		want := checksumAt(seg, 6, pseudo)
		if want == 0 {
			want = 0xffff
		}
		switch {
		case sum == 0 && lower.Name == "IPv4":
			d.Fields[3].Note = "none"
		case sum == 0:
			d.Fields[3].Note = fmt.Sprintf("none, which IPv6 forbids; want 0x%04x", want)
		default:
			d.Fields[3].Note = checkNote(sum, want)
		}
	}
	return d, nil
}

type tcpLayer struct {
	tcp      layers.TCP
	reserved uint8
	options  []byte
	givenOff bool
	givenSum bool
	lower    gopacket.SerializableLayer
}

func (l *tcpLayer) LayerType() gopacket.LayerType { return layers.LayerTypeTCP }

func buildTCP(c *BuildContext) (gopacket.SerializableLayer, error) {
	flags := c.Uint("flags")
	l := &tcpLayer{
		tcp: layers.TCP{
			SrcPort: layers.TCPPort(c.Uint("sport")), DstPort: layers.TCPPort(c.Uint("dport")),
			Seq: uint32(c.Uint("seq")), Ack: uint32(c.Uint("ack")), Window: uint16(c.Uint("window")),
			Urgent: uint16(c.Uint("urg")),
			FIN:    flags&0x001 != 0, SYN: flags&0x002 != 0, RST: flags&0x004 != 0, PSH: flags&0x008 != 0,
			ACK: flags&0x010 != 0, URG: flags&0x020 != 0, ECE: flags&0x040 != 0, CWR: flags&0x080 != 0,
			NS: flags&0x100 != 0,
		},
		reserved: uint8(c.Uint("reserved")),
		lower:    c.Lower,
	}
	if opts, ok := c.Value("options").([]tcpOption); ok {
		l.options = pad4(encodeTCPOptions(opts))
	}
	if len(l.options) > 40 {
		return nil, c.Errorf("options", "%d bytes, more than the 40 a TCP header holds", len(l.options))
	}
	var v uint64
	v, l.givenOff = c.Given("dataofs")
	l.tcp.DataOffset = uint8(v)
	v, l.givenSum = c.Given("chksum")
	l.tcp.Checksum = uint16(v)
	if _, ok := c.Lower.(networkLayer); !ok && !l.givenSum {
		return nil, noNetwork(c)
	}
	return l, nil
}

// SerializeTo writes the options itself (any bytes, in order) and the
// fixed header with gopacket, then the reserved bits gopacket ignores,
// then the checksum over what was written.
func (l *tcpLayer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	if len(l.options) > 0 {
		o, err := b.PrependBytes(len(l.options))
		if err != nil {
			return err
		}
		copy(o, l.options)
	}
	if !l.givenOff {
		l.tcp.DataOffset = uint8((20 + len(l.options)) / 4)
	}
	if err := l.tcp.SerializeTo(b, gopacket.SerializeOptions{}); err != nil {
		return err
	}
	seg := b.Bytes()
	seg[12] |= l.reserved << 1
	if !l.givenSum {
		pseudo, _ := transportSum(l.lower, 6, len(seg))
		binary.BigEndian.PutUint16(seg[16:18], checksumAt(seg, 16, pseudo))
	}
	return nil
}

func decodeTCP(data []byte, lower *Layer) (*Decoded, error) {
	var tcp layers.TCP
	if err := tcp.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return nil, err
	}
	hdr := int(tcp.DataOffset) * 4
	// Flags and reserved bits are read as sent: gopacket drops the
	// reserved bits, and a test must see a program that sets them.
	flags := uint64(data[12]&1)<<8 | uint64(data[13])
	d := &Decoded{HeaderLen: hdr, Fields: []FieldValue{
		{Name: "sport", Value: uint64(tcp.SrcPort), Off: 0, Len: 2},
		{Name: "dport", Value: uint64(tcp.DstPort), Off: 2, Len: 2},
		{Name: "seq", Value: uint64(tcp.Seq), Off: 4, Len: 4},
		{Name: "ack", Value: uint64(tcp.Ack), Off: 8, Len: 4},
		{Name: "dataofs", Value: uint64(tcp.DataOffset), Off: 12, Len: 1},
	}}
	if r := uint64(data[12] >> 1 & 7); r != 0 {
		d.Fields = append(d.Fields, FieldValue{Name: "reserved", Value: r, Off: 12, Len: 1})
	}
	d.Fields = append(d.Fields,
		FieldValue{Name: "flags", Value: flags, Off: 12, Len: 2},
		FieldValue{Name: "window", Value: uint64(tcp.Window), Off: 14, Len: 2},
		FieldValue{Name: "chksum", Value: uint64(tcp.Checksum), Off: 16, Len: 2},
		FieldValue{Name: "urg", Value: uint64(tcp.Urgent), Off: 18, Len: 2},
	)
	if pseudo, ok := pseudoHeader(lower, 6, len(data)); ok {
		d.Fields[len(d.Fields)-2].Note = checkNote(tcp.Checksum, checksumAt(data, 16, pseudo))
	}
	if hdr > 20 {
		d.Fields = append(d.Fields, FieldValue{Name: "options", Value: decodeTCPOptions(data[20:hdr]), Off: 20, Len: hdr - 20})
	}
	return d, nil
}
