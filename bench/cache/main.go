// SPDX-License-Identifier: Apache-2.0

// Command cache benches bpfsh's in-kernel memcached cache live, end to
// end, as `bpfsh -c 'cache bench ...'` does: memcached (Debian's) in a
// network namespace of its own behind a veth pair, driven by a Go load
// generator (UDP gets, TCP sets, Zipf keys, 30:1), first alone, then with
// xdp_cache_rx and tc_cache_fill attached on memcached's end. It prints
// ops/s, GET p50/p99 (hits apart), the hit rate, CPU time and the ratios,
// and removes everything it made (namespace, veth, memcached, the cache).
// It runs with a temporary pin root and state directory, so it touches
// nothing of the user's.
//
// As root, with memcached from Debian (apt-get install -y memcached):
//
//	sudo go run ./bench/cache [-clients 8] [-depth 16] [-keys 10000] [-value 32] [-mix 30:1] [-zipf 0.99] [-threads 2] [-for 5s] [-json]
//
// Benchmarks are not run in CI.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/bpfsh/bpfsh/bench/internal/benchrun"
	"github.com/bpfsh/bpfsh/bpf/cache"
)

func main() {
	clients := flag.Int("clients", 8, "concurrent clients")
	depth := flag.Int("depth", cache.DefaultDepth, "gets in flight per client (the same in both phases)")
	keys := flag.Int("keys", 10000, "distinct keys")
	value := flag.Int("value", 32, "value size in bytes (up to 42 always fits veth's tailroom: see 'help cache bench')")
	mix := flag.String("mix", "30:1", "GET:SET mix")
	zipf := flag.Float64("zipf", 0.99, "key skew (0: uniform keys)")
	threads := flag.Int("threads", 2, "memcached threads (-t)")
	dur := flag.String("for", "5s", "how long each phase runs")
	jsonOut := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()
	line := fmt.Sprintf("cache bench clients %d depth %d keys %d value %d mix %s threads %d for %s", *clients, *depth, *keys, *value, *mix, *threads, *dur)
	if *zipf == 0 {
		line += " uniform"
	} else {
		line += fmt.Sprintf(" zipf %g", *zipf)
	}
	os.Exit(benchrun.Run("cache", line, *jsonOut))
}
