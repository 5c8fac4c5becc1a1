// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// The MemcacheUDP packet layer: memcached's 8-byte UDP frame header.
// UDP(dport=11211)/MemcacheUDP(req_id=7)/Raw("get foo\r\n") builds a
// request, and a UDP datagram to or from port 11211 decodes as
// MemcacheUDP followed by the text (Raw). It lives here, beside the wire
// format, and is registered whenever bpf/cache is imported (the shell
// imports it for the built-in object).
func init() {
	packet.Register(&packet.LayerDef{
		Name:    "MemcacheUDP",
		Summary: "memcached UDP frame header (bpf/cache/PROTOCOL.md); the text command or reply follows",
		Fields: []packet.FieldDef{
			{Name: "req_id", Kind: packet.KindUint, Bits: 16, Help: "request id, echoed in the reply"},
			{Name: "seq", Kind: packet.KindUint, Bits: 16, Help: "this datagram's number in the message, from 0"},
			{Name: "total", Kind: packet.KindUint, Bits: 16, Default: "1", Help: "datagrams in the message"},
			{Name: "reserved", Kind: packet.KindUint, Bits: 16, Help: "0"},
		},
		Positional: "req_id",
		Binds:      []packet.Bind{{Lower: "UDP", Field: "dport", Value: Port}, {Lower: "UDP", Field: "sport", Value: Port}},
		Build:      buildFrameHeader,
		Decode:     decodeFrameHeader,
	})
}

// frameHeader prepends the frame header to whatever follows it.
type frameHeader [FrameHeaderLen]byte

func (h frameHeader) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	p, err := b.PrependBytes(FrameHeaderLen)
	if err != nil {
		return err
	}
	copy(p, h[:])
	return nil
}

func (frameHeader) LayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

func buildFrameHeader(c *packet.BuildContext) (gopacket.SerializableLayer, error) {
	var h frameHeader
	copy(h[:], FrameHeader(uint16(c.Uint("req_id")), uint16(c.Uint("seq")), uint16(c.Uint("total")), uint16(c.Uint("reserved"))))
	return h, nil
}

// FrameHeader returns memcached's UDP frame header: request id, sequence
// number, total datagrams, reserved.
func FrameHeader(reqID, seq, total, reserved uint16) []byte {
	h := make([]byte, FrameHeaderLen)
	binary.BigEndian.PutUint16(h[0:], reqID)
	binary.BigEndian.PutUint16(h[2:], seq)
	binary.BigEndian.PutUint16(h[4:], total)
	binary.BigEndian.PutUint16(h[6:], reserved)
	return h
}

func decodeFrameHeader(data []byte, _ *packet.Layer) (*packet.Decoded, error) {
	if len(data) < FrameHeaderLen {
		return nil, fmt.Errorf("a memcached UDP frame header needs %d bytes, %d are here", FrameHeaderLen, len(data))
	}
	d := &packet.Decoded{HeaderLen: FrameHeaderLen, Next: "Raw", Fields: []packet.FieldValue{
		{Name: "req_id", Value: uint64(binary.BigEndian.Uint16(data[0:])), Off: 0, Len: 2},
		{Name: "seq", Value: uint64(binary.BigEndian.Uint16(data[2:])), Off: 2, Len: 2},
		{Name: "total", Value: uint64(binary.BigEndian.Uint16(data[4:])), Off: 4, Len: 2},
		{Name: "reserved", Value: uint64(binary.BigEndian.Uint16(data[6:])), Off: 6, Len: 2},
	}}
	if total := binary.BigEndian.Uint16(data[4:]); total != 1 {
		d.Note = fmt.Sprintf("datagram %d of %d: the cache answers only single-datagram requests", binary.BigEndian.Uint16(data[2:]), total)
	}
	return d, nil
}
