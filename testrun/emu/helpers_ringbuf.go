// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func init() {
	register(
		helper{id: int32(asm.FnRingbufReserve), args: 3, fn: hRingbufReserve},
		helper{id: int32(asm.FnRingbufSubmit), args: 2, fn: hRingbufSubmit},
		helper{id: int32(asm.FnRingbufDiscard), args: 2, fn: hRingbufDiscard},
		helper{id: int32(asm.FnRingbufOutput), args: 4, fn: hRingbufOutput},
		helper{id: int32(asm.FnRingbufQuery), args: 2, fn: hRingbufQuery},
	)
}

// ringHdr is BPF_RINGBUF_HDR_SZ.
const ringHdr = 8

// ringOf loads a ring buffer's positions the first time it is used: the
// kernel map's, read without consuming (a fresh clone's are 0).
func (m *machine) ringOf(v *mapView) (*ringState, error) {
	if v.typ != ebpf.RingBuf {
		return nil, fmt.Errorf("a ring buffer helper on a %s map", v.typ)
	}
	if v.ring == nil {
		v.ring = &ringState{}
	}
	rs := v.ring
	if !rs.loaded {
		cons, prod, err := v.src.ring()
		if err != nil {
			return nil, err
		}
		rs.cons, rs.prod, rs.cur, rs.loaded = cons, prod, prod, true
	}
	return rs, nil
}

// reserve finds room for size bytes as __bpf_ringbuf_reserve does: the
// producer may not get a whole ring ahead of the consumer, nor of the
// oldest record not yet submitted.
func (m *machine) ringReserve(v *mapView, rs *ringState, size uint32) (*ringRec, bool) {
	n := (uint64(size) + ringHdr + 7) &^ 7
	mask := uint64(v.maxEntries) - 1
	if n > mask+1 {
		return nil, false
	}
	newProd := rs.cur + n
	pending := rs.cur
	for _, r := range rs.recs {
		if r.state == ringReserved && r.pos < pending {
			pending = r.pos
		}
	}
	if newProd-rs.cons > mask || newProd-pending > mask {
		return nil, false
	}
	rec := &ringRec{pos: rs.cur, size: size, state: ringReserved}
	reg := &region{kind: RegionRingRec, buf: make([]byte, size), hi: size, written: make([]bool, size), mp: v, name: "record of " + v.name}
	rec.region = m.newRegion(reg)
	oldCur, oldRecs := rs.cur, rs.recs
	if m.j.on {
		m.j.fn(func() { rs.cur, rs.recs = oldCur, oldRecs })
	}
	rs.cur = newProd
	rs.recs = append(rs.recs[:len(rs.recs):len(rs.recs)], rec)
	return rec, true
}

func hRingbufReserve(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	rs, err := m.ringOf(v)
	if err != nil {
		return m.helperErr(err)
	}
	if c.a[2] != 0 {
		c.ret = 0
		return true
	}
	rec, ok := m.ringReserve(v, rs, uint32(c.a[1]))
	if !ok {
		c.ret = 0
		c.ev.Text = "no room"
		return true
	}
	c.ret = regionAddr(rec.region, 0)
	return true
}

// ringRecAt finds the record a submit or discard names.
func (m *machine) ringRecAt(addr uint64) (*mapView, *ringRec, bool) {
	r, off, ok := m.resolve(addr, 0)
	if r == nil || r.kind != RegionRingRec || off != 0 || !ok && r.hi != 0 {
		m.fault(fmt.Sprintf("a ring buffer record expected, got %s", m.describeAddr(addr)))
		return nil, nil, false
	}
	if r.dead {
		m.fault("a ring buffer record submitted or discarded twice")
		return nil, nil, false
	}
	id := int32((addr >> idShift) & idMask)
	for _, rec := range r.mp.ring.recs {
		if rec.region == id {
			return r.mp, rec, true
		}
	}
	m.fault("a ring buffer record the session did not reserve")
	return nil, nil, false
}

// finishRec submits or discards a record: its memory is the program's no
// more.
func (m *machine) finishRec(v *mapView, rec *ringRec, state uint8) {
	r := m.regions[rec.region]
	oldState, oldData := rec.state, rec.data
	if m.j.on {
		m.j.fn(func() { rec.state, rec.data, r.dead, r.deadMsg = oldState, oldData, false, "" })
	}
	rec.state = state
	rec.data = append([]byte(nil), r.buf...)
	r.dead = true
	r.deadMsg = "the record was submitted"
	if state == ringDiscarded {
		r.deadMsg = "the record was discarded"
	}
}

func hRingbufSubmit(m *machine, c *hcall) bool {
	v, rec, ok := m.ringRecAt(c.a[0])
	if !ok {
		return false
	}
	m.finishRec(v, rec, ringSubmitted)
	c.noEvent = true
	m.addEvent(Event{Kind: EventRingbuf, Helper: c.name, HelperID: c.id, Map: v.name, Data: rec.data, Text: fmt.Sprintf("submitted %d bytes", rec.size)})
	c.ret = 0
	return true
}

func hRingbufDiscard(m *machine, c *hcall) bool {
	v, rec, ok := m.ringRecAt(c.a[0])
	if !ok {
		return false
	}
	m.finishRec(v, rec, ringDiscarded)
	c.noEvent = true
	m.addEvent(Event{Kind: EventRingbuf, Helper: c.name, HelperID: c.id, Map: v.name, Text: fmt.Sprintf("discarded %d bytes", rec.size)})
	c.ret = 0
	return true
}

func hRingbufOutput(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	rs, err := m.ringOf(v)
	if err != nil {
		return m.helperErr(err)
	}
	if c.a[3]&^3 != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	data, ok := m.readBytes(c.a[1], uint32(c.a[2]))
	if !ok {
		return false
	}
	rec, ok := m.ringReserve(v, rs, uint32(c.a[2]))
	if !ok {
		c.ret = negErr(errEAGAIN)
		return true
	}
	r := m.regions[rec.region]
	m.writeRegion(r, 0, data)
	m.finishRec(v, rec, ringSubmitted)
	c.noEvent = true
	m.addEvent(Event{Kind: EventRingbuf, Helper: c.name, HelperID: c.id, Map: v.name, Data: rec.data, Text: fmt.Sprintf("submitted %d bytes", rec.size)})
	c.ret = 0
	return true
}

// hRingbufQuery answers BPF_RB_AVAIL_DATA (0), RING_SIZE (1), CONS_POS
// (2) and PROD_POS (3) from the session's view of the ring.
func hRingbufQuery(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	rs, err := m.ringOf(v)
	if err != nil {
		return m.helperErr(err)
	}
	switch c.a[1] {
	case 0:
		c.ret = rs.cur - rs.cons
	case 1:
		c.ret = uint64(v.maxEntries)
	case 2:
		c.ret = rs.cons
	case 3:
		c.ret = rs.cur
	default:
		c.ret = 0
	}
	return true
}
