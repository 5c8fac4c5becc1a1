// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The histogram's quantiles stay within 1/64 of the exact ones, its
// memory does not depend on how many durations it counted, and small
// durations are exact.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	var all []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(20 + r.ExpFloat64()*300)
		if r.IntN(100) == 0 {
			d = time.Duration(r.IntN(5_000_000))
		}
		h.add(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999} {
		want := all[min(int(q*float64(len(all))), len(all)-1)]
		got := h.quantile(q)
		if diff := float64(got - want); diff > float64(want)/64+1 || diff < -float64(want)/64-1 {
			t.Errorf("q%.3f = %v, exact %v", q, got, want)
		}
	}
	if h.min != all[0] || h.max != all[len(all)-1] {
		t.Errorf("min %v max %v, want %v %v", h.min, h.max, all[0], all[len(all)-1])
	}
	var small histogram
	for _, d := range []time.Duration{5, 7, 9, 11, 63} {
		small.add(d)
	}
	if small.quantile(0.5) != 9 || small.quantile(0.99) != 63 {
		t.Errorf("small durations: median %v p99 %v", small.quantile(0.5), small.quantile(0.99))
	}
	for b := 1; b < histBuckets; b++ {
		if histLow(b) <= histLow(b-1) || histBucket(histLow(b)) != b {
			t.Fatalf("bucket %d starts at %d (previous %d), which falls in bucket %d", b, histLow(b), histLow(b-1), histBucket(histLow(b)))
		}
	}
}
