// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
)

// The bench
//
// One run starts a throwaway PostgreSQL (pgcluster), makes the pgbench
// tables (pgbench -i -s Scale), and then measures the same pgbench load
// on three legs, one after the other:
//
//  1. "direct": pgbench against PostgreSQL itself (the floor);
//  2. "pgbouncer": through Debian's PgBouncer in transaction mode;
//  3. "bpfsh": through bpfsh's proxy in transaction mode.
//
// Each leg starts its proxy, runs the TPC-B-like script and the
// select-only one (-S) with the same clients, jobs and duration, and stops
// it. Each run reads the machine's CPU time from /proc/stat (user,
// system, softirq: the kernel data path's redirects run in softirq and
// within other processes' system calls, so the proxy's own CPU time
// understates it), and the CPU times of PostgreSQL (postmaster and
// backends), PgBouncer and bpfsh's own process. The figures that compare
// proxies are the latencies and the machine's CPU time per transaction:
// with pgbench on the same machine every leg keeps the CPUs busy, so busy
// time alone says little.

// BenchOptions configures a bench run; zero fields take the defaults.
type BenchOptions struct {
	Clients  int           // pgbench -c (default 16)
	Jobs     int           // pgbench -j (default 2)
	Duration time.Duration // pgbench -T per run (default 30s)
	Scale    int           // pgbench -i -s (default 10)
	// SelectOnly runs only the select-only script (-S); otherwise both
	// TPC-B (sort of) and select-only.
	SelectOnly bool
	// Pool is the server connections each proxy keeps (default 20,
	// PgBouncer's default_pool_size).
	Pool int
}

// Bench limits: what the command accepts.
const (
	MaxBenchClients = 1000
	MaxBenchScale   = 1000
	MaxBenchPool    = 200
)

func (o *BenchOptions) defaults() error {
	if o.Clients == 0 {
		o.Clients = 16
	}
	if o.Jobs == 0 {
		o.Jobs = min(2, o.Clients)
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.Scale == 0 {
		o.Scale = 10
	}
	if o.Pool == 0 {
		o.Pool = 20
	}
	switch {
	case o.Clients < 1 || o.Clients > MaxBenchClients:
		return fmt.Errorf("proxy bench: clients %d; 1 to %d", o.Clients, MaxBenchClients)
	case o.Jobs < 1 || o.Jobs > o.Clients:
		return fmt.Errorf("proxy bench: jobs %d; 1 to the clients (%d)", o.Jobs, o.Clients)
	case o.Duration < time.Second || o.Duration > time.Hour:
		return fmt.Errorf("proxy bench: duration %s; 1s to 1h (pgbench counts whole seconds)", o.Duration)
	case o.Scale < 1 || o.Scale > MaxBenchScale:
		return fmt.Errorf("proxy bench: scale %d; 1 to %d", o.Scale, MaxBenchScale)
	case o.Pool < 1 || o.Pool > MaxBenchPool:
		return fmt.Errorf("proxy bench: pool %d; 1 to %d", o.Pool, MaxBenchPool)
	}
	return nil
}

// Script names.
const (
	ScriptTPCB       = "tpcb-like"
	ScriptSelectOnly = "select-only"
)

// Leg names.
const (
	LegDirect    = "direct"
	LegPgBouncer = "pgbouncer"
	LegBpfsh     = "bpfsh"
)

// BenchRun is one pgbench run on one leg.
type BenchRun struct {
	Leg     string                   `json:"leg"`
	Script  string                   `json:"script"`
	Pgbench *pgcluster.PgbenchResult `json:"pgbench"`
	// CPU is the machine's and the processes' CPU time over the run
	// (procs: postgres, pgbouncer, bpfsh; pgbench's is Pgbench.ClientCPU).
	CPU pgcluster.CPU `json:"cpu"`
	// CPUPerTx is the machine's busy CPU time per transaction, in
	// microseconds (pgbench's own included: the same client on every
	// leg).
	CPUPerTx float64 `json:"cpu_per_tx_us"`
	// ProcsPerTx is the CPU time per transaction of the processes that
	// serve the load (PostgreSQL, the proxy, pgbench), in microseconds:
	// unlike CPUPerTx it leaves out whatever else runs on the machine,
	// and also the softirq time that is nobody's (with IRQ time
	// accounting, the in-kernel redirects' share).
	ProcsPerTx float64 `json:"procs_cpu_per_tx_us"`
	// ProxyCPU is the proxy process's CPU time (PgBouncer's, or bpfsh's
	// own process: its user-space front; the kernel's share shows in the
	// machine's figures only).
	ProxyCPU float64 `json:"proxy_cpu"`
}

// BenchRatio compares bpfsh with PgBouncer on one script: each figure is
// bpfsh's over PgBouncer's (below 1: bpfsh lower).
type BenchRatio struct {
	Script     string  `json:"script"`
	TPS        float64 `json:"tps"`
	LatencyAvg float64 `json:"latency_avg"`
	P99        float64 `json:"p99"`
	CPUPerTx   float64 `json:"cpu_per_tx"`
	ProcsPerTx float64 `json:"procs_cpu_per_tx"`
	Busy       float64 `json:"busy"`
	// LatencyGoal and CPUGoal: Tigger's figures against PgBouncer, at
	// least 29% lower average latency and 42% lower CPU per transaction.
	LatencyGoal bool `json:"latency_goal_met"`
	CPUGoal     bool `json:"cpu_goal_met"`
}

// Tigger's reductions against PgBouncer, the goal.
const (
	GoalLatency = 0.71 // at least 29% lower
	GoalCPU     = 0.58 // at least 42% lower
)

// BenchResult is what a bench run measured.
type BenchResult struct {
	Options          BenchOptions `json:"-"`
	PostgresVersion  string       `json:"postgres_version"`
	PgBouncerVersion string       `json:"pgbouncer_version"`
	CPUs             int          `json:"cpus"`
	Runs             []BenchRun   `json:"runs"`
	// Ratios are bpfsh's figures over PgBouncer's, per script.
	Ratios []BenchRatio `json:"ratios,omitempty"`
}

// BenchMissing says what to install for the bench; nil when all is there.
func BenchMissing() error {
	return errors.Join(pgcluster.Missing(), pgcluster.PgBouncerMissing())
}

// Bench runs the bench (see above) and stops and removes everything it
// started, also on an error or when ctx is cancelled.
func Bench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := BenchMissing(); err != nil {
		return nil, fmt.Errorf("proxy bench: %w", err)
	}
	// Direct clients plus both proxies' pools, and psql.
	c, err := pgcluster.Start(ctx, pgcluster.Options{MaxConnections: max(100, o.Clients+2*o.Pool+10)})
	if err != nil {
		return nil, fmt.Errorf("proxy bench: %w", err)
	}
	defer c.Stop()
	r := &BenchResult{Options: o, PostgresVersion: version(c.Bin("postgres")), PgBouncerVersion: version(pgcluster.PgBouncerBin)}
	if err := pgcluster.PgbenchInit(ctx, c, o.Scale); err != nil {
		return nil, fmt.Errorf("proxy bench: %w", err)
	}
	scripts := []string{ScriptTPCB, ScriptSelectOnly}
	if o.SelectOnly {
		scripts = scripts[1:]
	}
	for _, leg := range []string{LegDirect, LegPgBouncer, LegBpfsh} {
		host, port, proxyPid, stop, err := startLeg(ctx, c, leg, o.Pool)
		if err != nil {
			return nil, fmt.Errorf("proxy bench: %s: %w", leg, err)
		}
		for _, script := range scripts {
			run, err := benchRun(ctx, c, o, leg, script, host, port, proxyPid)
			if err != nil {
				stop()
				return nil, fmt.Errorf("proxy bench: %s, %s: %w", leg, script, err)
			}
			r.Runs = append(r.Runs, *run)
			r.CPUs = int(run.CPU.Capacity/run.CPU.Wall + 0.5)
		}
		if err := stop(); err != nil {
			return nil, fmt.Errorf("proxy bench: stop %s: %w", leg, err)
		}
	}
	for _, script := range scripts {
		b, p := r.Run(LegBpfsh, script), r.Run(LegPgBouncer, script)
		if b == nil || p == nil {
			continue
		}
		ratio := func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		}
		x := BenchRatio{Script: script, TPS: ratio(b.Pgbench.TPS, p.Pgbench.TPS),
			LatencyAvg: ratio(float64(b.Pgbench.LatencyAvg), float64(p.Pgbench.LatencyAvg)),
			P99:        ratio(float64(b.Pgbench.P99), float64(p.Pgbench.P99)),
			CPUPerTx:   ratio(b.CPUPerTx, p.CPUPerTx), ProcsPerTx: ratio(b.ProcsPerTx, p.ProcsPerTx), Busy: ratio(b.CPU.Busy, p.CPU.Busy)}
		x.LatencyGoal = x.LatencyAvg > 0 && x.LatencyAvg <= GoalLatency
		x.CPUGoal = x.CPUPerTx > 0 && x.CPUPerTx <= GoalCPU
		r.Ratios = append(r.Ratios, x)
	}
	return r, nil
}

// Run is the run of a leg and script, nil when it did not run.
func (r *BenchResult) Run(leg, script string) *BenchRun {
	for i := range r.Runs {
		if r.Runs[i].Leg == leg && r.Runs[i].Script == script {
			return &r.Runs[i]
		}
	}
	return nil
}

// startLeg starts a leg's proxy (none for direct) and says where pgbench
// connects, the proxy's process (0: none of its own) and how to stop it.
func startLeg(ctx context.Context, c *pgcluster.Cluster, leg string, pool int) (host string, port, pid int, stop func() error, err error) {
	switch leg {
	case LegDirect:
		return c.Host, c.Port, 0, func() error { return nil }, nil
	case LegPgBouncer:
		b, err := pgcluster.StartPgBouncer(ctx, c, pgcluster.PgBouncerOptions{Mode: "transaction", Pool: pool, MaxClients: 10000})
		if err != nil {
			return "", 0, 0, nil, err
		}
		return b.Host, b.Port, b.Pid(), b.Stop, nil
	default:
		host, port, stop, err := startBpfshLeg(ctx, c, pool)
		return host, port, os.Getpid(), stop, err
	}
}

// benchRun runs one script on one leg and reads the CPU counters around
// it (the VACUUM pgbench does first and the connections' set-up are
// inside; both are small next to the run).
func benchRun(ctx context.Context, c *pgcluster.Cluster, o BenchOptions, leg, script, host string, port, proxyPid int) (*BenchRun, error) {
	// A checkpoint now rather than in the middle of a run.
	if out, err := c.SQL(ctx, "CHECKPOINT"); err != nil {
		return nil, fmt.Errorf("checkpoint: %w: %s", err, strings.TrimSpace(string(out)))
	}
	procs := []pgcluster.Proc{{Name: "postgres", Pid: c.Pid(), Tree: true}, {Name: "bpfsh", Pid: os.Getpid()}}
	if leg == LegPgBouncer {
		procs = append(procs, pgcluster.Proc{Name: "pgbouncer", Pid: proxyPid})
	}
	before, err := pgcluster.ReadCPU(procs...)
	if err != nil {
		return nil, err
	}
	p, err := pgcluster.Pgbench(ctx, c, pgcluster.PgbenchOptions{Host: host, Port: port, Clients: o.Clients, Jobs: o.Jobs,
		Duration: o.Duration, Mode: "simple", SelectOnly: script == ScriptSelectOnly})
	if err != nil {
		return nil, err
	}
	after, err := pgcluster.ReadCPU(procs...)
	if err != nil {
		return nil, err
	}
	run := &BenchRun{Leg: leg, Script: script, Pgbench: p, CPU: after.Since(before)}
	if p.Transactions > 0 {
		run.CPUPerTx = run.CPU.Busy / float64(p.Transactions) * 1e6
	}
	switch leg {
	case LegPgBouncer:
		run.ProxyCPU = run.CPU.Procs["pgbouncer"]
	case LegBpfsh:
		run.ProxyCPU = run.CPU.Procs["bpfsh"]
	}
	if p.Transactions > 0 {
		run.ProcsPerTx = (run.CPU.Procs["postgres"] + run.ProxyCPU + p.ClientCPU) / float64(p.Transactions) * 1e6
	}
	return run, nil
}

// version is a program's --version line ("" when it says none).
func version(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
