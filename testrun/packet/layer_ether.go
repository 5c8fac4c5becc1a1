// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"encoding/binary"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// ethTypeExperimental is the EtherType of an Ether with nothing known
// after it: IEEE 802's "local experimental EtherType 1", which no stack
// will take for real traffic.
const ethTypeExperimental = "0x88b5"

var etherDef = &LayerDef{
	Name:    "Ether",
	Aliases: []string{"Ethernet"},
	Summary: "Ethernet II header (14 bytes, no FCS; no padding unless pad=true)",
	Fields: []FieldDef{
		{Name: "dst", Kind: KindMAC, Default: "02:00:00:00:00:02", Help: "destination MAC"},
		{Name: "src", Kind: KindMAC, Default: "02:00:00:00:00:01", Help: "source MAC"},
		{Name: "type", Kind: KindUint, Bits: 16, Hex: true, Next: true, Default: ethTypeExperimental, Help: "EtherType; from the next layer (0x0800 IPv4, 0x86dd IPv6, 0x8100 Dot1Q)"},
		{Name: "pad", Kind: KindBool, BuildOnly: true, Help: "pad the frame with zeros to the 60-byte minimum"},
	},
	Build:  buildEther,
	Decode: decodeEther,
}

var dot1qDef = &LayerDef{
	Name:    "Dot1Q",
	Aliases: []string{"VLAN"},
	Summary: "802.1Q VLAN tag (4 bytes after the MACs)",
	Fields: []FieldDef{
		{Name: "prio", Kind: KindUint, Bits: 3, Help: "priority code point"},
		{Name: "dei", Kind: KindUint, Bits: 1, Help: "drop eligible indicator"},
		{Name: "vlan", Kind: KindUint, Bits: 12, Default: "1", Help: "VLAN id"},
		{Name: "type", Kind: KindUint, Bits: 16, Hex: true, Next: true, Default: ethTypeExperimental, Help: "EtherType of what follows"},
	},
	// 0x88a8 is the 802.1ad service tag of QinQ, decoded the same way.
	Binds: []Bind{{"Ether", "type", 0x8100}, {"Dot1Q", "type", 0x8100}, {"Ether", "type", 0x88a8}},
	Build: func(c *BuildContext) (gopacket.SerializableLayer, error) {
		return &layers.Dot1Q{
			Priority:       uint8(c.Uint("prio")),
			DropEligible:   c.Uint("dei") == 1,
			VLANIdentifier: uint16(c.Uint("vlan")),
			Type:           layers.EthernetType(c.Uint("type")),
		}, nil
	},
	Decode: decodeDot1Q,
}

// buildEther writes the 14-byte header itself: gopacket's Ethernet pads
// every frame to 60 bytes, and a test packet must be exactly what was
// written (Ether(pad=true) asks for the padding; Build applies it).
func buildEther(c *BuildContext) (gopacket.SerializableLayer, error) {
	dst, src, typ := c.MAC("dst"), c.MAC("src"), uint16(c.Uint("type"))
	return serializeFunc(func(b gopacket.SerializeBuffer) error {
		h, err := b.PrependBytes(14)
		if err != nil {
			return err
		}
		copy(h[0:6], dst)
		copy(h[6:12], src)
		binary.BigEndian.PutUint16(h[12:14], typ)
		return nil
	}), nil
}

func decodeEther(data []byte, _ *Layer) (*Decoded, error) {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return nil, err
	}
	// The type is read as sent: gopacket turns values below 0x600 into an
	// 802.3 length, which bpfsh shows as the number it is.
	return &Decoded{HeaderLen: 14, Fields: []FieldValue{
		{Name: "dst", Value: eth.DstMAC, Off: 0, Len: 6},
		{Name: "src", Value: eth.SrcMAC, Off: 6, Len: 6},
		{Name: "type", Value: uint64(binary.BigEndian.Uint16(data[12:14])), Off: 12, Len: 2},
	}}, nil
}

func decodeDot1Q(data []byte, _ *Layer) (*Decoded, error) {
	var q layers.Dot1Q
	if err := q.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return nil, err
	}
	dei := uint64(0)
	if q.DropEligible {
		dei = 1
	}
	return &Decoded{HeaderLen: 4, Fields: []FieldValue{
		{Name: "prio", Value: uint64(q.Priority), Off: 0, Len: 1},
		{Name: "dei", Value: dei, Off: 0, Len: 1},
		{Name: "vlan", Value: uint64(q.VLANIdentifier), Off: 0, Len: 2},
		{Name: "type", Value: uint64(binary.BigEndian.Uint16(data[2:4])), Off: 2, Len: 2},
	}}, nil
}
