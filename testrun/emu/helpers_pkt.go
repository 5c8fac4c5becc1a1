// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func init() {
	register(
		helper{id: int32(asm.FnXdpAdjustHead), args: 2, fn: hXDPAdjustHead},
		helper{id: int32(asm.FnXdpAdjustTail), args: 2, fn: hXDPAdjustTail},
		helper{id: int32(asm.FnXdpAdjustMeta), args: 2, fn: hXDPAdjustMeta},
		helper{id: int32(asm.FnXdpLoadBytes), args: 4, fn: hXDPLoadBytes},
		helper{id: int32(asm.FnXdpStoreBytes), args: 4, fn: hXDPStoreBytes},
		helper{id: int32(asm.FnXdpGetBuffLen), args: 1, fn: hXDPGetBuffLen},
		helper{id: int32(asm.FnSkbLoadBytes), args: 4, fn: hSKBLoadBytes},
		helper{id: int32(asm.FnSkbLoadBytesRelative), args: 5, fn: hSKBLoadBytesRelative},
		helper{id: int32(asm.FnSkbStoreBytes), args: 5, fn: hSKBStoreBytes},
		helper{id: int32(asm.FnL3CsumReplace), args: 5, fn: hL3CsumReplace},
		helper{id: int32(asm.FnL4CsumReplace), args: 5, fn: hL4CsumReplace},
		helper{id: int32(asm.FnCsumDiff), args: 5, fn: hCsumDiff},
		helper{id: int32(asm.FnSkbChangeTail), args: 3, fn: hSKBChangeTail},
		helper{id: int32(asm.FnSkbPullData), args: 2, fn: hSKBPullData},
		helper{id: int32(asm.FnRedirect), args: 2, fn: hRedirect},
		helper{id: int32(asm.FnCloneRedirect), args: 3, fn: hCloneRedirect},
		helper{id: int32(asm.FnRedirectMap), args: 3, fn: hRedirectMap},
		helper{id: int32(asm.FnSkRedirectMap), args: 4, fn: hSkRedirect},
		helper{id: int32(asm.FnSkRedirectHash), args: 4, fn: hSkRedirect},
		helper{id: int32(asm.FnMsgRedirectMap), args: 4, fn: hSkRedirect},
		helper{id: int32(asm.FnMsgRedirectHash), args: 4, fn: hSkRedirect},
		helper{id: int32(asm.FnGetSocketCookie), args: 1, fn: hSocketCookie, incomparable: "the program reads a socket cookie, which the kernel makes up per socket", hard: true},
	)
}

// pktLen is the packet's length as the helpers see it (from data).
func (m *machine) pktLen() uint32 { return m.env.pkt.end - m.env.pkt.data }

func (m *machine) needPacket(c *hcall) bool {
	if m.env.pkt == nil {
		m.fault(fmt.Sprintf("%s in a program without a packet", c.name))
		return false
	}
	return true
}

func hXDPAdjustHead(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	p := m.env.pkt
	off := int64(int32(c.a[1]))
	metalen := int64(p.data - p.meta)
	data := int64(p.data) + off
	if data < int64(p.headMin)+metalen || data > int64(p.end)-ethHeaderLen {
		c.ret = negErr(errEINVAL)
		return true
	}
	r := m.regions[p.region]
	if metalen > 0 {
		moved := append([]byte(nil), r.buf[p.meta:p.data]...)
		m.writeRegion(r, uint32(int64(p.meta)+off), moved)
	}
	m.setPacketBounds(uint32(int64(p.meta)+off), uint32(data), p.end)
	c.ret = 0
	return true
}

func hXDPAdjustMeta(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	p := m.env.pkt
	off := int64(int32(c.a[1]))
	meta := int64(p.meta) + off
	if meta < int64(p.headMin) || meta > int64(p.data) {
		c.ret = negErr(errEINVAL)
		return true
	}
	metalen := int64(p.data) - meta
	if metalen%4 != 0 || metalen > xdpMetaMax {
		c.ret = negErr(13) // EACCES
		return true
	}
	m.setPacketBounds(uint32(meta), p.data, p.end)
	c.ret = 0
	return true
}

func hXDPAdjustTail(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	p := m.env.pkt
	if len(p.frags) > 0 {
		return m.helperErr(fmt.Errorf("bpf_xdp_adjust_tail on a frame with fragments (over %d bytes) is not emulated", xdpMaxLinear))
	}
	off := int64(int32(c.a[1]))
	end := int64(p.end) + off
	if end > int64(p.limit) || end < int64(p.data)+ethHeaderLen {
		c.ret = negErr(errEINVAL)
		return true
	}
	if off > 0 {
		// The kernel clears what the tail grows into.
		r := m.regions[p.region]
		m.writeRegion(r, p.end, make([]byte, off))
	}
	m.setPacketBounds(p.meta, p.data, uint32(end))
	c.ret = 0
	return true
}

// xdpRange checks a load_bytes/store_bytes range as bpf_xdp_pointer does.
func (m *machine) xdpRange(c *hcall) (uint32, uint32, bool) {
	off, n := uint32(c.a[1]), uint32(c.a[3])
	if off > 0xffff || n > 0xffff {
		c.ret = negErr(14) // EFAULT
		return 0, 0, false
	}
	total := m.pktLen() + uint32(len(m.env.pkt.frags))
	if off+n > total {
		c.ret = negErr(errEINVAL)
		return 0, 0, false
	}
	if off+n > m.pktLen() {
		c.ret = 0
		m.fault(fmt.Sprintf("%s reaching into the frame's fragments (past byte %d) is not emulated", c.name, m.pktLen()))
		return 0, 0, false
	}
	return off, n, true
}

func hXDPLoadBytes(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	off, n, ok := m.xdpRange(c)
	if !ok {
		return m.stop == StopNone
	}
	p := m.env.pkt
	b := append([]byte(nil), m.regions[p.region].buf[p.data+off:p.data+off+n]...)
	if !m.writeBytes(c.a[2], b) {
		return false
	}
	c.ret = 0
	return true
}

func hXDPStoreBytes(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	off, n, ok := m.xdpRange(c)
	if !ok {
		return m.stop == StopNone
	}
	b, ok := m.readBytes(c.a[2], n)
	if !ok {
		return false
	}
	p := m.env.pkt
	m.writeRegion(m.regions[p.region], p.data+off, b)
	c.ret = 0
	return true
}

func hXDPGetBuffLen(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	c.ret = uint64(m.pktLen()) + uint64(len(m.env.pkt.frags))
	return true
}

// hSKBLoadBytes is bpf_skb_load_bytes: offsets from skb->data; out of
// range, the buffer is cleared and -EFAULT returned.
func hSKBLoadBytes(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	off, n := uint32(c.a[1]), uint32(c.a[3])
	return m.skbLoad(c, c.a[2], uint64(off), n, m.env.pkt.data)
}

func (m *machine) skbLoad(c *hcall, to uint64, off uint64, n uint32, base uint32) bool {
	p := m.env.pkt
	if off > 0x7fffffff || uint64(base)+off+uint64(n) > uint64(p.end) {
		if !m.writeBytes(to, make([]byte, n)) {
			return false
		}
		c.ret = negErr(14) // EFAULT
		return true
	}
	b := append([]byte(nil), m.regions[p.region].buf[uint64(base)+off:uint64(base)+off+uint64(n)]...)
	if !m.writeBytes(to, b) {
		return false
	}
	c.ret = 0
	return true
}

// hSKBLoadBytesRelative loads from the mac (0) or network (1) header.
func hSKBLoadBytesRelative(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	p := m.env.pkt
	var base uint32
	switch c.a[4] {
	case 0: // BPF_HDR_START_MAC
		base = p.data
		if p.l2 != nil {
			return m.helperErr(fmt.Errorf("bpf_skb_load_bytes_relative from the MAC header of an L3 program is not emulated"))
		}
	case 1: // BPF_HDR_START_NET
		base = p.data
		if p.l2 == nil && m.env.progType != ebpf.FlowDissector {
			base += ethHeaderLen
		}
	default:
		c.ret = negErr(errEINVAL)
		return true
	}
	n := uint32(c.a[3])
	off := uint64(uint32(c.a[1]))
	if uint64(base)+off+uint64(n) > uint64(p.end) {
		if !m.writeBytes(c.a[2], make([]byte, n)) {
			return false
		}
		c.ret = negErr(14)
		return true
	}
	return m.skbLoad(c, c.a[2], off, n, base)
}

// BPF_F_* flags of the skb helpers.
const (
	fRecomputeCsum  = 1 << 0
	fInvalidateHash = 1 << 1
	fHdrFieldMask   = 0xf
	fPseudoHdr      = 1 << 4
	fMarkMangled0   = 1 << 5
	fMarkEnforce    = 1 << 6
	fIPv6           = 1 << 7
)

func hSKBStoreBytes(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	off, n, flags := uint32(c.a[1]), uint32(c.a[3]), c.a[4]
	if flags&^uint64(fRecomputeCsum|fInvalidateHash) != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	if off > 0x7fffffff || uint64(off)+uint64(n) > uint64(m.pktLen()) {
		c.ret = negErr(14)
		return true
	}
	b, ok := m.readBytes(c.a[2], n)
	if !ok {
		return false
	}
	p := m.env.pkt
	m.writeRegion(m.regions[p.region], p.data+off, b)
	c.ret = 0
	return true
}

// csumField checks a checksum helper's offset and returns where the
// 16-bit checksum is.
func (m *machine) csumField(c *hcall) (*region, uint32, bool) {
	off := uint32(c.a[1])
	if off > 0xffff || off&1 != 0 || off+2 > m.pktLen() {
		c.ret = negErr(14)
		return nil, 0, false
	}
	p := m.env.pkt
	return m.regions[p.region], p.data + off, true
}

func hL3CsumReplace(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	flags := c.a[4]
	if flags&^uint64(fHdrFieldMask) != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	r, at, ok := m.csumField(c)
	if !ok {
		return true
	}
	sum := binary.LittleEndian.Uint16(r.buf[at:])
	from, to := c.a[2], c.a[3]
	switch flags & fHdrFieldMask {
	case 0:
		if from != 0 {
			c.ret = negErr(errEINVAL)
			return true
		}
		sum = csumReplaceByDiff(sum, uint32(to))
	case 2:
		sum = csumReplace2(sum, uint16(from), uint16(to))
	case 4:
		sum = csumReplace4(sum, uint32(from), uint32(to))
	default:
		c.ret = negErr(errEINVAL)
		return true
	}
	m.storeRaw(r, at, 2, uint64(sum))
	c.ret = 0
	return true
}

func hL4CsumReplace(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	flags := c.a[4]
	if flags&^uint64(fMarkMangled0|fMarkEnforce|fPseudoHdr|fHdrFieldMask|fIPv6) != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	r, at, ok := m.csumField(c)
	if !ok {
		return true
	}
	sum := binary.LittleEndian.Uint16(r.buf[at:])
	mmzero, enforce := flags&fMarkMangled0 != 0, flags&fMarkEnforce != 0
	if mmzero && !enforce && sum == 0 {
		c.ret = 0
		return true
	}
	from, to := c.a[2], c.a[3]
	switch flags & fHdrFieldMask {
	case 0:
		if from != 0 {
			c.ret = negErr(errEINVAL)
			return true
		}
		sum = csumReplaceByDiff(sum, uint32(to))
	case 2:
		sum = csumReplace4(sum, uint32(uint16(from)), uint32(uint16(to)))
	case 4:
		sum = csumReplace4(sum, uint32(from), uint32(to))
	default:
		c.ret = negErr(errEINVAL)
		return true
	}
	if mmzero && sum == 0 {
		sum = 0xffff // CSUM_MANGLED_0
	}
	m.storeRaw(r, at, 2, uint64(sum))
	c.ret = 0
	return true
}

// hCsumDiff is bpf_csum_diff(from, from_size, to, to_size, seed): the
// kernel complements the from words, appends the to words and takes
// csum_partial of the lot with the seed.
func hCsumDiff(m *machine, c *hcall) bool {
	fromSize, toSize := uint32(c.a[1]), uint32(c.a[3])
	if (fromSize|toSize)&3 != 0 || fromSize+toSize > 512 {
		c.ret = negErr(errEINVAL)
		return true
	}
	var from, to []byte
	var ok bool
	if fromSize > 0 {
		if from, ok = m.readBytes(c.a[0], fromSize); !ok {
			return false
		}
	}
	if toSize > 0 {
		if to, ok = m.readBytes(c.a[2], toSize); !ok {
			return false
		}
	}
	diff := make([]byte, 0, fromSize+toSize)
	for i := 0; i < len(from); i++ {
		diff = append(diff, ^from[i])
	}
	diff = append(diff, to...)
	c.ret = uint64(csumPartial(diff, uint32(c.a[4])))
	return true
}

// hSKBChangeTail is bpf_skb_change_tail: the new tail is zeroed.
func hSKBChangeTail(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	p := m.env.pkt
	newLen, flags := uint32(c.a[1]), c.a[2]
	minLen := uint32(0)
	if p.l2 == nil {
		minLen = ethHeaderLen // the network header's offset
	}
	const maxLen = 65536 + ethHeaderLen // the loopback's MTU and header
	if flags != 0 || newLen > maxLen || newLen < minLen {
		c.ret = negErr(errEINVAL)
		return true
	}
	cur := m.pktLen()
	if newLen > cur {
		if p.data+newLen > p.limit {
			m.growPacket(0, p.data+newLen-p.limit)
		}
		m.writeRegion(m.regions[p.region], p.end, make([]byte, newLen-cur))
	}
	m.setPacketBounds(p.meta, p.data, p.data+newLen)
	c.ret = 0
	return true
}

func hSKBPullData(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	if uint32(c.a[1]) > m.pktLen() {
		c.ret = negErr(errENOMEM)
		return true
	}
	c.ret = 0
	return true
}

// Return codes of redirects.
const (
	xdpAborted    = 0
	xdpRedirect   = 4
	tcActShot     = 2
	tcActRedirect = 7
	bpfFIngress   = 1
	netRxDrop     = 1
	netXmitCN     = 2
)

func hRedirect(m *machine, c *hcall) bool {
	flags := c.a[1]
	c.ev.Text = fmt.Sprintf("to ifindex %d", uint32(c.a[0]))
	if m.env.progType == ebpf.XDP {
		if flags != 0 {
			c.ret = xdpAborted
			return true
		}
		c.ret = xdpRedirect
		return true
	}
	if flags&^uint64(bpfFIngress) != 0 {
		c.ret = tcActShot
		return true
	}
	c.ret = tcActRedirect
	return true
}

// hCloneRedirect is bpf_clone_redirect: a copy of the skb goes out of
// (or, with BPF_F_INGRESS, into) the device ifindex now, and the program
// goes on with its own skb. The result is what the kernel's send returns:
// -EINVAL for unknown flags or no such device in this network namespace
// (the one the kernel's test run uses too); for a device that is down,
// NET_XMIT_CN (2) out of it (a down device's qdisc is noop, which drops
// and says so) and NET_RX_DROP (1) into it; else 0.
func hCloneRedirect(m *machine, c *hcall) bool {
	if !m.needPacket(c) {
		return false
	}
	ifindex, flags := uint32(c.a[1]), c.a[2]
	dir := "out of"
	if flags&bpfFIngress != 0 {
		dir = "into"
	}
	c.ev.Text = fmt.Sprintf("a copy %s ifindex %d", dir, ifindex)
	if flags&^uint64(bpfFIngress) != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	dev, err := net.InterfaceByIndex(int(ifindex))
	if err != nil || ifindex == 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	c.ev.Text = fmt.Sprintf("a copy %s %s (ifindex %d)", dir, dev.Name, ifindex)
	switch {
	case dev.Flags&net.FlagUp != 0:
		c.ret = 0
	case flags&bpfFIngress != 0:
		c.ret = netRxDrop
	default:
		c.ret = netXmitCN
	}
	return true
}

// hRedirectMap is bpf_redirect_map on a devmap, cpumap or xskmap: a
// present slot redirects; a missing one returns the action in the low
// bits of flags.
func hRedirectMap(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	key := binary.LittleEndian.AppendUint32(nil, uint32(c.a[1]))
	if v.typ == ebpf.DevMapHash {
		key = key[:v.keySize]
	}
	e, err := v.get(key)
	if err != nil {
		return m.helperErr(err)
	}
	if !e.ok {
		c.ret = c.a[2] & 3
		return true
	}
	c.ret = xdpRedirect
	return true
}

// hSkRedirect is the sockmap redirect family: SK_PASS when the socket is
// in the map, SK_DROP when not. The redirect itself is recorded.
func hSkRedirect(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 1)
	if !ok {
		return false
	}
	var key []byte
	if v.typ == ebpf.SockHash {
		k, ok := m.readBytes(c.a[2], v.keySize)
		if !ok {
			return false
		}
		key = k
	} else {
		key = binary.LittleEndian.AppendUint32(nil, uint32(c.a[2]))
	}
	c.ev.Data = key
	e, err := v.get(key)
	if err != nil {
		return m.helperErr(err)
	}
	c.ret = 0 // SK_DROP
	if e.ok {
		c.ret = 1 // SK_PASS
	}
	return true
}

func hSocketCookie(m *machine, c *hcall) bool {
	c.ret = 1
	return true
}
