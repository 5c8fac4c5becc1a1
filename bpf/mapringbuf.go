// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// RingBufState is what a ring buffer holds, read without consuming.
type RingBufState struct {
	// Size is the data area's size in bytes (the map's max_entries).
	Size uint64
	// ConsumerPos and ProducerPos are the kernel's running byte counters:
	// everything between them has been written and not yet read.
	ConsumerPos, ProducerPos uint64
	// Records are the pending records, oldest first, at most the limit
	// PeekRingBuf was given.
	Records []RingBufRecord
	// More is true when more records are pending than Records holds.
	More bool
}

// Pending is how many bytes (headers included) wait to be read.
func (s *RingBufState) Pending() uint64 { return s.ProducerPos - s.ConsumerPos }

// RingBufRecord is one pending record.
type RingBufRecord struct {
	Pos       uint64 // its position (the producer counter when reserved)
	Len       int    // its length in bytes
	Busy      bool   // reserved but not yet submitted
	Discarded bool   // discarded by the program; a reader skips it
	Data      []byte // its first bytes (at most the limit given)
}

// Ring buffer record header bits (BPF_RINGBUF_BUSY_BIT, _DISCARD_BIT) and
// size, from <linux/bpf.h>.
const (
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	ringHdrSize    = 8
)

// PeekRingBuf maps a BPF_MAP_TYPE_RINGBUF read-only and reports its
// positions and up to maxRecords pending records (each cut to maxBytes),
// without moving the consumer position: a reader attached to the ring
// still gets every record.
//
// The layout is the kernel's: the consumer page, the producer page, then
// the data area mapped twice in a row, so that a record that wraps around
// reads as one piece.
func PeekRingBuf(m *ebpf.Map, maxRecords, maxBytes int) (*RingBufState, error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("%s is not a ringbuf", MapTypeName(uint32(m.Type())))
	}
	page := os.Getpagesize()
	size := int(m.MaxEntries())
	mem, err := unix.Mmap(m.FD(), 0, 2*page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the ring buffer: %w", explainMapErr(err))
	}
	defer unix.Munmap(mem)
	load := func(off int) uint64 {
		return atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[off])))
	}
	st := &RingBufState{Size: uint64(size), ConsumerPos: load(0), ProducerPos: load(page)}
	data := mem[2*page:]
	mask := uint64(size - 1)
	for pos := st.ConsumerPos; pos < st.ProducerPos; {
		if len(st.Records) == maxRecords {
			st.More = true
			break
		}
		off := int(pos & mask)
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&data[off])))
		n := int(hdr &^ (ringBusyBit | ringDiscardBit))
		rec := RingBufRecord{Pos: pos, Len: n, Busy: hdr&ringBusyBit != 0, Discarded: hdr&ringDiscardBit != 0}
		if rec.Busy {
			// Not submitted yet; nothing after it is readable either.
			st.Records = append(st.Records, rec)
			break
		}
		if off+ringHdrSize+n > len(data) {
			break // torn read of a header being rewritten; stop here
		}
		rec.Data = append([]byte(nil), data[off+ringHdrSize:off+ringHdrSize+min(n, maxBytes)]...)
		st.Records = append(st.Records, rec)
		pos += uint64((n + ringHdrSize + 7) &^ 7)
	}
	return st, nil
}
