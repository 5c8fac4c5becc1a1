// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bpfsh/bpfsh/bpf/internal/cpustat"
)

// The bench
//
// One run measures memcached alone and memcached behind the cache, on the
// same veth pair, the same keys and the same load:
//
//  1. StartLive: namespace, veth pair, memcached in it, XDP_PASS on the
//     client's end (in both phases, so that only the cache differs);
//  2. preload every key over TCP;
//  3. "memcached": the load with nothing attached on memcached's end;
//  4. "cache": xdp_cache_rx and tc_cache_fill attached (an empty cache:
//     the first get of each key misses and fills), the same load.
//
// Each phase reads the cache's counters (hit rate = hit / get) and the
// CPU time of the whole machine from /proc/stat (user, system, softirq:
// XDP runs in softirq, on the CPU that handles the veth's NAPI), of the
// bench's own process (the load generator) and of memcached.

// BenchOptions configures a bench run. Zero fields take the defaults.
type BenchOptions struct {
	Clients   int     // concurrent clients (default 8)
	Depth     int     // gets in flight per client (default DefaultDepth)
	Keys      int     // distinct keys (default 10000)
	ValueSize int     // bytes per value (default 32: hits fit veth's tailroom, see live_room.go)
	GetWeight int     // GETs per SetWeight SETs (default 30:1, as BMC)
	SetWeight int     //
	Zipf      float64 // key skew (default 0.99, as BMC; 0 would mean the default, use Uniform)
	Uniform   bool    // uniform keys instead of Zipf
	Duration  time.Duration
	Threads   int // memcached's -t (default 2)
}

func (o *BenchOptions) defaults() error {
	if o.Clients == 0 {
		o.Clients = 8
	}
	if o.Depth == 0 {
		o.Depth = DefaultDepth
	}
	if o.Keys == 0 {
		o.Keys = 10000
	}
	if o.ValueSize == 0 {
		o.ValueSize = 32
	}
	if o.GetWeight == 0 && o.SetWeight == 0 {
		o.GetWeight, o.SetWeight = 30, 1
	}
	if o.Zipf == 0 && !o.Uniform {
		o.Zipf = 0.99
	}
	if o.Uniform {
		o.Zipf = 0
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Threads == 0 {
		o.Threads = 2
	}
	switch {
	case o.Clients < 1 || o.Clients > 256:
		return fmt.Errorf("cache bench: clients %d; 1 to 256", o.Clients)
	case o.Depth < 1 || o.Depth > MaxDepth:
		return fmt.Errorf("cache bench: depth %d; 1 to %d", o.Depth, MaxDepth)
	case o.Keys < 1 || o.Keys > 60000:
		return fmt.Errorf("cache bench: keys %d; 1 to 60000 (the cache holds 65536)", o.Keys)
	case o.ValueSize < MinValueSize || o.ValueSize > MaxValue:
		return fmt.Errorf("cache bench: value %d bytes; %d to %d", o.ValueSize, MinValueSize, MaxValue)
	case o.GetWeight < 0 || o.SetWeight < 0 || o.GetWeight+o.SetWeight == 0:
		return fmt.Errorf("cache bench: mix %d:%d; weights are 0 or more, not both 0", o.GetWeight, o.SetWeight)
	case o.Zipf < 0 || o.Zipf == 1 || o.Zipf > 10:
		return fmt.Errorf("cache bench: zipf %g; above 0 and up to 10, except 1", o.Zipf)
	case o.Duration < 100*time.Millisecond || o.Duration > 10*time.Minute:
		return fmt.Errorf("cache bench: duration %s; 100ms to 10m", o.Duration)
	case o.Threads < 1 || o.Threads > 64:
		return fmt.Errorf("cache bench: memcached threads %d; 1 to 64", o.Threads)
	}
	return nil
}

// CPU is the CPU time spent during a phase, in CPU-seconds: the
// machine's from /proc/stat (user, system, softirq, irq, idle, busy,
// capacity, wall) and the processes'.
type CPU struct {
	cpustat.Usage
	// LoadGen is the bench process's own time (the load generator),
	// Memcached memcached's (user + system, from /proc/PID/stat).
	LoadGen   float64 `json:"loadgen"`
	Memcached float64 `json:"memcached"`
	// LoadGenUser is the load generator's user time (Go: building and
	// checking requests), LoadGenSystem its kernel time: on veth the
	// kernel's path of a get (veth, the XDP cache, XDP_TX, the reply's
	// way up to the socket) mostly runs in softirq on the sending CPU,
	// within the sender's system calls, and is counted there.
	LoadGenUser   float64 `json:"loadgen_user"`
	LoadGenSystem float64 `json:"loadgen_system"`
}

// BenchPhase is one phase's figures.
type BenchPhase struct {
	Name string      `json:"name"`
	Load *LoadResult `json:"load"`
	// Counters are the cache's counters that moved; HitRate is hit/get.
	Counters map[string]uint64 `json:"counters,omitempty"`
	HitRate  float64           `json:"hit_rate"`
	CPU      CPU               `json:"cpu"`
	// MemcachedPer100k is memcached's own CPU-seconds per 100k gets: the
	// figure that does not depend on where the client runs.
	MemcachedPer100k float64 `json:"memcached_cpu_s_per_100k_gets"`
}

// BenchResult is what a bench run measured.
type BenchResult struct {
	Options   BenchOptions `json:"-"`
	Namespace string       `json:"namespace"`
	Addr      string       `json:"addr"`
	Version   string       `json:"memcached_version"`
	// Alone is memcached alone, Cached memcached behind the cache.
	Alone  BenchPhase `json:"memcached"`
	Cached BenchPhase `json:"cache"`
	// Throughput is Cached's ops/s over Alone's; GetP50 and GetP99 the
	// GET latencies' ratios (cache / alone); HitP50 the cache's hits'
	// p50 over memcached's GET p50 (what "-84% GET latency on hits"
	// compares).
	Throughput float64 `json:"throughput_ratio"`
	GetP50     float64 `json:"get_p50_ratio"`
	GetP99     float64 `json:"get_p99_ratio"`
	HitP50     float64 `json:"hit_p50_ratio"`
	HitP99     float64 `json:"hit_p99_ratio"`
}

// Bench runs both phases. Everything it made (namespace, veth, memcached,
// the private cache) is gone when it returns.
func Bench(ctx context.Context, o BenchOptions) (res *BenchResult, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	ks, err := NewKeyspace(o.Keys, o.ValueSize)
	if err != nil {
		return nil, err
	}
	l, err := StartLive(ctx, LiveOptions{Memcached: MemcachedOptions{Threads: o.Threads}})
	if err != nil {
		return nil, fmt.Errorf("cache bench: %w", err)
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("cache bench: cleaning up: %w", cerr)
		}
	}()
	res = &BenchResult{Options: o, Namespace: l.Pair.Namespace, Addr: l.Addr().String(), Version: l.Memcached.Version}
	if err := ks.Preload(ctx, l.Addr(), o.Clients); err != nil {
		return nil, fmt.Errorf("cache bench: %w", err)
	}
	lo := LoadOptions{Addr: l.Addr(), Keys: ks, Clients: o.Clients, Depth: o.Depth, GetWeight: o.GetWeight, SetWeight: o.SetWeight,
		Zipf: o.Zipf, Duration: o.Duration}
	if err := res.phase(ctx, l, "memcached", lo, &res.Alone); err != nil {
		return nil, err
	}
	if err := l.Attach(); err != nil {
		return nil, fmt.Errorf("cache bench: %w", err)
	}
	if err := res.phase(ctx, l, "memcached + cache", lo, &res.Cached); err != nil {
		return nil, err
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	a, c := res.Alone.Load, res.Cached.Load
	res.Throughput = ratio(c.OpsPerSec, a.OpsPerSec)
	res.GetP50 = ratio(float64(c.Get.P50), float64(a.Get.P50))
	res.GetP99 = ratio(float64(c.Get.P99), float64(a.Get.P99))
	res.HitP50 = ratio(float64(c.Hit.P50), float64(a.Get.P50))
	res.HitP99 = ratio(float64(c.Hit.P99), float64(a.Get.P99))
	return res, nil
}

// phase runs one load and reads the counters and CPU times around it.
func (r *BenchResult) phase(ctx context.Context, l *Live, name string, lo LoadOptions, out *BenchPhase) error {
	out.Name = name
	before, err := l.Stats()
	if err != nil {
		return fmt.Errorf("cache bench: %w", err)
	}
	cpu0, err := readCPU(l.Memcached.Pid)
	if err != nil {
		return fmt.Errorf("cache bench: %w", err)
	}
	if out.Load, err = Load(ctx, lo); err != nil {
		return fmt.Errorf("cache bench: %s: %w", name, err)
	}
	cpu1, err := readCPU(l.Memcached.Pid)
	if err != nil {
		return fmt.Errorf("cache bench: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	out.CPU = cpu1.since(cpu0)
	if g := out.Load.Get.Count; g > 0 {
		out.MemcachedPer100k = out.CPU.Memcached * 100000 / float64(g)
	}
	after, err := l.Stats()
	if err != nil {
		return fmt.Errorf("cache bench: %w", err)
	}
	out.Counters = map[string]uint64{}
	for i := range after {
		if d := after[i].Value - before[i].Value; d != 0 {
			out.Counters[after[i].Name] = d
		}
	}
	if g := out.Counters["get"]; g > 0 {
		out.HitRate = float64(out.Counters["hit"]) / float64(g)
	}
	return nil
}

// cpuSample is the machine's counters and two processes' times.
type cpuSample struct {
	machine         cpustat.Sample
	self, memcached cpustat.Times
}

func readCPU(memcachedPid int) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.machine, err = cpustat.Read(); err != nil {
		return s, err
	}
	if s.self, err = cpustat.Process(os.Getpid()); err != nil {
		return s, err
	}
	if s.memcached, err = cpustat.Process(memcachedPid); err != nil {
		return s, err
	}
	return s, nil
}

func (s cpuSample) since(o cpuSample) CPU {
	c := CPU{
		Usage:       s.machine.Since(o.machine),
		LoadGen:     cpustat.Seconds(s.self.Own(), o.self.Own()),
		LoadGenUser: cpustat.Seconds(s.self.User, o.self.User),
		Memcached:   cpustat.Seconds(s.memcached.Own(), o.memcached.Own()),
	}
	c.LoadGenSystem = c.LoadGen - c.LoadGenUser
	return c
}
