// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var ipv4Def = &LayerDef{
	Name:    "IPv4",
	Aliases: []string{"IP"},
	Summary: "IPv4 header; ihl, len and chksum computed unless given",
	Fields: []FieldDef{
		{Name: "version", Kind: KindUint, Bits: 4, Default: "4"},
		{Name: "ihl", Kind: KindUint, Bits: 4, Auto: true, Help: "header length in 32-bit words"},
		{Name: "tos", Kind: KindUint, Bits: 8, Help: "DSCP and ECN"},
		{Name: "len", Kind: KindUint, Bits: 16, Auto: true, Help: "total length"},
		{Name: "id", Kind: KindUint, Bits: 16, Default: "1"},
		{Name: "flags", Kind: KindFlags, Bits: 3, Names: map[string]uint64{"MF": 1, "DF": 2, "RF": 4, "evil": 4}, Help: "DF, MF, RF, combined with |"},
		{Name: "frag", Kind: KindUint, Bits: 13, Help: "fragment offset in 8-byte units"},
		{Name: "ttl", Kind: KindUint, Bits: 8, Default: "64"},
		{Name: "proto", Kind: KindUint, Bits: 8, Next: true, Default: "0", Help: "protocol; from the next layer (6 TCP, 17 UDP, 1 ICMP)"},
		{Name: "chksum", Kind: KindUint, Bits: 16, Hex: true, Auto: true, Help: "header checksum"},
		{Name: "src", Kind: KindIPv4, Default: "10.0.0.1"},
		{Name: "dst", Kind: KindIPv4, Default: "10.0.0.2"},
		{Name: "options", Kind: KindHex, Parse: parseIPv4Options, Format: formatHex, Help: "raw option bytes, zero-padded to a multiple of 4"},
	},
	// ICMP errors carry the offending datagram's header: IPv4 follows
	// ICMP types 3 (destination unreachable), 11 and 12.
	Binds: []Bind{{"Ether", "type", 0x0800}, {"Dot1Q", "type", 0x0800}, {"IPv4", "proto", 4}, {"IPv6", "nh", 4},
		{"ICMP", "type", 3}, {"ICMP", "type", 11}, {"ICMP", "type", 12}},
	Build:  buildIPv4,
	Decode: decodeIPv4,
}

var ipv6Def = &LayerDef{
	Name:    "IPv6",
	Summary: "IPv6 header (no extension headers); plen computed unless given",
	Fields: []FieldDef{
		{Name: "version", Kind: KindUint, Bits: 4, Default: "6"},
		{Name: "tc", Kind: KindUint, Bits: 8, Help: "traffic class"},
		{Name: "fl", Kind: KindUint, Bits: 20, Help: "flow label"},
		{Name: "plen", Kind: KindUint, Bits: 16, Auto: true, Help: "payload length"},
		{Name: "nh", Kind: KindUint, Bits: 8, Next: true, Default: "59", Help: "next header; from the next layer (59: none)"},
		{Name: "hlim", Kind: KindUint, Bits: 8, Default: "64", Help: "hop limit"},
		{Name: "src", Kind: KindIPv6, Default: "fd00::1"},
		{Name: "dst", Kind: KindIPv6, Default: "fd00::2"},
	},
	Binds:  []Bind{{"Ether", "type", 0x86dd}, {"Dot1Q", "type", 0x86dd}, {"IPv6", "nh", 41}, {"IPv4", "proto", 41}},
	Build:  buildIPv6,
	Decode: decodeIPv6,
}

// networkLayer is a built IP layer, which transport checksums need.
type networkLayer interface {
	addresses() (src, dst net.IP)
}

type ipv4Layer struct {
	ip                 layers.IPv4
	options            []byte
	givenIHL, givenLen bool
	givenSum           bool
}

func (l *ipv4Layer) addresses() (net.IP, net.IP)   { return l.ip.SrcIP, l.ip.DstIP }
func (l *ipv4Layer) LayerType() gopacket.LayerType { return layers.LayerTypeIPv4 }

func buildIPv4(c *BuildContext) (gopacket.SerializableLayer, error) {
	l := &ipv4Layer{ip: layers.IPv4{
		Version:    uint8(c.Uint("version")),
		TOS:        uint8(c.Uint("tos")),
		Id:         uint16(c.Uint("id")),
		Flags:      layers.IPv4Flag(c.Uint("flags")),
		FragOffset: uint16(c.Uint("frag")),
		TTL:        uint8(c.Uint("ttl")),
		Protocol:   layers.IPProtocol(c.Uint("proto")),
		SrcIP:      c.IP("src"),
		DstIP:      c.IP("dst"),
	}}
	l.options = c.Bytes("options")
	if len(l.options) > 40 {
		return nil, c.Errorf("options", "%d bytes, more than the 40 an IPv4 header holds", len(l.options))
	}
	var v uint64
	v, l.givenIHL = c.Given("ihl")
	l.ip.IHL = uint8(v)
	v, l.givenLen = c.Given("len")
	l.ip.Length = uint16(v)
	v, l.givenSum = c.Given("chksum")
	l.ip.Checksum = uint16(v)
	return l, nil
}

// SerializeTo writes the header with gopacket and the options itself, so
// that any option bytes can be sent; a written ihl, len or chksum is kept
// even when it disagrees with the bytes.
func (l *ipv4Layer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	payload := len(b.Bytes())
	if len(l.options) > 0 {
		o, err := b.PrependBytes(len(l.options))
		if err != nil {
			return err
		}
		copy(o, l.options)
	}
	hdr := 20 + len(l.options)
	if !l.givenIHL {
		l.ip.IHL = uint8(hdr / 4)
	}
	if !l.givenLen {
		if hdr+payload > 0xffff {
			return FieldErrorf("len", "%d bytes do not fit the 16-bit total length", hdr+payload)
		}
		l.ip.Length = uint16(hdr + payload)
	}
	if err := l.ip.SerializeTo(b, gopacket.SerializeOptions{}); err != nil {
		return err
	}
	if !l.givenSum {
		h := b.Bytes()[:hdr]
		binary.BigEndian.PutUint16(h[10:12], checksumAt(h, 10, 0))
	}
	return nil
}

// decodeIPv4 reads the header as sent. gopacket's decoder is not used
// here: it replaces a total length of 0 with the frame's length and
// rejects lengths shorter than the header, and a crafted or broken packet
// must show the values it carries.
func decodeIPv4(data []byte, _ *Layer) (*Decoded, error) {
	if len(data) < 20 {
		return nil, fmt.Errorf("an IPv4 header needs 20 bytes, %d are here", len(data))
	}
	ihl := int(data[0] & 0x0f)
	hdr := ihl * 4
	if ihl < 5 {
		return nil, fmt.Errorf("ihl %d is below the minimum 5", ihl)
	}
	if hdr > len(data) {
		return nil, fmt.Errorf("ihl %d means %d header bytes, %d are here", ihl, hdr, len(data))
	}
	total := int(binary.BigEndian.Uint16(data[2:4]))
	flagsFrag := binary.BigEndian.Uint16(data[6:8])
	sum := binary.BigEndian.Uint16(data[10:12])
	d := &Decoded{HeaderLen: hdr, End: total, Fields: []FieldValue{
		{Name: "version", Value: uint64(data[0] >> 4), Off: 0, Len: 1},
		{Name: "ihl", Value: uint64(ihl), Off: 0, Len: 1},
		{Name: "tos", Value: uint64(data[1]), Off: 1, Len: 1},
		{Name: "len", Value: uint64(total), Off: 2, Len: 2},
		{Name: "id", Value: uint64(binary.BigEndian.Uint16(data[4:6])), Off: 4, Len: 2},
		{Name: "flags", Value: uint64(flagsFrag >> 13), Off: 6, Len: 1},
		{Name: "frag", Value: uint64(flagsFrag & 0x1fff), Off: 6, Len: 2},
		{Name: "ttl", Value: uint64(data[8]), Off: 8, Len: 1},
		{Name: "proto", Value: uint64(data[9]), Off: 9, Len: 1},
		{Name: "chksum", Value: uint64(sum), Off: 10, Len: 2, Note: checkNote(sum, checksumAt(data[:hdr], 10, 0))},
		{Name: "src", Value: net.IP(data[12:16]), Off: 12, Len: 4},
		{Name: "dst", Value: net.IP(data[16:20]), Off: 16, Len: 4},
	}}
	if total < hdr {
		d.Fields[3].Note = fmt.Sprintf("shorter than the %d-byte header", hdr)
		d.End = hdr
	}
	if hdr > 20 {
		d.Fields = append(d.Fields, FieldValue{Name: "options", Value: data[20:hdr], Off: 20, Len: hdr - 20})
	}
	if flagsFrag&0x1fff != 0 {
		// Only the first fragment carries the next header.
		d.Next = "Raw"
	}
	return d, nil
}

type ipv6Layer struct {
	ip       layers.IPv6
	givenLen bool
}

func (l *ipv6Layer) addresses() (net.IP, net.IP)   { return l.ip.SrcIP, l.ip.DstIP }
func (l *ipv6Layer) LayerType() gopacket.LayerType { return layers.LayerTypeIPv6 }

func buildIPv6(c *BuildContext) (gopacket.SerializableLayer, error) {
	l := &ipv6Layer{ip: layers.IPv6{
		Version:      uint8(c.Uint("version")),
		TrafficClass: uint8(c.Uint("tc")),
		FlowLabel:    uint32(c.Uint("fl")),
		NextHeader:   layers.IPProtocol(c.Uint("nh")),
		HopLimit:     uint8(c.Uint("hlim")),
		SrcIP:        c.IP("src"),
		DstIP:        c.IP("dst"),
	}}
	var v uint64
	v, l.givenLen = c.Given("plen")
	l.ip.Length = uint16(v)
	return l, nil
}

func (l *ipv6Layer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	if !l.givenLen {
		n := len(b.Bytes())
		if n > 0xffff {
			return FieldErrorf("plen", "%d bytes do not fit the 16-bit payload length (jumbograms are not built)", n)
		}
		l.ip.Length = uint16(n)
	}
	return l.ip.SerializeTo(b, gopacket.SerializeOptions{})
}

// decodeIPv6 reads the fixed header as sent. gopacket's decoder folds a
// hop-by-hop header into the layer and rejects a payload length of 0;
// bpfsh shows extension headers as the Raw payload they are to it.
func decodeIPv6(data []byte, _ *Layer) (*Decoded, error) {
	if len(data) < 40 {
		return nil, fmt.Errorf("an IPv6 header needs 40 bytes, %d are here", len(data))
	}
	first := binary.BigEndian.Uint32(data[0:4])
	plen := int(binary.BigEndian.Uint16(data[4:6]))
	return &Decoded{HeaderLen: 40, End: 40 + plen, Fields: []FieldValue{
		{Name: "version", Value: uint64(first >> 28), Off: 0, Len: 1},
		{Name: "tc", Value: uint64(first >> 20 & 0xff), Off: 0, Len: 2},
		{Name: "fl", Value: uint64(first & 0xfffff), Off: 1, Len: 3},
		{Name: "plen", Value: uint64(plen), Off: 4, Len: 2},
		{Name: "nh", Value: uint64(data[6]), Off: 6, Len: 1},
		{Name: "hlim", Value: uint64(data[7]), Off: 7, Len: 1},
		{Name: "src", Value: net.IP(data[8:24]), Off: 8, Len: 16},
		{Name: "dst", Value: net.IP(data[24:40]), Off: 24, Len: 16},
	}}, nil
}

// pad4 zero-pads options to a multiple of 4 bytes, as IP and TCP headers
// are counted in 32-bit words.
func pad4(b []byte) []byte {
	if r := len(b) % 4; r != 0 {
		return append(append([]byte{}, b...), make([]byte, 4-r)...)
	}
	return b
}

// parseIPv4Options reads the option bytes in hex and pads them to whole
// 32-bit words, as they will be sent and read back.
func parseIPv4Options(v Value) (any, error) {
	if v.Kind != ValueWord && v.Kind != ValueString {
		return nil, fmt.Errorf("expected hex bytes such as 0x94040000, found %s", v)
	}
	b, err := parseHex(v.Text)
	if err != nil {
		return nil, err
	}
	return pad4(b), nil
}

func formatHex(v any) string {
	b, _ := v.([]byte)
	if len(b) == 0 {
		return `""`
	}
	return "0x" + hex.EncodeToString(b)
}
