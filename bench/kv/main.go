// SPDX-License-Identifier: Apache-2.0

// Command kv benches bpfsh's in-kernel key-value store live against
// redis-server, end to end, as `bpfsh -c 'kv bench ...'` does: a private
// kv (loaded from the object built into bpfsh, pinned nowhere) served by
// XDP on a veth pair into a namespace of its own, driven by a UDP load
// generator; redis-server on loopback driven by redis-benchmark with the
// same mix; test-run ns per GET and per SET. It prints both sides and the
// ratio, and removes everything it made (kv, namespace, veth, WAL, redis).
// It runs with a temporary pin root and state directory, so it touches
// nothing of the user's.
//
// As root, with redis from Debian (apt-get install -y redis-server):
//
//	sudo go run ./bench/kv [-clients 8] [-keys 10000] [-value 32] [-mix 9:1] [-for 5s] [-no-redis] [-json]
//
// Benchmarks are not run in CI.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/bpfsh/bpfsh/bench/internal/benchrun"
)

func main() {
	clients := flag.Int("clients", 8, "concurrent clients on each side")
	keys := flag.Int("keys", 10000, "distinct keys")
	value := flag.Int("value", 32, "value size in bytes (at most 50: see 'help kv serve')")
	mix := flag.String("mix", "9:1", "GET:SET mix")
	dur := flag.String("for", "5s", "how long kv's load runs (redis's runs are sized to about as long)")
	noRedis := flag.Bool("no-redis", false, "bench kv alone")
	jsonOut := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()
	line := fmt.Sprintf("kv bench clients %d keys %d value %d mix %s for %s", *clients, *keys, *value, *mix, *dur)
	if *noRedis {
		line += " no-redis"
	}
	os.Exit(benchrun.Run("kv", line, *jsonOut))
}
