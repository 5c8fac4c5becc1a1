// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// The diff's own batch reader (by fd, buffers kept per map) reads what
// cilium/ebpf's does, whatever the map: per-CPU values of odd sizes
// (padded to 8 bytes by the kernel), several batches, maps without batch
// lookups (read by the fallback), and again after the map changed.
func TestReadBatchedSameAsReadEntries(t *testing.T) {
	bpftest.RequireRoot(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	specs := []*ebpf.MapSpec{
		{Name: "h", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 2000},
		{Name: "h3", Type: ebpf.Hash, KeySize: 4, ValueSize: 3, MaxEntries: 64},
		{Name: "pch", Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 3, MaxEntries: 600},
		{Name: "a", Type: ebpf.Array, KeySize: 4, ValueSize: 12, MaxEntries: 300},
		{Name: "pca", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 4, MaxEntries: 3},
		{Name: "lru", Type: ebpf.LRUHash, KeySize: 8, ValueSize: 16, MaxEntries: 512},
		{Name: "lpm", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 16, Flags: 1 /* BPF_F_NO_PREALLOC */},
	}
	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			m, err := ebpf.NewMap(spec)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			defer m.Close()
			fill := func(n, seed int) {
				for i := range n {
					k := make([]byte, spec.KeySize)
					k[0], k[1] = byte(i), byte(i>>8)
					if spec.Type == ebpf.LPMTrie {
						k = []byte{32, 0, 0, 0, 10, 0, byte(i), 0}
					}
					if (spec.Type == ebpf.Array || spec.Type == ebpf.PerCPUArray) && i >= int(spec.MaxEntries) {
						break
					}
					v := make([]byte, spec.ValueSize)
					v[0] = byte(i + seed)
					var val any = v
					if spec.Type == ebpf.PerCPUHash || spec.Type == ebpf.PerCPUArray {
						vs := make([][]byte, ncpu)
						for c := range vs {
							vs[c] = bytes.Repeat([]byte{byte(c + i + seed)}, int(spec.ValueSize))
						}
						val = vs
					}
					if err := m.Put(k, val); err != nil {
						t.Fatalf("put %d: %v", i, err)
					}
				}
			}
			d, err := bpf.MapKernelInfo(m)
			if err != nil {
				t.Fatal(err)
			}
			fd, err := openMapFD(d.ID)
			if err != nil {
				t.Fatal(err)
			}
			snap := &mapSnap{fd: fd, d: d, id: d.ID, keySize: int(d.KeySize), valueSize: int(d.ValueSize), ncpu: 1}
			if bpf.IsPerCPU(d.Type) {
				snap.ncpu = ncpu
			}
			defer snap.closeMap()
			for round, n := range []int{0, 5, int(spec.MaxEntries)} {
				fill(n, round)
				want, err := readEntries(m, math.MaxInt)
				if err != nil {
					t.Fatalf("readEntries: %v", err)
				}
				got, err := snap.readAll()
				if err != nil {
					t.Fatalf("readAll: %v", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("round %d (%d entries): readAll %d entries, readEntries %d; they differ", round, n, len(got), len(want))
				}
			}
		})
	}
}
