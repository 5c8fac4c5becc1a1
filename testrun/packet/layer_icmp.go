// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var icmpTypes = map[string]uint64{
	"echo-reply": 0, "dest-unreach": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
	"router-advert": 9, "router-solicit": 10, "time-exceeded": 11, "param-problem": 12,
	"timestamp": 13, "timestamp-reply": 14,
}

var icmpv6Types = map[string]uint64{
	"dest-unreach": 1, "packet-too-big": 2, "time-exceeded": 3, "param-problem": 4,
	"echo-request": 128, "echo-reply": 129, "router-solicit": 133, "router-advert": 134,
	"neighbor-solicit": 135, "neighbor-advert": 136, "redirect": 137,
}

// The ICMP layers are their 8-byte header: type, code, checksum, and the
// 4 bytes that echo messages use for id and seq, shown as id and seq
// whatever the type (for others they are "rest of header").
func icmpFields(types map[string]uint64) []FieldDef {
	return []FieldDef{
		{Name: "type", Kind: KindEnum, Bits: 8, Names: types, Default: "echo-request", Help: "message type, by name or number"},
		{Name: "code", Kind: KindUint, Bits: 8},
		{Name: "chksum", Kind: KindUint, Bits: 16, Hex: true, Auto: true},
		{Name: "id", Kind: KindUint, Bits: 16, Help: "echo identifier (bytes 4-5)"},
		{Name: "seq", Kind: KindUint, Bits: 16, Help: "echo sequence (bytes 6-7)"},
	}
}

var icmpDef = &LayerDef{
	Name:    "ICMP",
	Aliases: []string{"ICMPv4"},
	Summary: "ICMP (IPv4) header; chksum computed unless given",
	Fields:  icmpFields(icmpTypes),
	Binds:   []Bind{{"IPv4", "proto", 1}},
	Build: func(c *BuildContext) (gopacket.SerializableLayer, error) {
		sum, given := c.Given("chksum")
		icmp := &layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(uint8(c.Uint("type")), uint8(c.Uint("code"))),
			Checksum: uint16(sum), Id: uint16(c.Uint("id")), Seq: uint16(c.Uint("seq")),
		}
		return serializeFunc(func(b gopacket.SerializeBuffer) error {
			return icmp.SerializeTo(b, gopacket.SerializeOptions{ComputeChecksums: !given})
		}), nil
	},
	Decode: decodeICMPv4,
}

var icmpv6Def = &LayerDef{
	Name:    "ICMPv6",
	Summary: "ICMPv6 header; chksum computed unless given (needs IPv6 below)",
	Fields:  icmpFields(icmpv6Types),
	Binds:   []Bind{{"IPv6", "nh", 58}},
	Build:   buildICMPv6,
	Decode:  decodeICMPv6,
}

func decodeICMPv4(data []byte, _ *Layer) (*Decoded, error) {
	var icmp layers.ICMPv4
	if err := icmp.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return nil, err
	}
	return &Decoded{HeaderLen: 8, Fields: []FieldValue{
		{Name: "type", Value: uint64(icmp.TypeCode.Type()), Off: 0, Len: 1},
		{Name: "code", Value: uint64(icmp.TypeCode.Code()), Off: 1, Len: 1},
		{Name: "chksum", Value: uint64(icmp.Checksum), Off: 2, Len: 2, Note: checkNote(icmp.Checksum, checksumAt(data, 2, 0))},
		{Name: "id", Value: uint64(icmp.Id), Off: 4, Len: 2},
		{Name: "seq", Value: uint64(icmp.Seq), Off: 6, Len: 2},
	}}, nil
}

func buildICMPv6(c *BuildContext) (gopacket.SerializableLayer, error) {
	sum, given := c.Given("chksum")
	if _, ok := c.Lower.(*ipv6Layer); !ok && !given {
		return nil, c.Errorf("chksum", "no IPv6 layer below ICMPv6 to compute it from; write chksum=N")
	}
	icmp := &layers.ICMPv6{
		TypeCode: layers.CreateICMPv6TypeCode(uint8(c.Uint("type")), uint8(c.Uint("code"))),
		Checksum: uint16(sum),
	}
	id, seq := uint16(c.Uint("id")), uint16(c.Uint("seq"))
	lower := c.Lower
	return serializeFunc(func(b gopacket.SerializeBuffer) error {
		rest, err := b.PrependBytes(4)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint16(rest[0:2], id)
		binary.BigEndian.PutUint16(rest[2:4], seq)
		if err := icmp.SerializeTo(b, gopacket.SerializeOptions{}); err != nil {
			return err
		}
		if !given {
			msg := b.Bytes()
			pseudo, _ := transportSum(lower, 58, len(msg))
			binary.BigEndian.PutUint16(msg[2:4], checksumAt(msg, 2, pseudo))
		}
		return nil
	}), nil
}

func decodeICMPv6(data []byte, lower *Layer) (*Decoded, error) {
	var icmp layers.ICMPv6
	if err := icmp.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return nil, err
	}
	if len(data) < 8 {
		return nil, fmt.Errorf("an ICMPv6 header needs 8 bytes, %d are here", len(data))
	}
	d := &Decoded{HeaderLen: 8, Fields: []FieldValue{
		{Name: "type", Value: uint64(icmp.TypeCode.Type()), Off: 0, Len: 1},
		{Name: "code", Value: uint64(icmp.TypeCode.Code()), Off: 1, Len: 1},
		{Name: "chksum", Value: uint64(icmp.Checksum), Off: 2, Len: 2},
		{Name: "id", Value: uint64(binary.BigEndian.Uint16(data[4:6])), Off: 4, Len: 2},
		{Name: "seq", Value: uint64(binary.BigEndian.Uint16(data[6:8])), Off: 6, Len: 2},
	}}
	if pseudo, ok := pseudoHeader(lower, 58, len(data)); ok && lower.Name == "IPv6" {
		d.Fields[2].Note = checkNote(icmp.Checksum, checksumAt(data, 2, pseudo))
	}
	return d, nil
}
