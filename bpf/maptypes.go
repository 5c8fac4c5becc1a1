// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
)

// IsPerCPU reports whether maps of type t hold one value per possible CPU.
func IsPerCPU(t ebpf.MapType) bool {
	switch t {
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash, ebpf.PerCPUCGroupStorage:
		return true
	}
	return false
}

// IsQueueOrStack reports whether t is a map without keys whose values are
// pushed and popped (queue: first in, first out; stack: last in, first out).
func IsQueueOrStack(t ebpf.MapType) bool {
	return t == ebpf.Queue || t == ebpf.Stack
}

// IsRingBuf reports whether t is a ring buffer (kernel to user or user to
// kernel), which has neither keys nor values to look up.
func IsRingBuf(t ebpf.MapType) bool {
	return t == ebpf.RingBuf || t == ebpf.UserRingbuf
}

// mapFlagNames are the BPF_F_* map creation flags, by bit.
var mapFlagNames = []string{
	"no_prealloc", "no_common_lru", "numa_node", "rdonly", "wronly",
	"stack_build_id", "zero_seed", "rdonly_prog", "wronly_prog", "clone",
	"mmapable", "preserve_elems", "inner_map", "link", "path_fd",
	"vtype_btf_obj_fd", "token_fd", "segv_on_fault", "no_user_conv",
}

// MapFlagNames spells out the BPF_F_* bits set in flags, e.g.
// "no_prealloc,rdonly_prog"; unknown bits are shown as hex.
func MapFlagNames(flags uint32) string {
	var out []string
	for bit := range 32 {
		if flags&(1<<bit) == 0 {
			continue
		}
		if bit < len(mapFlagNames) {
			out = append(out, mapFlagNames[bit])
		} else {
			out = append(out, fmt.Sprintf("%#x", uint32(1)<<bit))
		}
	}
	return strings.Join(out, ",")
}
