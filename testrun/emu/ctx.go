// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"fmt"
)

// ctxModel serves a program's loads and stores of its context. The
// verifier rewrites context accesses into reads of kernel structures
// (xdp_md.data becomes xdp_buff.data, a pointer); the model computes what
// those reads give. Plain fields live in the region's bytes, which the
// journal covers; computed fields come from the packet or the model.
type ctxModel interface {
	load(m *machine, off uint32, size uint8) (uint64, error)
	store(m *machine, off uint32, size uint8, v uint64) error
	name() string
}

// field reads size bytes at off of a little-endian buffer.
func field(b []byte, off uint32, size uint8) uint64 {
	switch size {
	case 1:
		return uint64(b[off])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b[off:]))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b[off:]))
	}
	return binary.LittleEndian.Uint64(b[off:])
}

// narrow extracts a narrow load of size bytes at off from a field of
// fsize bytes starting at foff with value v, as the verifier's narrow
// context loads do (little-endian).
func narrow(v uint64, foff, off uint32, size uint8) uint64 {
	v >>= 8 * (off - foff)
	if size < 8 {
		v &= 1<<(8*uint(size)) - 1
	}
	return v
}

// xdpCtx is struct xdp_md:
//
//	data(0) data_end(4) data_meta(8) ingress_ifindex(12) rx_queue_index(16) egress_ifindex(20)
type xdpCtx struct {
	region int32
}

func (c *xdpCtx) name() string { return "struct xdp_md" }

func (c *xdpCtx) load(m *machine, off uint32, size uint8) (uint64, error) {
	p := m.env.pkt
	switch {
	case off == 0 && size == 4:
		return regionAddr(p.region, p.data), nil
	case off == 4 && size == 4:
		return regionAddr(p.region, p.end), nil
	case off == 8 && size == 4:
		return regionAddr(p.region, p.meta), nil
	case off == 12 && size == 4:
		// Without an interface in the context the kernel's test run
		// uses the loopback device's queue 0.
		if v := field(m.regions[c.region].buf, 12, 4); v != 0 {
			return v, nil
		}
		return loopbackIfindex, nil
	case off == 16 && size == 4:
		return field(m.regions[c.region].buf, 16, 4), nil
	case off == 20 && size == 4:
		return 0, nil // egress_ifindex: only devmap programs have one
	}
	return 0, fmt.Errorf("a %d-byte read at offset %d of struct xdp_md, which the verifier does not allow", size, off)
}

func (c *xdpCtx) store(m *machine, off uint32, size uint8, v uint64) error {
	return fmt.Errorf("a write to struct xdp_md at offset %d, which the verifier does not allow", off)
}

// skbCtx is struct __sk_buff as BPF_PROG_TEST_RUN's skb presents it.
type skbCtx struct {
	region int32
	// writable are the fields a program of this type may write.
	writable map[uint32]bool
	// flowKeys is the flow dissector's struct bpf_flow_keys region.
	flowKeys int32
	sock     int32
	dissect  bool
}

// __sk_buff offsets (include/uapi/linux/bpf.h).
const (
	skbLen        = 0
	skbPktType    = 4
	skbMark       = 8
	skbQueueMap   = 12
	skbProtocol   = 16
	skbVlanPres   = 20
	skbVlanTCI    = 24
	skbVlanProto  = 28
	skbPriority   = 32
	skbIngressIf  = 36
	skbIfindex    = 40
	skbTCIndex    = 44
	skbCB         = 48
	skbHash       = 68
	skbTCClassid  = 72
	skbData       = 76
	skbDataEnd    = 80
	skbNapiID     = 84
	skbFamily     = 88
	skbRemoteIP4  = 92
	skbLocalIP4   = 96
	skbRemoteIP6  = 100
	skbLocalIP6   = 116
	skbRemotePort = 132
	skbLocalPort  = 136
	skbDataMeta   = 140
	skbFlowKeys   = 144
	skbTstamp     = 152
	skbWireLen    = 160
	skbGsoSegs    = 164
	skbSk         = 168
	skbGsoSize    = 176
	skbTstampType = 180
	skbHwtstamp   = 184
	skbSize       = 192
)

func (c *skbCtx) name() string { return "struct __sk_buff" }

func (c *skbCtx) load(m *machine, off uint32, size uint8) (uint64, error) {
	p := m.env.pkt
	buf := m.regions[c.region].buf
	if off+uint32(size) > skbSize {
		return 0, fmt.Errorf("a read past the end of struct __sk_buff (offset %d)", off)
	}
	switch off {
	case skbData:
		return regionAddr(p.region, p.data), nil
	case skbDataEnd:
		return regionAddr(p.region, p.end), nil
	case skbDataMeta:
		return regionAddr(p.region, p.meta), nil
	case skbFlowKeys:
		if !c.dissect {
			return 0, fmt.Errorf("__sk_buff.flow_keys is only there for flow dissectors")
		}
		return regionAddr(c.flowKeys, 0), nil
	case skbSk:
		if c.sock <= 0 {
			return 0, nil
		}
		return regionAddr(c.sock, 0), nil
	}
	// Fields the model computes from the packet; narrow loads of them
	// are allowed.
	fo := off &^ 3
	switch fo {
	case skbLen:
		return narrow(uint64(p.end-p.data), fo, off, size), nil
	}
	return field(buf, off, size), nil
}

func (c *skbCtx) store(m *machine, off uint32, size uint8, v uint64) error {
	fo := off &^ 3
	if fo >= skbCB && fo < skbCB+20 {
		fo = skbCB
	}
	if off == skbTstamp || off == skbHwtstamp {
		fo = off
	}
	if !c.writable[fo] {
		return fmt.Errorf("a write to __sk_buff at offset %d, which the emulator does not model for this program type", off)
	}
	m.storeRaw(m.regions[c.region], off, size, v)
	return nil
}

// skbWritable are the fields each family of skb program may write
// (net/core/filter.c *_is_valid_access).
func skbWritable(kind string) map[uint32]bool {
	w := map[uint32]bool{skbCB: true}
	switch kind {
	case "tc":
		for _, f := range []uint32{skbMark, skbPriority, skbQueueMap, skbTCIndex, skbTCClassid, skbTstamp} {
			w[f] = true
		}
	case "cgroup":
		for _, f := range []uint32{skbMark, skbPriority, skbTstamp} {
			w[f] = true
		}
	case "lwt":
		for _, f := range []uint32{skbMark, skbPriority} {
			w[f] = true
		}
	}
	return w
}

// skLookupCtx is struct bpf_sk_lookup: its fields are the input's, and sk
// (offset 0) is the socket the program selected.
type skLookupCtx struct {
	region int32
}

func (c *skLookupCtx) name() string { return "struct bpf_sk_lookup" }

func (c *skLookupCtx) load(m *machine, off uint32, size uint8) (uint64, error) {
	if off < 8 {
		if off != 0 || size != 8 {
			return 0, fmt.Errorf("a %d-byte read of bpf_sk_lookup.sk", size)
		}
		return 0, nil // no socket selected: bpf_sk_assign is not emulated
	}
	buf := m.regions[c.region].buf
	if off+uint32(size) > uint32(len(buf)) {
		return 0, fmt.Errorf("a read past the end of struct bpf_sk_lookup (offset %d)", off)
	}
	return field(buf, off, size), nil
}

func (c *skLookupCtx) store(m *machine, off uint32, size uint8, v uint64) error {
	return fmt.Errorf("a write to struct bpf_sk_lookup at offset %d, which the verifier does not allow", off)
}
