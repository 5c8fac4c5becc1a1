// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"math/bits"
)

// Internet checksum arithmetic as the kernel does it on x86-64, so that
// the helpers' results match bit for bit, not only once folded.

// csumPartial is arch/x86/lib/csum-partial_64.c's csum_partial: 64-bit
// words (little-endian) summed with end-around carry starting from the
// 32-bit seed, the last partial word zero-padded, then folded to 32 bits
// by adding the halves with carry. The kernel's chunked loops and
// separate accumulators give the same value: the one's complement sum has
// one representation for every non-zero residue, and the zero residue is
// all-ones once any non-zero word was added, 0 only when nothing was.
func csumPartial(b []byte, seed uint32) uint32 {
	t := uint64(seed)
	add := func(w uint64) {
		var c uint64
		t, c = bits.Add64(t, w, 0)
		t += c
	}
	for len(b) >= 8 {
		add(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	if len(b) > 0 {
		var tail [8]byte
		copy(tail[:], b)
		add(binary.LittleEndian.Uint64(tail[:]))
	}
	return uint32((t + bits.RotateLeft64(t, -32)) >> 32)
}

// csumAdd is csum_add: 32-bit addition with end-around carry.
func csumAdd(a, b uint32) uint32 {
	r := a + b
	if r < b {
		r++
	}
	return r
}

func csumSub(a, b uint32) uint32 { return csumAdd(a, ^b) }

// csumFold is csum_fold: 32 bits to 16, complemented.
func csumFold(s uint32) uint16 {
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return ^uint16(s)
}

// csumUnfold is csum_unfold: a 16-bit checksum as a 32-bit partial sum.
func csumUnfold(s uint16) uint32 { return uint32(s) }

func csum16Add(c, a uint16) uint16 {
	r := c + a
	if r < a {
		r++
	}
	return r
}

func csum16Sub(c, a uint16) uint16 { return csum16Add(c, ^a) }

// csumReplace4 is csum_replace4 (and inet_proto_csum_replace4 for an skb
// that is not CHECKSUM_PARTIAL, which test-run skbs never are).
func csumReplace4(sum uint16, from, to uint32) uint16 {
	tmp := csumSub(^csumUnfold(sum), from)
	return csumFold(csumAdd(tmp, to))
}

// csumReplace2 is csum_replace2.
func csumReplace2(sum uint16, from, to uint16) uint16 {
	return ^csum16Add(csum16Sub(^sum, from), to)
}

// csumReplaceByDiff is csum_replace_by_diff.
func csumReplaceByDiff(sum uint16, diff uint32) uint16 {
	return csumFold(csumAdd(diff, ^csumUnfold(sum)))
}
