// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"
)

// packet is the packet a program sees, laid out as BPF_PROG_TEST_RUN lays
// it out (net/bpf/test_run.c), so that moving its head, tail and metadata
// is limited where the kernel limits it:
//
//	buf[0]                       hard start
//	buf[meta:data]               XDP metadata (empty for skbs)
//	buf[data:end]                what the program reads and writes
//	buf[end:limit]               tail room the program may grow into
//
// For XDP the buffer is a page: 256 bytes of head room (less the
// metadata given), the frame, and the page's end minus struct
// skb_shared_info as the limit. For skbs it is NET_SKB_PAD of head room
// and the frame rounded up to a cache line.
type packet struct {
	region int32
	// Offsets in the region's buffer.
	meta, data, end uint32
	// limit is how far end may grow (XDP's data_hard_end; for skbs the
	// buffer grows as pskb_expand_head would grow it).
	limit uint32
	// headMin is how far data may move to the front (XDP keeps room for
	// struct xdp_frame there).
	headMin uint32
	// l2 is the frame's Ethernet header for skb programs that see the
	// packet from L3 on: the kernel hands their output back with the
	// header zeroed and testrun puts the input's back.
	l2 []byte
	// frags are the bytes of an XDP frame beyond the linear area: the
	// kernel turns them into fragments a program only sees with the
	// frags helpers.
	frags []byte
	xdp   bool
}

// Test-run layout constants (x86-64, Linux 6.1 to 6.18).
const (
	xdpHeadroom     = 256 // XDP_PACKET_HEADROOM
	xdpFrameSize    = 40  // sizeof(struct xdp_frame): adjust_head keeps it free
	pageSize        = 4096
	skbSharedInfo   = 320 // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
	xdpMaxLinear    = pageSize - xdpHeadroom - skbSharedInfo
	netSkbPad       = 64 // NET_SKB_PAD (NET_IP_ALIGN is 0 on x86)
	ethHeaderLen    = 14
	smpCacheBytes   = 64
	xdpMetaMax      = 32
	skbGrowHeadroom = 256
)

// newXDPPacket lays out an XDP frame; data holds metaLen bytes of metadata
// first, as data_in does when xdp_md.data is set.
func (m *machine) newXDPPacket(data []byte, metaLen int) (*packet, error) {
	if len(data) < ethHeaderLen {
		return nil, fmt.Errorf("XDP input must be at least %d bytes, got %d", ethHeaderLen, len(data))
	}
	p := &packet{xdp: true, headMin: xdpFrameSize, limit: pageSize - skbSharedInfo}
	linear := data
	if len(linear) > xdpMaxLinear {
		linear, p.frags = data[:xdpMaxLinear], append([]byte(nil), data[xdpMaxLinear:]...)
	}
	buf := make([]byte, pageSize)
	start := xdpHeadroom - metaLen
	copy(buf[start:], linear)
	p.meta, p.data, p.end = uint32(start), uint32(xdpHeadroom), uint32(start+len(linear))
	p.region = m.newRegion(&region{kind: RegionPacket, buf: buf, lo: p.meta, hi: p.end, name: "pkt"})
	return p, nil
}

// newSKBPacket lays out an skb's linear data; l3 programs see it from the
// network header on.
func (m *machine) newSKBPacket(data []byte, l3 bool) (*packet, error) {
	if len(data) < ethHeaderLen {
		return nil, fmt.Errorf("skb input must be at least %d bytes (an Ethernet header), got %d", ethHeaderLen, len(data))
	}
	size := (len(data) + smpCacheBytes - 1) &^ (smpCacheBytes - 1)
	buf := make([]byte, netSkbPad+size)
	copy(buf[netSkbPad:], data)
	p := &packet{data: netSkbPad, end: uint32(netSkbPad + len(data)), limit: uint32(len(buf))}
	if l3 {
		p.l2 = append([]byte(nil), data[:ethHeaderLen]...)
		p.data += ethHeaderLen
	}
	p.meta = p.data
	p.region = m.newRegion(&region{kind: RegionPacket, buf: buf, lo: p.meta, hi: p.end, name: "pkt"})
	return p, nil
}

// setBounds moves the packet's meta, data and end, journaled.
func (m *machine) setPacketBounds(meta, data, end uint32) {
	p := m.env.pkt
	r := m.regions[p.region]
	om, od, oe := p.meta, p.data, p.end
	if m.j.on {
		m.j.fn(func() {
			p.meta, p.data, p.end = om, od, oe
			r.lo, r.hi = om, oe
		})
	}
	p.meta, p.data, p.end = meta, data, end
	r.lo, r.hi = meta, end
}

// growPacket gives an skb more room: pskb_expand_head moves the data to
// a bigger buffer; packet pointers die with it (the verifier makes the
// program reload them), so the region keeps its id with the new buffer.
func (m *machine) growPacket(head, tail uint32) {
	p := m.env.pkt
	r := m.regions[p.region]
	old, om, od, oe, ol := r.buf, p.meta, p.data, p.end, p.limit
	buf := make([]byte, len(old)+int(head)+int(tail))
	copy(buf[head:], old)
	if m.j.on {
		m.j.fn(func() {
			r.buf = old
			p.meta, p.data, p.end, p.limit = om, od, oe, ol
			r.lo, r.hi = om, oe
		})
	}
	r.buf = buf
	p.meta, p.data, p.end, p.limit = om+head, od+head, oe+head, uint32(len(buf))
	r.lo, r.hi = p.meta, p.end
}

// packetBytes returns the packet's bytes from data to end.
func (m *machine) packetBytes() []byte {
	p := m.env.pkt
	return m.regions[p.region].buf[p.data:p.end]
}
