// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"github.com/gopacket/gopacket"
)

var rawDef = &LayerDef{
	Name:    "Raw",
	Summary: `payload bytes: Raw("text") or Raw(hex=0011aa)`,
	Fields: []FieldDef{
		{Name: "load", Kind: KindBytes, Help: `"text" (escapes \r \n \t \xHH) or hex digits`},
		{Name: "hex", Kind: KindHex, Alias: "load", Help: "the load in hex"},
	},
	Positional: "load",
	Build: func(c *BuildContext) (gopacket.SerializableLayer, error) {
		return gopacket.Payload(c.Bytes("load")), nil
	},
	Decode: decodeRest,
}

var paddingDef = &LayerDef{
	Name:    "Padding",
	Summary: "bytes after the frame, outside every length and checksum: Padding(4) is 4 zero bytes",
	Fields: []FieldDef{
		{Name: "load", Kind: KindBytes, Help: "the padding bytes; zeros when omitted"},
		{Name: "len", Kind: KindUint, Bits: 16, BuildOnly: true, Help: "how many zero bytes, when load is omitted"},
	},
	Positional: "len",
	Trailer:    true,
	Build: func(c *BuildContext) (gopacket.SerializableLayer, error) {
		if c.Has("load") && c.Has("len") {
			return nil, c.Errorf("len", "give load or len, not both")
		}
		load := c.Bytes("load")
		if !c.Has("load") {
			load = make([]byte, c.Uint("len"))
		}
		return gopacket.Payload(load), nil
	},
	Decode: decodeRest,
}

// decodeRest takes all the bytes as the layer's load.
func decodeRest(data []byte, _ *Layer) (*Decoded, error) {
	return &Decoded{HeaderLen: len(data), Fields: []FieldValue{
		{Name: "load", Value: data, Off: 0, Len: len(data)},
	}}, nil
}
