// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// pinMany pins the fixture's counters map n times under a fresh pin root.
func pinMany(b *testing.B, n int) string {
	b.Helper()
	root := bpftest.PinRoot(b)
	objs := bpftest.Fixture(b, root)
	dir := filepath.Join(root, "many")
	for i := range n {
		if err := bpf.PinFD(objs.Counters.FD(), filepath.Join(dir, fmt.Sprintf("m%05d", i))); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkWalkPins is what completion pays for names under 10,000 pins.
func BenchmarkWalkPins(b *testing.B) {
	dir := pinMany(b, 10000)
	for b.Loop() {
		n := 0
		if err := bpf.WalkPins(dir, func(string, bool) error { n++; return nil }); err != nil || n != 10000 {
			b.Fatalf("walked %d (%v)", n, err)
		}
	}
}

// BenchmarkListPins is "ls" over 10,000 pins (each opened once).
func BenchmarkListPins(b *testing.B) {
	dir := pinMany(b, 10000)
	for b.Loop() {
		pins, err := bpf.ListPins(dir)
		if err != nil || len(pins) != 10000 {
			b.Fatalf("listed %d (%v)", len(pins), err)
		}
	}
}
