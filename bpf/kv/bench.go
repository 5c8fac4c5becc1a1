// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/testrun"
)

// The bench
//
// One run measures kv three ways and redis once:
//
//  1. kv live: a private kv (LoadPrivate: its own empty store, never the
//     user's) is served on a veth pair (Serve) and the load generator
//     drives it from inside the namespace with the mix asked for.
//  2. redis: redis-server on loopback, driven by redis-benchmark with the
//     same clients, keys and value size, GET and SET runs sized to take
//     about as long as kv's run; the mix's rate is computed from the two.
//  3. test-run: xdp_kv run with BPF_PROG_TEST_RUN on single GET and SET
//     frames, the kernel's own time per run (what the program costs,
//     without any network).
//
// A WAL writer drains kv's log throughout, into a WAL on tmpfs when
// there is one (/dev/shm): redis runs without persistence, so kv's log
// reaches memory only too. Without a writer SETs answer LOG_FULL once
// the 4 MiB ring holds about 450 commits.

// BenchOptions configures a bench run. Zero fields take the defaults.
type BenchOptions struct {
	Clients   int // concurrent clients on each side (default 8)
	Keys      int // distinct keys (default 10000)
	ValueSize int // bytes per value (default 32)
	// GetWeight and SetWeight are the mix: GetWeight GETs for every
	// SetWeight SETs (default 9:1).
	GetWeight, SetWeight int
	Duration             time.Duration // kv's load run (default 5s, at most 10m); redis's runs are sized to about as long
	Port                 uint16        // kv's UDP port (default 6390)
	NoRedis              bool          // skip redis
	TestRuns             int           // test runs per op for the ns figures (default 2000)
}

// MaxLiveValue is the largest value the bench accepts with its 16-byte
// keys. On veth, xdp_kv sees each request in a buffer that ends at the
// next 64-byte boundary past the frame (veth copies socket-made frames
// into a page-pool buffer that tight), so a GET reply may grow its
// request by less than 64 bytes: a 78-byte GET frame (16-byte key) can
// take a value of up to 50 bytes. Longer GET replies are dropped
// (XDP_DROP, counted in "drop"). Values up to MaxValue work through
// test-run and on drivers that give XDP whole pages.
const MaxLiveValue = 50

func (o *BenchOptions) defaults() error {
	if o.Clients == 0 {
		o.Clients = 8
	}
	if o.Keys == 0 {
		o.Keys = 10000
	}
	if o.ValueSize == 0 {
		o.ValueSize = 32
	}
	if o.GetWeight == 0 && o.SetWeight == 0 {
		o.GetWeight, o.SetWeight = 9, 1
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Port == 0 {
		o.Port = Port
	}
	if o.TestRuns == 0 {
		o.TestRuns = 2000
	}
	switch {
	case o.Clients < 1 || o.Clients > 1024:
		return fmt.Errorf("kv bench: clients %d; 1 to 1024", o.Clients)
	case o.Keys < 1 || o.Keys > 60000:
		return fmt.Errorf("kv bench: keys %d; 1 to 60000 (the store holds 65536)", o.Keys)
	case o.ValueSize < 1 || o.ValueSize > MaxLiveValue:
		return fmt.Errorf("kv bench: value %d bytes; 1 to %d: over veth a GET reply can only grow its 78-byte request frame to the next 64-byte boundary, so longer GET replies are dropped", o.ValueSize, MaxLiveValue)
	case o.GetWeight < 0 || o.SetWeight < 0:
		return fmt.Errorf("kv bench: mix %d:%d; weights are 0 or more, not both 0", o.GetWeight, o.SetWeight)
	case o.Duration < 100*time.Millisecond || o.Duration > 10*time.Minute:
		return fmt.Errorf("kv bench: duration %s; 100ms to 10m", o.Duration)
	case o.TestRuns < 1 || o.TestRuns > 1000000:
		return fmt.Errorf("kv bench: %d test runs; 1 to 1000000", o.TestRuns)
	}
	return nil
}

// BenchResult is what a bench run measured.
type BenchResult struct {
	Options BenchOptions `json:"-"`
	// Namespace and Addr are where kv was served.
	Namespace string `json:"namespace"`
	Addr      string `json:"addr"`
	// KV is the load generator's run; KVDonePerSec counts only requests
	// done (OK, or NOT_FOUND for a GET), not LOG_FULL or BUSY.
	KV           *LoadResult `json:"kv"`
	KVDonePerSec float64     `json:"kv_done_per_sec"`
	// KVCounters are xdp_kv's counters that moved during the run.
	KVCounters map[string]uint64 `json:"kv_counters"`
	WAL        WriterStats       `json:"wal"`
	WALPath    string            `json:"wal_path"`
	// Redis is nil when it was skipped; RedisSkipped says why.
	Redis        *RedisResult `json:"redis,omitempty"`
	RedisSkipped string       `json:"redis_skipped,omitempty"`
	// Ratio is kv's done/s over redis's mix ops/s (0 without redis).
	Ratio float64 `json:"ratio,omitempty"`
	// TestRun is the kernel's time per GET and per SET through test-run.
	TestRun TestRunResult `json:"test_run"`
}

// RedisResult is the redis side of the bench.
type RedisResult struct {
	Version      string         `json:"version"`
	Port         int            `json:"port"`
	Get          *RedisOpResult `json:"get,omitempty"`
	Set          *RedisOpResult `json:"set,omitempty"`
	MixOpsPerSec float64        `json:"mix_ops_per_sec"`
}

// TestRunResult is the test-run timing of single requests.
type TestRunResult struct {
	GetNs   float64 `json:"get_ns"` // kernel ns per GET of a present key
	SetNs   float64 `json:"set_ns"` // kernel ns per SET replacing a key (a commit)
	GetRuns int     `json:"get_runs"`
	SetRuns int     `json:"set_runs"`
	// SetLogFull counts SETs that found the log full (they would time
	// a failed commit); the batches wait for the WAL writer so it stays 0.
	SetLogFull uint64 `json:"set_log_full"`
}

// Bench runs kv's live load, the test-run timing and (unless NoRedis)
// redis's load. It fails when any of them cannot be measured, redis
// missing included: the comparison asked for cannot be made. Everything
// it made (kv, WAL, namespace, veth, redis) is gone when it returns.
func Bench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	res := &BenchResult{Options: o}
	if !o.NoRedis {
		// Before anything is loaded: a missing redis is known at once.
		if err := RedisMissing(); err != nil {
			return nil, fmt.Errorf("kv bench: %w; or bench kv alone (no redis)", err)
		}
	}

	p, err := ServePrivate(o.Port, "bench")
	if err != nil {
		return nil, fmt.Errorf("kv bench: %w", err)
	}
	defer p.Close()
	h, w, srv := p.H, p.Writer, p.Server
	res.WALPath = p.WALPath
	res.Namespace, res.Addr = srv.Namespace, srv.Addr().String()

	before, err := h.ReadStats()
	if err != nil {
		return nil, fmt.Errorf("kv bench: %w", err)
	}
	res.KV, err = Load(ctx, LoadOptions{
		Dial: srv.DialUDP, Clients: o.Clients, Keys: o.Keys, ValueSize: o.ValueSize,
		GetWeight: o.GetWeight, SetWeight: o.SetWeight, Duration: o.Duration,
		Timeout: 500 * time.Millisecond, Retry: true, Preload: true,
	})
	if err != nil {
		return nil, fmt.Errorf("kv bench: %w", err)
	}
	after, err := h.ReadStats()
	if err != nil {
		return nil, fmt.Errorf("kv bench: %w", err)
	}
	res.KVCounters = map[string]uint64{}
	for i := range after {
		if d := after[i].Value - before[i].Value; d != 0 {
			res.KVCounters[after[i].Name] = d
		}
	}
	done := res.KV.Get.Statuses[StatusOK.String()] + res.KV.Get.Statuses[StatusNotFound.String()] + res.KV.Set.OK()
	res.KVDonePerSec = float64(done) / res.KV.Elapsed.Seconds()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if res.TestRun, err = timeTestRun(ctx, h, w, o); err != nil {
		return nil, fmt.Errorf("kv bench: %w", err)
	}
	res.WAL = w.Stats()

	if !o.NoRedis {
		if res.Redis, err = benchRedis(ctx, o); err != nil {
			return nil, fmt.Errorf("kv bench: %w", err)
		}
		if res.Redis.MixOpsPerSec > 0 {
			res.Ratio = res.KVDonePerSec / res.Redis.MixOpsPerSec
		}
	} else {
		res.RedisSkipped = "not asked for"
	}
	return res, nil
}

// tmpfsDir is /dev/shm when it is a writable directory, else the
// default temporary directory.
func tmpfsDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".bpfsh-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// timeTestRun times GETs and SETs through test-run, in batches of 200
// with the WAL writer synced between them so that every SET commits.
func timeTestRun(ctx context.Context, h *Handle, w *Writer, o BenchOptions) (TestRunResult, error) {
	var res TestRunResult
	c := NewClient(h.Prog)
	key := Key(0)
	value := valueFor(0, o.ValueSize)
	if r, err := c.Set(0, key, value); err != nil || r.Status() != StatusOK {
		return res, fmt.Errorf("test-run SET %s: %v %v", key, err, r)
	}
	logFull := func() (uint64, error) {
		st, err := h.ReadStats()
		if err != nil {
			return 0, err
		}
		return st[StatStatusBase+int(StatusLogFull)].Value, nil
	}
	lf0, err := logFull()
	if err != nil {
		return res, err
	}
	timeOp := func(m *Message) (float64, int, error) {
		frame := c.Addr.Frame(m.Marshal())
		var total float64
		runs, batches := 0, 0
		for runs < o.TestRuns {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
			n := min(200, o.TestRuns-runs)
			out, err := testrun.Run(testrun.Options{Program: h.Prog, Data: frame, Repeat: n, NoTrace: true, NoMaps: true})
			if err != nil {
				return 0, 0, fmt.Errorf("test-run %s: %w", m.Op, err)
			}
			if out.Timing == nil {
				return 0, 0, fmt.Errorf("test-run %s: no timing", m.Op)
			}
			total += float64(out.Timing.PerRun().Nanoseconds()) * float64(n)
			runs += n
			batches++
			if m.Op == OpSet {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := w.Sync(sctx)
				cancel()
				if err != nil {
					return 0, 0, fmt.Errorf("test-run SET: WAL writer: %w", err)
				}
			}
		}
		return total / float64(runs), runs, nil
	}
	if res.GetNs, res.GetRuns, err = timeOp(&Message{Op: OpGet, ReqID: 1, Key: key}); err != nil {
		return res, err
	}
	if res.SetNs, res.SetRuns, err = timeOp(&Message{Op: OpSet, ReqID: 1, Key: key, Value: value}); err != nil {
		return res, err
	}
	lf1, err := logFull()
	if err != nil {
		return res, err
	}
	res.SetLogFull = lf1 - lf0
	return res, nil
}

// benchRedis starts redis, preloads the keys, sizes each redis-benchmark
// run from a short calibration run so that it lasts about the GET or SET
// share of kv's duration, runs it, and stops redis.
func benchRedis(ctx context.Context, o BenchOptions) (res *RedisResult, err error) {
	r, err := StartRedis(ctx, RedisOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := r.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	res = &RedisResult{Version: r.Version, Port: r.Port}
	if err := r.Preload(o.Keys, o.ValueSize); err != nil {
		return nil, err
	}
	total := float64(o.GetWeight + o.SetWeight)
	var inv float64
	for _, t := range []struct {
		test   string
		weight int
		dst    **RedisOpResult
	}{{"get", o.GetWeight, &res.Get}, {"set", o.SetWeight, &res.Set}} {
		if t.weight == 0 {
			continue
		}
		bo := RedisBenchOptions{Test: t.test, Requests: 10000, Clients: o.Clients, Keys: o.Keys, ValueSize: o.ValueSize}
		cal, err := r.Benchmark(ctx, bo)
		if err != nil {
			return nil, err
		}
		share := float64(t.weight) / total
		bo.Requests = int(min(max(cal.OpsPerSec*o.Duration.Seconds()*share, 10000), 50e6))
		op, err := r.Benchmark(ctx, bo)
		if err != nil {
			return nil, err
		}
		*t.dst = &op
		if op.OpsPerSec <= 0 {
			return nil, fmt.Errorf("redis-benchmark %s reported %g requests per second", strings.ToUpper(t.test), op.OpsPerSec)
		}
		inv += share / op.OpsPerSec
	}
	if inv > 0 {
		res.MixOpsPerSec = 1 / inv
	}
	return res, nil
}
