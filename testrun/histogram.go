// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"math/bits"
	"time"
)

// histogram counts durations in a fixed number of buckets, so that timing
// a billion runs takes the same memory as timing ten: durations below
// histSub nanoseconds have a bucket each; above, every power of two is
// split into histSub buckets, which keeps a quantile within 1/histSub
// (about 1.6%) of the true value. Min and max are kept exactly.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max time.Duration
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // buckets per power of two
	// Up to 2^40 ns (18 minutes) a run; longer ones land in the last.
	histBuckets = (40 - histSubBits + 1) * histSub
)

// bucket is the bucket of a duration of ns nanoseconds.
func histBucket(ns uint64) int {
	if ns < histSub {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 // ns is in [2^exp, 2^(exp+1))
	sub := int(ns>>(exp-histSubBits)) - histSub
	b := (exp-histSubBits+1)*histSub + sub
	return min(b, histBuckets-1)
}

// histLow is the smallest duration of bucket b, in nanoseconds.
func histLow(b int) uint64 {
	if b < histSub {
		return uint64(b)
	}
	exp := b/histSub + histSubBits - 1
	sub := uint64(b % histSub)
	return (histSub + sub) << (exp - histSubBits)
}

// add counts one duration.
func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.counts[histBucket(uint64(d))]++
	h.n++
}

// quantile is the duration below which a fraction q of the runs fell, as
// the rank-based percentile of a sorted list: the value at index
// floor(q*n), clamped to [min, max].
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := min(uint64(q*float64(h.n)), h.n-1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen > rank {
			return min(max(time.Duration(histLow(b)), h.min), h.max)
		}
	}
	return h.max
}
