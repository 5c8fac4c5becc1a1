// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"github.com/bpfsh/bpfsh/bpf"
	"github.com/cilium/ebpf"
)

// StatNames names the per-CPU counters of the stats map by index
// (PROTOCOL.md "Counters"). The program's STAT_* indices follow this
// order.
var StatNames = []string{
	"msgs_client",     // 0: client message headers walked
	"msgs_server",     // 1: server message headers walked
	"redirect_client", // 2: client chunks redirected to the linked server
	"redirect_server", // 3: server chunks redirected to the linked client
	"link",            // 4: links the kernel made (an idle server taken)
	"unlink",          // 5: unlinks at ReadyForQuery 'I' (transaction mode)
	"wait",            // 6: clients marked WAITING: no idle server
	"pass_waiting",    // 7: client chunks passed while WAITING
	"pass_terminate",  // 8: client chunks with Terminate 'X' passed
	"pass_malformed",  // 9: chunks passed: a malformed length, the stream lost, a bad message type
	"pass_bound",      // 10: chunks passed: more messages than one walk takes
	"pass_server",     // 11: server chunks passed: no linked client
	"pass_unknown",    // 12: chunks of sockets not in conns
	"redirect_fail",   // 13: redirects refused (peer gone from its sockhash): passed
	"idle_stale",      // 14: idle-stack entries skipped: no longer idle servers
	"event_lost",      // 15: events dropped: the ring buffer was full
	"pass_passing",    // 16: chunks passed on a connection already passing
	"walk_chunks",     // 17: tc_pg_walk: chunks walked
	"walk_malformed",  // 18: tc_pg_walk: chunks reported malformed
	"keep_open",       // 19: ReadyForQuery 'I' that kept the link: client mid-batch or requests outstanding
	"held_cancel",     // 20: unlinks that held the server back: a cancel request for it in flight
}

// StatSlots is the stats map's size (PROXY_STAT_MAX): room for counters
// appended later without changing the map.
const StatSlots = 32

// Indices of the counters.
const (
	StatMsgsClient = iota
	StatMsgsServer
	StatRedirectClient
	StatRedirectServer
	StatLink
	StatUnlink
	StatWait
	StatPassWaiting
	StatPassTerminate
	StatPassMalformed
	StatPassBound
	StatPassServer
	StatPassUnknown
	StatRedirectFail
	StatIdleStale
	StatEventLost
	StatPassPassing
	StatWalkChunks
	StatWalkMalformed
	StatKeepOpen
	StatHeldCancel
)

// Stat is one counter summed over the CPUs.
type Stat = bpf.Counter

// ReadStats sums the per-CPU counters of a proxy stats map (pinned as
// <pin-root>/NAME/stats).
func ReadStats(stats *ebpf.Map) ([]Stat, error) {
	return bpf.SumCounters(stats, StatNames, "proxy stats")
}
