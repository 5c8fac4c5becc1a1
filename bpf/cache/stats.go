// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// StatNames names the per-CPU counters of the stats map by index
// (PROTOCOL.md "Counters"). The program's CACHE_STAT_* indices follow this
// order.
var StatNames = []string{
	"get",          // 0: UDP get requests with a good frame header
	"hit",          // 1: gets answered with XDP_TX
	"miss",         // 2: gets of a key not cached (passed)
	"fill",         // 3: replies copied into the cache
	"fill_stale",   // 4: replies refused: a write or flush_all after the miss
	"fill_no_miss", // 5: replies that answer no recorded miss
	"fill_skip",    // 6: replies to a miss that are not one cacheable VALUE
	"fill_error",   // 7: cache updates that failed (map full)
	"invalidate",   // 8: write commands that invalidated a key
	"flush",        // 9: flush_all commands
	"pass_other",   // 10: packets not to the port, not IPv4, fragments
	"pass_frame",   // 11: UDP requests with a short or multi-datagram frame header
	"pass_cmd",     // 12: commands left to the server
	"pass_key",     // 13: keys empty, too long or with other bytes
	"pass_room",    // 14: hits passed on: the frame could not grow
	// Appended with multi-key gets, invalidation at the acknowledgement
	// and the RESP path (the order above stays).
	"get_multi",       // 15: gets of more than one key (also counted in get)
	"pass_many",       // 16: gets of more than 8 keys or over 512 bytes
	"ack",             // 17: replies that invalidated their connection's written keys again
	"ack_flush",       // 18: replies that flushed: flush_all or over 4 writes were pending
	"drop_race",       // 19: multi-key hits dropped: an entry changed while the reply was built
	"resp_get",        // 20: RESP GET requests
	"resp_hit",        // 21: RESP GETs answered with XDP_TX
	"resp_miss",       // 22: RESP GETs of a key not cached
	"resp_fill",       // 23: RESP bulk replies copied into resp_cache
	"resp_fill_stale", // 24: RESP fills refused: a write after the miss
	"resp_fill_skip",  // 25: RESP replies to a miss that are not one cacheable bulk string
	"resp_invalidate", // 26: RESP writes that invalidated a key
	"resp_flush",      // 27: RESP commands that flushed resp_cache
	"resp_pass",       // 28: RESP segments left alone (reads, continuations, malformed)
}

// StatSlots is the stats map's size (CACHE_STAT_MAX): room for counters
// appended later without changing the map.
const StatSlots = 32

// Indices of the counters, as the tests and the shell name them.
const (
	statGet = iota
	statHit
	statMiss
	statFill
	statFillStale
	statFillNoMiss
	statFillSkip
	statFillError
	statInvalidate
	statFlush
	statPassOther
	statPassFrame
	statPassCmd
	statPassKey
	statPassRoom
	statGetMulti
	statPassMany
	statAck
	statAckFlush
	statDropRace
	statRESPGet
	statRESPHit
	statRESPMiss
	statRESPFill
	statRESPFillStale
	statRESPFillSkip
	statRESPInvalidate
	statRESPFlush
	statRESPPass
)

// Stat is one counter summed over the CPUs.
type Stat = bpf.Counter

// ReadStats sums the per-CPU counters of a cache stats map (pinned as
// <pin-root>/NAME/stats).
func ReadStats(stats *ebpf.Map) ([]Stat, error) {
	return bpf.SumCounters(stats, StatNames, "cache stats")
}
