// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"math/bits"
	"time"
)

// Latency histograms
//
// A load run may time millions of requests; keeping them all would make
// memory grow with the run's length. A histogram with 32 buckets per
// power of two (exact below 64 ns) keeps percentiles within about 3% in
// fixed memory, and per-client histograms merge by adding.

const (
	histSub     = 32 // buckets per power of two
	histLinear  = 2 * histSub
	histBuckets = histLinear + 58*histSub
)

// Histogram counts durations in nanoseconds.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

func histIndex(ns uint64) int {
	if ns < histLinear {
		return int(ns)
	}
	shift := bits.Len64(ns) - 6 // ns>>shift is in [32, 63]
	return histLinear + (shift-1)*histSub + int(ns>>shift) - histSub
}

// histMid is the middle of bucket i's range.
func histMid(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := uint64((i-histLinear)%histSub + histSub)
	lo, hi := m<<shift, (m+1)<<shift
	return lo + (hi-lo)/2
}

// Add counts one duration.
func (h *Histogram) Add(d time.Duration) {
	h.counts[histIndex(uint64(max(d, 0)))]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of durations counted.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the longest duration counted.
func (h *Histogram) Max() time.Duration { return h.max }

// Percentile is the duration under which a fraction p (0..1) of the
// counted ones fall; 0 when none were counted.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(p*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histMid(i)), h.max)
		}
	}
	return h.max
}
