// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// The KV packet layer: UDP(dport=6390)/KV(op=SET, key="a", value="1")
// builds a request, and a UDP datagram to or from port 6390 decodes as
// KV, showing a reply's status by name. It lives here, beside the wire
// format, and is registered whenever bpf/kv is imported (the shell
// imports it for the built-in object).
func init() {
	ops := map[string]uint64{}
	for op, name := range opNames {
		ops[name] = uint64(op)
	}
	statuses := map[string]uint64{}
	for i, name := range statusNames {
		statuses[name] = uint64(i)
	}
	packet.Register(&packet.LayerDef{
		Name:    "KV",
		Summary: "bpfsh kv request or reply (bpf/kv/PROTOCOL.md); klen and vlen computed unless given",
		Fields: []packet.FieldDef{
			{Name: "magic", Kind: packet.KindUint, Bits: 8, Hex: true, Default: "0x4b", Help: "0x4b ('K'); anything else is not kv's"},
			{Name: "version", Kind: packet.KindUint, Bits: 8, Default: "1"},
			{Name: "op", Kind: packet.KindEnum, Bits: 8, Names: ops, Default: "GET", Help: "GET, SET, DEL, BEGIN, COMMIT, ABORT, SCAN"},
			{Name: "status", Kind: packet.KindEnum, Bits: 8, Names: statuses, Default: "OK", Help: "a reply's status; a request sends 0 (OK)"},
			{Name: "reqid", Kind: packet.KindUint, Bits: 32, Help: "request id, echoed in the reply"},
			{Name: "txid", Kind: packet.KindUint, Help: "transaction id (0: none); a SCAN reply's 1 means more keys matched"},
			{Name: "klen", Kind: packet.KindUint, Bits: 16, Auto: true, Help: "key length"},
			{Name: "vlen", Kind: packet.KindUint, Bits: 16, Auto: true, Help: "value length"},
			{Name: "key", Kind: packet.KindBytes, Help: `the key ("text" or hex); SCAN: the prefix`},
			{Name: "value", Kind: packet.KindBytes, Help: "SET: the value; GET reply: the value; SCAN reply: the entries"},
		},
		Positional: "op",
		Binds:      []packet.Bind{{Lower: "UDP", Field: "dport", Value: Port}, {Lower: "UDP", Field: "sport", Value: Port}},
		Build:      buildLayer,
		Decode:     decodeLayer,
	})
}

func buildLayer(c *packet.BuildContext) (gopacket.SerializableLayer, error) {
	key, value := c.Bytes("key"), c.Bytes("value")
	klen, ok := c.Given("klen")
	if !ok {
		if len(key) > 0xffff {
			return nil, c.Errorf("key", "%d bytes do not fit the 16-bit length", len(key))
		}
		klen = uint64(len(key))
	}
	vlen, ok := c.Given("vlen")
	if !ok {
		if len(value) > 0xffff {
			return nil, c.Errorf("value", "%d bytes do not fit the 16-bit length", len(value))
		}
		vlen = uint64(len(value))
	}
	b := make([]byte, HeaderLen, HeaderLen+len(key)+len(value))
	b[0], b[1], b[2], b[3] = byte(c.Uint("magic")), byte(c.Uint("version")), byte(c.Uint("op")), byte(c.Uint("status"))
	binary.BigEndian.PutUint32(b[4:], uint32(c.Uint("reqid")))
	binary.BigEndian.PutUint64(b[8:], c.Uint("txid"))
	binary.BigEndian.PutUint16(b[16:], uint16(klen))
	binary.BigEndian.PutUint16(b[18:], uint16(vlen))
	b = append(b, key...)
	return gopacket.Payload(append(b, value...)), nil
}

func decodeLayer(data []byte, _ *packet.Layer) (*packet.Decoded, error) {
	if len(data) < HeaderLen {
		return nil, fmt.Errorf("a kv message needs a %d-byte header, %d bytes are here", HeaderLen, len(data))
	}
	if data[0] != magic || data[1] != version {
		return nil, fmt.Errorf("magic 0x%02x version %d is not kv's (0x%02x, %d)", data[0], data[1], magic, version)
	}
	klen := int(binary.BigEndian.Uint16(data[16:]))
	vlen := int(binary.BigEndian.Uint16(data[18:]))
	kEnd := min(HeaderLen+klen, len(data))
	vEnd := min(kEnd+vlen, len(data))
	d := &packet.Decoded{HeaderLen: vEnd, End: vEnd, Fields: []packet.FieldValue{
		{Name: "magic", Value: uint64(data[0]), Off: 0, Len: 1},
		{Name: "version", Value: uint64(data[1]), Off: 1, Len: 1},
		{Name: "op", Value: uint64(data[2]), Off: 2, Len: 1},
		{Name: "status", Value: uint64(data[3]), Off: 3, Len: 1},
		{Name: "reqid", Value: uint64(binary.BigEndian.Uint32(data[4:])), Off: 4, Len: 4},
		{Name: "txid", Value: binary.BigEndian.Uint64(data[8:]), Off: 8, Len: 8},
		{Name: "klen", Value: uint64(klen), Off: 16, Len: 2},
		{Name: "vlen", Value: uint64(vlen), Off: 18, Len: 2},
		{Name: "key", Value: data[HeaderLen:kEnd], Off: HeaderLen, Len: kEnd - HeaderLen},
		{Name: "value", Value: data[kEnd:vEnd], Off: kEnd, Len: vEnd - kEnd},
	}}
	if vEnd < HeaderLen+klen+vlen {
		d.Note = fmt.Sprintf("truncated: klen %d and vlen %d want %d bytes after the header, %d are here", klen, vlen, klen+vlen, len(data)-HeaderLen)
	}
	if Op(data[2]) == OpScan && vlen > 0 && vEnd == kEnd+vlen {
		if entries, err := ScanEntries(data[kEnd:vEnd]); err == nil {
			d.Fields[9].Note = fmt.Sprintf("%d entries", len(entries))
			if len(entries) == 1 {
				d.Fields[9].Note = "1 entry"
			}
		}
	}
	return d, nil
}
