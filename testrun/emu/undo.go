// SPDX-License-Identifier: Apache-2.0

package emu

import "encoding/binary"

// The journal makes every step undoable. Each executed instruction opens
// with a step record (its slot and, when it writes a register, that
// register's old value); what else it changes follows: memory (old bytes),
// a new region, and, for the rare complex changes (frames, map entries,
// events, the packet's bounds), a closure that puts things back. Undoing a
// step pops records back to and including its step record.
//
// The journal is bounded: past maxJournal records its older half is
// dropped, and a session going back further replays from the start
// instead (the engine is deterministic, so replaying reaches the same
// states).

// Record kinds.
const (
	recStep    uint8 = iota // opens a step: pc, and reg/old if a register is written
	recReg                  // a further register write
	recMem                  // size bytes at ptr.buf[off] were old
	recBytes                // ptr.buf[off:] held arena[old : old+size32]
	recRegions              // regions beyond off were created
	recWritten              // ptr.written[off] was false
	recFunc                 // fns[off] undoes a complex change
	recFrames               // the frame stack: fns[off] restores it
)

const noReg = 0xff

// rec is one journal record; 40 bytes.
type rec struct {
	kind uint8
	reg  uint8
	size uint8
	pc   int32
	off  uint32
	n    uint32 // recBytes: length
	old  uint64
	ptr  *region
}

type journal struct {
	on    bool
	recs  []rec
	fns   []func()
	arena []byte
	// steps is the number of step records dropped from the front: the
	// journal can undo back to step `steps` and no further.
	steps uint64
	limit int
}

// maxJournal bounds the journal: 2M records are about 80 MB.
const maxJournal = 2 << 20

// saveBytes records the old contents of a longer write.
func (j *journal) saveBytes(r *region, off uint32, old []byte) {
	at := uint64(len(j.arena))
	j.arena = append(j.arena, old...)
	j.recs = append(j.recs, rec{kind: recBytes, ptr: r, off: off, n: uint32(len(old)), old: at})
}

// fn records a closure that undoes a complex change.
func (j *journal) fn(undo func()) {
	if !j.on {
		return
	}
	j.recs = append(j.recs, rec{kind: recFunc, off: uint32(len(j.fns))})
	j.fns = append(j.fns, undo)
}

// setReg writes a register beyond the one a step record covers.
func (m *machine) setReg(r uint8, v uint64) {
	if m.j.on {
		m.j.recs = append(m.j.recs, rec{kind: recReg, reg: r, old: m.r[r]})
	}
	m.r[r] = v
}

// undoStep reverts the last step. It returns false when the journal holds
// no whole step any more.
func (m *machine) undoStep() bool {
	j := &m.j
	for i := len(j.recs) - 1; i >= 0; i-- {
		r := &j.recs[i]
		switch r.kind {
		case recStep:
			if r.reg != noReg {
				m.r[r.reg] = r.old
			}
			m.pc = r.pc
			m.steps--
			j.recs = j.recs[:i]
			m.trimFns()
			return true
		case recReg:
			m.r[r.reg] = r.old
		case recMem:
			b := r.ptr.buf[r.off:]
			switch r.size {
			case 1:
				b[0] = byte(r.old)
			case 2:
				binary.LittleEndian.PutUint16(b, uint16(r.old))
			case 4:
				binary.LittleEndian.PutUint32(b, uint32(r.old))
			default:
				binary.LittleEndian.PutUint64(b, r.old)
			}
		case recBytes:
			copy(r.ptr.buf[r.off:], j.arena[r.old:r.old+uint64(r.n)])
			j.arena = j.arena[:r.old]
		case recRegions:
			m.regions = m.regions[:r.off]
		case recWritten:
			r.ptr.written[r.off] = false
		case recFunc, recFrames:
			j.fns[r.off]()
			j.fns[r.off] = nil
		}
	}
	j.recs = j.recs[:0]
	return false
}

// trimFns drops closures no record refers to any more.
func (m *machine) trimFns() {
	j := &m.j
	n := len(j.fns)
	for n > 0 && j.fns[n-1] == nil {
		n--
	}
	j.fns = j.fns[:n]
}

// canUndo reports whether the journal reaches back one more step.
func (m *machine) canUndo() bool {
	return m.j.on && m.steps > m.j.steps && len(m.j.recs) > 0
}

// compact drops the older half of the journal when it is over its limit,
// at a step boundary. Closures and arena bytes the dropped records used
// are dropped with them.
func (m *machine) compact() {
	j := &m.j
	limit := j.limit
	if limit == 0 {
		limit = maxJournal
	}
	if len(j.recs) < limit {
		return
	}
	cut := len(j.recs) / 2
	for cut < len(j.recs) && j.recs[cut].kind != recStep {
		cut++
	}
	if cut == len(j.recs) {
		return
	}
	dropped := uint64(0)
	minFn, minArena := len(j.fns), uint64(len(j.arena))
	for i := range j.recs[:cut] {
		if j.recs[i].kind == recStep {
			dropped++
		}
	}
	for i := cut; i < len(j.recs); i++ {
		r := &j.recs[i]
		switch r.kind {
		case recFunc, recFrames:
			minFn = min(minFn, int(r.off))
		case recBytes:
			minArena = min(minArena, r.old)
		}
	}
	kept := make([]rec, len(j.recs)-cut, max(limit, len(j.recs)-cut))
	copy(kept, j.recs[cut:])
	for i := range kept {
		switch kept[i].kind {
		case recFunc, recFrames:
			kept[i].off -= uint32(minFn)
		case recBytes:
			kept[i].old -= minArena
		}
	}
	j.recs = kept
	j.fns = append([]func(){}, j.fns[minFn:]...)
	j.arena = append([]byte{}, j.arena[minArena:]...)
	j.steps += dropped
}
