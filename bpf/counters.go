// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Counter is one counter of a program's per-CPU counters (a per-CPU
// array of __u64, one slot a counter), summed over the CPUs.
type Counter struct {
	Index int
	Name  string
	Value uint64
}

// SumCounters reads counter i, named names[i], of m, a per-CPU array of
// __u64, summed over the CPUs. what names the map in errors ("cache
// stats").
func SumCounters(m *ebpf.Map, names []string, what string) ([]Counter, error) {
	out := make([]Counter, len(names))
	for i, name := range names {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("read %s[%d] (%s): %w", what, i, name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[i] = Counter{Index: i, Name: name, Value: sum}
	}
	return out, nil
}
