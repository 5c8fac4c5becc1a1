// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/bpf/cache"
)

// cache bench: memcached alone and behind the cache, live, in one run
// (bpf/cache/bench.go).

// cacheBenchCommand is `cache bench`; the cache family lists it in its
// Subs.
func cacheBenchCommand() *Command {
	return &Command{
		Name:  "bench",
		Usage: "[clients N] [depth N] [keys N] [value BYTES] [mix GET:SET] [zipf S|uniform] [threads N] [for DURATION] | --redis [requests N] [clients N] [keys N] [value BYTES]",
		Short: "measure memcached alone and behind the cache, live: ops/s, GET p50/p99, hit rate, CPU, ratios",
		Long: "cache bench makes a network namespace and a veth pair, starts Debian's memcached (-U 11211 -t 2 -m 64) " +
			"in the namespace on the pair's inner end, and drives it from bpfsh's namespace with a Go load generator: " +
			"N clients, each with a UDP socket for gets (memcached's frame header) and a TCP connection for sets, keys " +
			"Zipf-distributed; each client keeps depth gets in flight on its socket (request ids match replies to gets, " +
			"each timed from its own send; sendmmsg/recvmmsg batches), the same in both phases. Depth 1 is one get at a " +
			"time (latency without queueing); deeper windows cost the client less per get and load the server more, " +
			"and a get's time then includes waiting behind the others of its window. It preloads the keys, runs the load against memcached alone, then " +
			"attaches a private cache (xdp_cache_rx in driver mode and tc_cache_fill on TC egress, on memcached's end; the " +
			"cache under the pin root is not touched) and runs the same load again. Every reply is checked: a get must " +
			"return the newest acknowledged version of its key or a newer one (stale counts the others). It shows ops/s, " +
			"GET p50/p99 (all gets, the cache's hits, memcached's replies: told apart by their TTL), the hit rate from the " +
			"cache's counters, CPU time (machine-wide user/system/softirq from /proc/stat; the load generator's; " +
			"memcached's) and the ratios. Then it removes everything. Defaults: clients 8, depth 16, keys 10000, value 32, mix 30:1, " +
			"zipf 0.99 (BMC's), threads 2, for 5s. On veth a hit can grow its request by only 0-63 bytes (see " +
			"bpf/cache/live_room.go): with these 16-byte keys values up to 42 bytes are always answered from the cache; " +
			"longer ones mostly pass to memcached (pass_room). memcached comes from Debian: apt-get install -y memcached. " +
			"With --redis it measures redis-server (Debian's, on a free loopback port) alone and then behind the live Redis " +
			"cache, driven both times by redis-benchmark -t get with the same settings (requests 200000, clients 8, keys 10000, " +
			"value 32 by default; the keys are preloaded and, before the second run, read once so that the cache holds them): " +
			"ops/s, GET p50/p99, redis-server's own CPU-seconds per 100k GETs (utime+stime of its process), the cache's counters, " +
			"and the ratios next to Huawei's +337% throughput and -84% GET latency.",
		Example: "cache bench clients 8 depth 16 keys 10000 value 32 mix 30:1 zipf 0.99 for 10s",
		Run:     runCacheBench,
	}
}

func runCacheBench(s *Session, args []string) (Result, error) {
	if slices.Contains(args, "--redis") {
		return runCacheBenchRedis(s, slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--redis" }))
	}
	var o cache.BenchOptions
	err := benchArgs(args, []string{"uniform"}, []string{"clients", "depth", "keys", "value", "mix", "zipf", "threads", "for"},
		"cache bench clients 8 keys 10000 value 32 mix 30:1 zipf 0.99 for 5s",
		"cache bench takes clients N, depth N, keys N, value BYTES, mix GET:SET, zipf S, uniform, threads N and for DURATION",
		func(w, v string) (err error) {
			switch w {
			case "uniform":
				o.Uniform = true
			case "clients":
				o.Clients, err = livePositive(w, v, 256)
			case "depth":
				o.Depth, err = livePositive(w, v, cache.MaxDepth)
			case "keys":
				o.Keys, err = livePositive(w, v, 60000)
			case "threads":
				o.Threads, err = livePositive(w, v, 64)
			case "value":
				n, perr := strconv.Atoi(v)
				if perr != nil || n < cache.MinValueSize || n > cache.MaxValue {
					err = Usagef("value %q: %d to %d bytes (the value carries a version; the cache holds up to %d)", v, cache.MinValueSize, cache.MaxValue, cache.MaxValue)
				}
				o.ValueSize = n
			case "mix":
				o.GetWeight, o.SetWeight, err = benchMix(v, "30:1, 9:1 or 1:0")
			case "zipf":
				z, perr := strconv.ParseFloat(v, 64)
				if perr != nil || z <= 0 || z == 1 || z > 10 {
					err = Usagef("zipf %q: a skew above 0 and up to 10, except 1 (BMC used 0.99); uniform for uniform keys", v)
				}
				o.Zipf = z
			case "for":
				o.Duration, err = benchFor(v)
			}
			return err
		})
	if err != nil {
		return nil, err
	}
	res, err := cache.Bench(s.Context(), o)
	if err != nil {
		return nil, benchFailed(s, "cache bench", err)
	}
	return cacheBenchTable(res), nil
}

// cacheBenchTable shows both phases, the ratios and where the CPU went;
// in JSON, the whole result.
func cacheBenchTable(r *cache.BenchResult) *Table {
	o := r.Options
	t := &Table{Columns: []string{"system", "ops/s", "get p50", "get p99", "hit p50", "hit rate", "cpu", "detail"}, JSON: r}
	for _, p := range []*cache.BenchPhase{&r.Alone, &r.Cached} {
		l := p.Load
		hitP50, hitRate := "", ""
		if l.Hit.Count > 0 {
			hitP50 = liveMicros(l.Hit.P50)
		}
		if p.Counters["get"] > 0 {
			hitRate = fmt.Sprintf("%.1f%%", 100*p.HitRate)
		}
		c := p.CPU
		t.Rows = append(t.Rows, []string{p.Name, liveRate(l.OpsPerSec), liveMicros(l.Get.P50), liveMicros(l.Get.P99), hitP50, hitRate,
			fmt.Sprintf("%.0f%%", 100*c.Busy/max(c.Capacity, 1e-9)),
			fmt.Sprintf("%d gets (%d hits p99 %s, %d by memcached p50 %s), %d sets p50 %s; stale %d, wrong %d, missing %d, timeouts %d, errors %d",
				l.Get.Count, l.Hit.Count, liveMicros(l.Hit.P99), l.Server.Count, liveMicros(l.Server.P50), l.Set.Count, liveMicros(l.Set.P50),
				l.Stale, l.Wrong, l.Missing, l.Timeouts, l.Errors)})
	}
	pct := func(ratio float64) string { return fmt.Sprintf("%+.0f%%", 100*(ratio-1)) }
	t.Rows = append(t.Rows, []string{"cache / memcached", fmt.Sprintf("%.2fx", r.Throughput), pct(r.GetP50), pct(r.GetP99), pct(r.HitP50), "", "",
		"ops/s ratio; GET latency change; hit p50 against memcached's GET p50 (Huawei reported +337% throughput, -84% GET latency)"})
	for _, p := range []*cache.BenchPhase{&r.Alone, &r.Cached} {
		c := p.CPU
		t.Rows = append(t.Rows, []string{"cpu: " + p.Name, "", "", "", "", "", fmt.Sprintf("%.2f of %.2f", c.Busy, c.Capacity),
			fmt.Sprintf("CPU-seconds: user %.2f, system %.2f, softirq %.2f (XDP runs there), irq %.2f, idle %.2f; load generator %.2f (user %.2f, kernel %.2f: on veth a get's whole kernel path, the cache's XDP included, runs in its sends), memcached %.2f (%.3f per 100k gets)",
				c.User, c.System, c.Softirq, c.Irq, c.Idle, c.LoadGen, c.LoadGenUser, c.LoadGenSystem, c.Memcached, p.MemcachedPer100k)})
	}
	var counters []string
	for _, name := range cache.StatNames {
		if n := r.Cached.Counters[name]; n != 0 {
			counters = append(counters, fmt.Sprintf("%s %d", name, n))
		}
	}
	t.Rows = append(t.Rows, []string{"setup", "", "", "", "", "", "", fmt.Sprintf("memcached %s on %s in %s (-t %d); %d clients with %d gets in flight each, %d keys, %d-byte values, mix %d:%d, %s, %s each; cache counters: %s",
		r.Version, r.Addr, r.Namespace, o.Threads, o.Clients, o.Depth, o.Keys, o.ValueSize, o.GetWeight, o.SetWeight, zipfText(o), o.Duration, liveOrNone(strings.Join(counters, ", ")))})
	return t
}

func zipfText(o cache.BenchOptions) string {
	if o.Zipf == 0 {
		return "uniform keys"
	}
	return fmt.Sprintf("zipf %g", o.Zipf)
}

func runCacheBenchRedis(s *Session, args []string) (Result, error) {
	var o cache.RedisBenchOptions
	err := benchArgs(args, nil, []string{"requests", "clients", "keys", "value"},
		"cache bench --redis requests 200000 clients 8 keys 10000 value 32",
		"cache bench --redis takes requests N, clients N, keys N and value BYTES",
		func(w, v string) (err error) {
			switch w {
			case "requests":
				o.Requests, err = livePositive(w, v, 100000000)
			case "clients":
				o.Clients, err = livePositive(w, v, 1000)
			case "keys":
				o.Keys, err = livePositive(w, v, 1000000)
			case "value":
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 || n > cache.RedisMaxValue {
					err = Usagef("value %q: 1 to %d bytes (the Redis cache holds values up to %d)", v, cache.RedisMaxValue, cache.RedisMaxValue)
				}
				o.ValueSize = n
			}
			return err
		})
	if err != nil {
		return nil, err
	}
	res, err := cache.RedisBench(s.Context(), o)
	if err != nil {
		return nil, benchFailed(s, "cache bench --redis", err)
	}
	return redisBenchTable(res), nil
}

// redisBenchTable shows both runs and the ratios; in JSON, the result.
func redisBenchTable(r *cache.RedisBenchResult) *Table {
	t := &Table{Columns: []string{"system", "ops/s", "get p50", "get p99", "cpu s/100k gets", "detail"}, JSON: r}
	for _, p := range []*cache.RedisBenchPhase{&r.Alone, &r.Cached} {
		detail := fmt.Sprintf("redis-server used %.2f CPU-seconds", p.ServerCPU)
		if p.Counters != nil {
			detail += fmt.Sprintf("; cache: %d hits, %d misses, %d fills, %d busy", p.Counters["hit"], p.Counters["miss"], p.Counters["fill"], p.Counters["get_busy"])
		}
		t.Rows = append(t.Rows, []string{p.Name, liveRate(p.OpsPerSec), liveMicros(p.P50), liveMicros(p.P99), fmt.Sprintf("%.3f", p.CPUPer100k), detail})
	}
	pct := func(ratio float64) string { return fmt.Sprintf("%+.0f%%", 100*(ratio-1)) }
	t.Rows = append(t.Rows, []string{"cache / alone", pct(r.Throughput), pct(r.P50), pct(r.P99), pct(r.CPU),
		fmt.Sprintf("Huawei reported %s throughput and %s GET latency", pct(cache.HuaweiThroughput), pct(cache.HuaweiLatency))})
	o := r.Options
	t.Rows = append(t.Rows, []string{"setup", "", "", "", "", fmt.Sprintf("redis-server %s on 127.0.0.1:%d; redis-benchmark -t get -n %d -c %d -r %d -d %d -P 1, the same in both runs",
		r.Version, r.Port, o.Requests, o.Clients, o.Keys, o.ValueSize)})
	return t
}
