// SPDX-License-Identifier: Apache-2.0

// Command proxy benches PostgreSQL directly, through PgBouncer and
// through bpfsh's proxy, as `bpfsh -c 'proxy bench ...'` does: a
// throwaway PostgreSQL (Debian's) on a free loopback port, pgbench -i -s
// SCALE, then pgbench -c CLIENTS -j JOBS -T DURATION -M simple (TPC-B-like
// and select-only) on each leg in turn. It prints TPS, average and p99
// latency, the machine's CPU time (from /proc/stat, softirq included) and
// per transaction, each process's CPU time, and bpfsh's figures against
// PgBouncer's; everything it started is stopped and removed. It runs with
// a temporary pin root and state directory, so it touches nothing of the
// user's.
//
// As root, with PostgreSQL and PgBouncer from Debian (apt-get install -y
// postgresql pgbouncer):
//
//	sudo go run ./bench/proxy [-clients 16] [-jobs 2] [-for 30s] [-scale 10] [-pool 20] [-select-only] [-json]
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
	clients := flag.Int("clients", 16, "pgbench clients (-c)")
	jobs := flag.Int("jobs", 2, "pgbench threads (-j)")
	dur := flag.String("for", "30s", "how long each pgbench run lasts (-T, whole seconds)")
	scale := flag.Int("scale", 10, "pgbench scale (-i -s)")
	pool := flag.Int("pool", 20, "server connections of each proxy")
	selectOnly := flag.Bool("select-only", false, "run only the select-only script (-S)")
	jsonOut := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()
	line := fmt.Sprintf("proxy bench clients %d jobs %d for %s scale %d pool %d", *clients, *jobs, *dur, *scale, *pool)
	if *selectOnly {
		line += " select-only"
	}
	os.Exit(benchrun.RunAsRoot("proxy", "PostgreSQL runs as the postgres user; bpfsh's proxy loads BPF programs", line, *jsonOut))
}
