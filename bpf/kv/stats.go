// SPDX-License-Identifier: Apache-2.0

package kv

import "github.com/bpfsh/bpfsh/bpf"

// StatNames names the per-CPU counters of the stats map by index
// (PROTOCOL.md "Counters").
var StatNames = []string{
	"get", "set", "del", "begin", "commit", "abort", "scan", // 0-6: requests by op
	"unknown_op",                                                                                                    // 7
	"ok", "not_found", "conflict", "too_big", "bad_request", "no_txn", "txn_full", "log_full", "busy", "store_full", // 8-17: replies by status
	"commits",        // 18: COMMITs that succeeded
	"autocommits",    // 19: SETs and DELs without a transaction that changed the store
	"abort_conflict", // 20
	"abort_txn_full", // 21
	"abort_client",   // 22: ABORT requests
	"abort_expired",  // 23: idle transactions removed by their timer
	"pass",           // 24: packets that were not kv requests
	"drop",           // 25: replies that did not fit the frame
	"install_error",  // 26: map updates that failed after validation
}

// Stat indices used by the tests and the shell.
const (
	StatOpBase        = 0
	StatStatusBase    = 8
	StatCommits       = 18
	StatAutocommits   = 19
	StatAbortConflict = 20
	StatAbortTxnFull  = 21
	StatAbortClient   = 22
	StatAbortExpired  = 23
	StatPass          = 24
	StatDrop          = 25
	StatInstallError  = 26
)

// Stat is one counter summed over the CPUs.
type Stat = bpf.Counter

// ReadStats sums the per-CPU counters of the stats map.
func (h *Handle) ReadStats() ([]Stat, error) {
	return bpf.SumCounters(h.Stats, StatNames, "kv stats")
}
