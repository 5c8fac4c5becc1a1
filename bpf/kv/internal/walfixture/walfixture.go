// SPDX-License-Identifier: Apache-2.0

// Package walfixture is a stand-in for kv's commit path in the WAL tests:
// the maps store, meta and log laid out as bpf/kv/PROTOCOL.md says, and a
// SYSCALL program that commits a write set handed to it in its ctx.
package walfixture

//go:generate go tool bpf2go -cc clang -target bpfel Walfixture walfixture.bpf.c -- -I../../../include -O2 -g -Wall -fno-builtin

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
)

// Commit runs the commit program with rec, a struct kv_log_record as the
// kernel lays it out, and returns the program's status (0 OK, 4
// BAD_REQUEST, 7 LOG_FULL, 9 STORE_FULL) and the seq it took.
func Commit(prog *ebpf.Program, rec []byte) (status uint32, seq uint64, err error) {
	out := make([]byte, len(rec))
	ret, err := prog.Run(&ebpf.RunOptions{Context: rec, ContextOut: out})
	if err != nil {
		return 0, 0, fmt.Errorf("run commit: %w", err)
	}
	return ret, binary.NativeEndian.Uint64(out), nil
}
