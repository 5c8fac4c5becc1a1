// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// Addresses. A pointer is a region and an offset into it; registers hold
// it as a 64-bit value a program can add to, compare and spill like the
// kernel's own pointers:
//
//	0xffffa | region id (20 bits) | offset (24 bits)
//
// Pointers into the same region compare as the kernel's do (data against
// data_end), a NULL check sees a non-zero value, and any value carries its
// provenance: the front end asks Session.Describe what a register points
// to without the engine tagging registers in its hot loop.
const (
	addrTag    uint64 = 0xffffa << 44
	addrTagMsk uint64 = 0xfffff << 44
	idShift           = 24
	idMask     uint64 = 1<<20 - 1
	offMask    uint64 = 1<<idShift - 1
	maxRegions        = 1 << 20
)

// regionAddr is the address of offset off in region id.
func regionAddr(id int32, off uint32) uint64 {
	return addrTag | uint64(id)<<idShift | uint64(off)
}

// RegionKind says what a region holds.
type RegionKind uint8

// Region kinds.
const (
	RegionNone     RegionKind = iota
	RegionStack               // a frame's 512-byte stack
	RegionCtx                 // the program's context
	RegionPacket              // the packet, with head and tail room
	RegionMapValue            // one map entry's value (one CPU's, for per-CPU maps)
	RegionMapKey              // a map entry's key, handed to a for_each callback
	RegionMap                 // a map itself: only helpers take it
	RegionRingRec             // a ring buffer record being written
	RegionFlowKeys            // struct bpf_flow_keys of a flow dissector
	RegionSocket              // a socket a lookup returned (opaque)
	RegionHelper              // memory a helper returned otherwise
)

var regionKindNames = [...]string{"none", "stack", "ctx", "packet", "map value", "map key", "map", "ring buffer record", "flow keys", "socket", "helper memory"}

// String names the kind.
func (k RegionKind) String() string {
	if int(k) < len(regionKindNames) {
		return regionKindNames[k]
	}
	return fmt.Sprintf("region kind %d", k)
}

// region is one piece of memory the program may touch.
type region struct {
	id   int32 // its index in machine.regions
	kind RegionKind
	buf  []byte
	// lo and hi bound the accessible bytes of buf; the packet's move as
	// the program adjusts head, tail and metadata.
	lo, hi uint32
	ro     bool
	// ctx, when set, serves every load and store: context fields are
	// rewritten by the verifier into reads of kernel structures, which
	// the model computes.
	ctx ctxModel
	// watch makes stores check the session's watchpoints; written
	// tracks which bytes the program wrote (ring records).
	watch   bool
	written []bool
	dead    bool   // a submitted ring record, a freed frame
	deadMsg string // why it is dead

	// For provenance.
	name  string   // "stack frame 1", "hx_flows"
	mp    *mapView // the map of a value, key or map region
	key   []byte   // the entry's key
	cpu   int      // the CPU of a per-CPU value
	typ   btf.Type // what the bytes are, when known
	frame int      // the frame depth of a stack region
}

// Fault stops a session on an access the emulator cannot serve. The
// verifier accepted the program, so the program cannot make such an
// access in the kernel: a Fault is the emulator being wrong (or missing a
// model of something), never the program.
type Fault struct {
	PC   int
	Step uint64
	Msg  string
}

func (f *Fault) Error() string {
	return fmt.Sprintf("emulator fault at instruction %d (step %d): %s; the verifier accepted this program, so the emulator, not the program, is wrong here",
		f.PC, f.Step, f.Msg)
}

// newRegion adds a region and returns its id. Creating regions is undone
// by the journal so that stepping forwards again hands out the same ids,
// and with them the same pointer values.
func (m *machine) newRegion(r *region) int32 {
	if len(m.regions) >= maxRegions {
		panic("emu: out of region ids")
	}
	id := int32(len(m.regions))
	if m.j.on {
		m.j.push(rec{kind: recRegions, off: uint32(id)})
	}
	r.id = id
	m.regions = append(m.regions, r)
	return id
}

// resolve finds the bytes of an access of size bytes at addr.
func (m *machine) resolve(addr uint64, size uint32) (*region, uint32, bool) {
	if addr&addrTagMsk != addrTag {
		return nil, 0, false
	}
	id := (addr >> idShift) & idMask
	if id >= uint64(len(m.regions)) {
		return nil, 0, false
	}
	r := m.regions[id]
	off := uint32(addr & offMask)
	if off < r.lo || off+size > r.hi || off+size < off {
		return r, off, false
	}
	return r, off, true
}

// describeAccess says what an address is, for fault messages.
func (m *machine) describeAccess(addr uint64, size uint32, write bool) string {
	verb := "read"
	if write {
		verb = "write"
	}
	if addr&addrTagMsk != addrTag {
		return fmt.Sprintf("%s of %d bytes at 0x%x, which points into no region the emulator knows (a scalar, or a kernel pointer the emulator does not model)", verb, size, addr)
	}
	id := int32((addr >> idShift) & idMask)
	if int(id) >= len(m.regions) {
		return fmt.Sprintf("%s of %d bytes at 0x%x: region %d does not exist (any more)", verb, size, addr, id)
	}
	r := m.regions[id]
	bias := int(m.regionBias(id))
	return fmt.Sprintf("%s of %d bytes at %s, outside its accessible bytes [%d, %d)", verb, size, m.describeAddr(addr), int(r.lo)-bias, int(r.hi)-bias)
}

// load reads size bytes at addr, little-endian.
func (m *machine) load(addr uint64, size uint8) (uint64, bool) {
	r, off, ok := m.resolve(addr, uint32(size))
	if !ok || r.dead {
		m.faultAccess(addr, uint32(size), false, r)
		return 0, false
	}
	if r.ctx != nil {
		v, err := r.ctx.load(m, off, size)
		if err != nil {
			m.fault(err.Error())
			return 0, false
		}
		return v, true
	}
	b := r.buf[off:]
	switch size {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.LittleEndian.Uint16(b)), true
	case 4:
		return uint64(binary.LittleEndian.Uint32(b)), true
	default:
		return binary.LittleEndian.Uint64(b), true
	}
}

// store writes the low size bytes of v at addr, journaled.
func (m *machine) store(addr uint64, size uint8, v uint64) bool {
	r, off, ok := m.resolve(addr, uint32(size))
	if !ok || r.dead || r.ro {
		m.faultAccess(addr, uint32(size), true, r)
		return false
	}
	if r.ctx != nil {
		if err := r.ctx.store(m, off, size, v); err != nil {
			m.fault(err.Error())
			return false
		}
		return true
	}
	m.storeRaw(r, off, size, v)
	return true
}

// storeRaw writes to plain memory: the journal keeps the old bytes.
func (m *machine) storeRaw(r *region, off uint32, size uint8, v uint64) {
	b := r.buf[off:]
	if m.j.on {
		var old uint64
		switch size {
		case 1:
			old = uint64(b[0])
		case 2:
			old = uint64(binary.LittleEndian.Uint16(b))
		case 4:
			old = uint64(binary.LittleEndian.Uint32(b))
		default:
			old = binary.LittleEndian.Uint64(b)
		}
		j := &m.j
		if j.n == len(j.ring) {
			j.makeRoom()
		}
		e := &j.ring[(j.head+j.n)&j.mask]
		e.kind, e.size, e.region, e.off, e.old = recMem, size, r.id, off, old
		j.n++
	}
	if r.watch || r.written != nil {
		m.noteWrite(r, off, uint32(size))
	}
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	default:
		binary.LittleEndian.PutUint64(b, v)
	}
}

// readBytes copies n bytes at addr for a helper.
func (m *machine) readBytes(addr uint64, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	r, off, ok := m.resolve(addr, n)
	if !ok || r.dead {
		m.faultAccess(addr, n, false, r)
		return nil, false
	}
	if r.ctx != nil {
		m.fault(fmt.Sprintf("a helper reads %d bytes of the context (%s) as memory; the emulator does not model that", n, r.ctx.name()))
		return nil, false
	}
	return append([]byte(nil), r.buf[off:off+n]...), true
}

// writeBytes copies b to addr for a helper, journaled.
func (m *machine) writeBytes(addr uint64, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	r, off, ok := m.resolve(addr, uint32(len(b)))
	if !ok || r.dead || r.ro {
		m.faultAccess(addr, uint32(len(b)), true, r)
		return false
	}
	if r.ctx != nil {
		m.fault(fmt.Sprintf("a helper writes %d bytes into the context (%s) as memory; the emulator does not model that", len(b), r.ctx.name()))
		return false
	}
	m.writeRegion(r, off, b)
	return true
}

// writeRegion overwrites bytes of a region, journaled.
func (m *machine) writeRegion(r *region, off uint32, b []byte) {
	if m.j.on {
		m.j.saveBytes(r.id, off, r.buf[off:off+uint32(len(b))])
	}
	if r.watch || r.written != nil {
		m.noteWrite(r, off, uint32(len(b)))
	}
	copy(r.buf[off:], b)
}

// noteWrite marks written bytes and tells the watchpoints.
func (m *machine) noteWrite(r *region, off, n uint32) {
	if r.written != nil {
		for i := off; i < off+n && int(i) < len(r.written); i++ {
			if !r.written[i] {
				if m.j.on {
					m.j.push(rec{kind: recWritten, region: r.id, off: i})
				}
				r.written[i] = true
			}
		}
	}
	if r.watch {
		m.watchTouched = true
	}
}

func (m *machine) faultAccess(addr uint64, size uint32, write bool, r *region) {
	switch {
	case r != nil && r.dead:
		m.fault(fmt.Sprintf("access to %s, which is no longer valid (%s)", m.describeAddr(addr), r.deadMsg))
	case r != nil && r.ro && write:
		m.fault(fmt.Sprintf("write of %d bytes to %s, which is read-only", size, m.describeAddr(addr)))
	default:
		m.fault(m.describeAccess(addr, size, write))
	}
}

// regionBias is the offset in a region's buffer that provenance calls 0:
// the packet's data, a stack's frame pointer.
func (m *machine) regionBias(id int32) uint32 {
	r := m.regions[id]
	switch r.kind {
	case RegionPacket:
		return m.env.pkt.data
	case RegionStack:
		return uint32(len(r.buf))
	}
	return 0
}
