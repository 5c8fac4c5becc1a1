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
// The records live in a ring of fixed-size, pointer-free entries (24
// bytes; the garbage collector never scans them and appends need no write
// barrier). When the ring is full the oldest step is dropped; a session
// going back further than the ring reaches replays from the start
// instead (the engine is deterministic, so replaying reaches the same
// states). Longer old contents and closures live in an arena and a slice
// addressed by virtual positions, trimmed as the ring drops the records
// that referred to them.

// Record kinds.
const (
	recStep    uint8 = iota // opens a step: pc, and reg/old if a register is written; size is the frame depth
	recReg                  // a further register write
	recMem                  // size bytes at region's buf[off] were old
	recBytes                // region's buf[off:] held arena[old : old+pc]
	recRegions              // regions from off on were created
	recWritten              // region's written[off] was false
	recFunc                 // fn at position old undoes a complex change
)

const noReg = 0xff

// rec is one journal record.
type rec struct {
	kind   uint8
	reg    uint8
	size   uint8
	_      uint8
	pc     int32 // recStep: the slot; recBytes: the length
	region int32
	off    uint32
	old    uint64
}

type journal struct {
	on bool
	// ring holds n records from head; its length is a power of two.
	ring []rec
	head int
	n    int
	mask int
	// fns and arena are addressed by virtual positions: fns[i-fnBase],
	// arena[i-arenaBase].
	fns       []func()
	fnBase    uint64
	arena     []byte
	arenaBase uint64
	// steps is the step count at the oldest step the ring still holds.
	steps uint64
	limit int
}

// maxJournal bounds the journal: 2M records are 48 MB.
const maxJournal = 2 << 20

// push appends a record; cheap enough for the hot loop.
func (j *journal) push(r rec) {
	if j.n == len(j.ring) {
		j.makeRoom()
	}
	j.ring[(j.head+j.n)&j.mask] = r
	j.n++
}

// makeRoom grows the ring up to its limit, then drops the oldest step.
func (j *journal) makeRoom() {
	limit := j.limit
	if limit <= 0 {
		limit = maxJournal
	}
	if len(j.ring) < limit {
		// Start small enough that a small limit is honoured (a power of
		// two at or above it), else at 1024 records.
		size := 16
		for size < limit && size < 1024 {
			size *= 2
		}
		size = max(len(j.ring)*2, size)
		ring := make([]rec, size)
		for i := range j.n {
			ring[i] = j.ring[(j.head+i)&j.mask]
		}
		j.ring, j.head, j.mask = ring, 0, size-1
		return
	}
	// Drop the oldest steps, a sixteenth of the ring at a time: each
	// step record and what follows it.
	dropped := 0
	for j.n > 0 {
		r := &j.ring[j.head]
		if r.kind == recStep && dropped >= len(j.ring)/16 {
			break
		}
		switch r.kind {
		case recStep:
			j.steps++
		case recFunc:
			j.releaseFns(r.old + 1)
		case recBytes:
			j.releaseArena(r.old + uint64(r.pc))
		}
		j.head = (j.head + 1) & j.mask
		j.n--
		dropped++
	}
}

// releaseFns lets go of closures before virtual position upTo.
func (j *journal) releaseFns(upTo uint64) {
	for j.fnBase < upTo && len(j.fns) > 0 {
		j.fns[0] = nil
		j.fns = j.fns[1:]
		j.fnBase++
	}
}

// releaseArena lets go of arena bytes before virtual position upTo.
func (j *journal) releaseArena(upTo uint64) {
	if upTo <= j.arenaBase {
		return
	}
	n := min(upTo-j.arenaBase, uint64(len(j.arena)))
	j.arena = j.arena[n:]
	j.arenaBase += n
	if cap(j.arena) > 1<<20 && len(j.arena) < cap(j.arena)/4 {
		j.arena = append([]byte(nil), j.arena...)
	}
}

// saveBytes records the old contents of a longer write.
func (j *journal) saveBytes(region int32, off uint32, old []byte) {
	at := j.arenaBase + uint64(len(j.arena))
	j.arena = append(j.arena, old...)
	j.push(rec{kind: recBytes, region: region, off: off, pc: int32(len(old)), old: at})
}

// fn records a closure that undoes a complex change.
func (j *journal) fn(undo func()) {
	if !j.on {
		return
	}
	j.push(rec{kind: recFunc, old: j.fnBase + uint64(len(j.fns))})
	j.fns = append(j.fns, undo)
}

// setReg writes a register beyond the one a step record covers.
func (m *machine) setReg(r uint8, v uint64) {
	if m.j.on {
		m.j.push(rec{kind: recReg, reg: r, old: m.r[r]})
	}
	m.r[r] = v
}

// undoStep reverts the last step. It returns false when the journal holds
// no whole step any more.
func (m *machine) undoStep() bool {
	j := &m.j
	for j.n > 0 {
		r := j.ring[(j.head+j.n-1)&j.mask]
		j.n--
		switch r.kind {
		case recStep:
			if r.reg != noReg {
				m.r[r.reg] = r.old
			}
			m.pc = r.pc
			m.steps--
			return true
		case recReg:
			m.r[r.reg] = r.old
		case recMem:
			b := m.regions[r.region].buf[r.off:]
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
			at := r.old - j.arenaBase
			copy(m.regions[r.region].buf[r.off:], j.arena[at:at+uint64(r.pc)])
			j.arena = j.arena[:at]
		case recRegions:
			m.regions = m.regions[:r.off]
		case recWritten:
			m.regions[r.region].written[r.off] = false
		case recFunc:
			i := r.old - j.fnBase
			j.fns[i]()
			j.fns[i] = nil
			j.fns = j.fns[:i]
		}
	}
	return false
}

// canUndo reports whether the journal reaches back one more step.
func (m *machine) canUndo() bool {
	return m.j.on && m.steps > m.j.steps && m.j.n > 0
}
