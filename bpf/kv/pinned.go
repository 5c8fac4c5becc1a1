// SPDX-License-Identifier: Apache-2.0

package kv

import "github.com/bpfsh/bpfsh/bpf"

// PinnedPort is the UDP port (kv_port) of the kv program pinned in dir,
// read from its pinned rodata map by the map's BTF, so that requests
// reach a program loaded with "load kv set kv_port=7000". Port when dir
// has no rodata map (an object pinned by another tool).
func PinnedPort(dir string) (uint16, error) {
	return bpf.PinnedConstU16(dir, VarPort, Port)
}
