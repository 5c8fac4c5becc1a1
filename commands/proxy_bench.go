// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf/proxy"
)

// proxy bench: pgbench directly, through PgBouncer and through bpfsh's
// proxy, in one run (bpf/proxy/bench.go).

// proxyBenchCommand is `proxy bench`; the proxy family lists it in its
// Subs.
func proxyBenchCommand() *Command {
	return &Command{
		Name:  "bench",
		Usage: "[clients N] [jobs N] [for DURATION] [scale N] [pool N] [select-only]",
		Short: "measure pgbench directly, through PgBouncer and through bpfsh's proxy: TPS, latency avg/p99, CPU, ratios",
		Long: "proxy bench starts a throwaway PostgreSQL (Debian's, initdb and pg_ctl as the postgres user in a temporary " +
			"directory, a free loopback port, durability off), makes the pgbench tables (pgbench -i -s SCALE), and then runs " +
			"the same load, pgbench -c CLIENTS -j JOBS -T DURATION -M simple, with the TPC-B-like script and the select-only " +
			"one (-S), on three legs in turn: directly against PostgreSQL, through Debian's PgBouncer in transaction mode, " +
			"and through bpfsh's proxy in transaction mode (both proxies with POOL server connections). Each run shows " +
			"pgbench's TPS and average latency, the p50/p99 from its per-transaction log (-l: every transaction's time), " +
			"failed transactions, and CPU time: the whole machine's from /proc/stat (user, system and softirq: the " +
			"proxy's in-kernel redirects run in softirq and in other processes' system calls, so the proxy's own CPU time " +
			"understates it), per transaction, and PostgreSQL's, PgBouncer's, bpfsh's own and pgbench's. pgbench runs on " +
			"the same machine and keeps its CPUs busy on every leg, so CPU per transaction is the figure that compares. " +
			"The last rows are bpfsh's figures against PgBouncer's, with the issue's goal (Tigger's: latency at least 29% " +
			"lower, CPU at least 42% lower). Everything is stopped and removed after. Defaults: clients 16, jobs 2, for " +
			"30s, scale 10, pool 20 (PgBouncer's default_pool_size), both scripts (select-only: -S only). Needs " +
			"apt-get install -y postgresql pgbouncer.",
		Example: "proxy bench clients 16 jobs 2 for 30s scale 10 pool 20",
		Run:     runProxyBench,
	}
}

func runProxyBench(s *Session, args []string) (Result, error) {
	var o proxy.BenchOptions
	err := benchArgs(args, []string{"select-only"}, []string{"clients", "jobs", "for", "scale", "pool"},
		"proxy bench clients 16 jobs 2 for 30s scale 10 pool 20",
		"proxy bench takes clients N, jobs N, for DURATION, scale N, pool N and select-only",
		func(w, v string) (err error) {
			switch w {
			case "select-only":
				o.SelectOnly = true
			case "clients":
				o.Clients, err = livePositive(w, v, proxy.MaxBenchClients)
			case "jobs":
				o.Jobs, err = livePositive(w, v, proxy.MaxBenchClients)
			case "scale":
				o.Scale, err = livePositive(w, v, proxy.MaxBenchScale)
			case "pool":
				o.Pool, err = livePositive(w, v, proxy.MaxBenchPool)
			case "for":
				o.Duration, err = ParseDuration(v)
				if err == nil && (o.Duration < time.Second || o.Duration > time.Hour || o.Duration%time.Second != 0) {
					err = Usagef("for %s: whole seconds from 1s to 1h (pgbench -T counts seconds)", v)
				}
			}
			return err
		})
	if err != nil {
		return nil, err
	}
	clients := o.Clients
	if clients == 0 {
		clients = 16
	}
	if o.Jobs > clients {
		return nil, Usagef("jobs %d: at most the clients (%d): pgbench gives each thread one client or more", o.Jobs, clients)
	}
	if err := proxy.BenchMissing(); err != nil {
		return nil, fmt.Errorf("proxy bench: %v", err)
	}
	res, err := proxy.Bench(s.Context(), o)
	if err != nil {
		return nil, benchFailed(s, "proxy bench", err)
	}
	return proxyBenchTable(res), nil
}

// proxyBenchTable shows each run, bpfsh against PgBouncer, where the CPU
// went and the set-up; in JSON, the whole result.
func proxyBenchTable(r *proxy.BenchResult) *Table {
	o := r.Options
	t := &Table{Columns: []string{"leg", "script", "tps", "lat avg", "lat p99", "cpu busy", "cpu/tx", "proxy cpu", "detail"}, JSON: r}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }
	for _, run := range r.Runs {
		p, c := run.Pgbench, run.CPU
		proxyCPU := ""
		if run.Leg != proxy.LegDirect {
			proxyCPU = fmt.Sprintf("%.2fs", run.ProxyCPU)
		}
		t.Rows = append(t.Rows, []string{run.Leg, run.Script, fmt.Sprintf("%.0f", p.TPS), ms(p.LatencyAvg), ms(p.P99),
			fmt.Sprintf("%.0f%%", 100*c.Busy/max(c.Capacity, 1e-9)), fmt.Sprintf("%.0fµs", run.CPUPerTx), proxyCPU,
			fmt.Sprintf("%d transactions, %d failed; p50 %s, max %s; CPU of postgres, proxy and pgbench %.0fµs/tx", p.Transactions, p.Failed, ms(p.P50), ms(p.Max), run.ProcsPerTx)})
	}
	pct := func(ratio float64) string { return fmt.Sprintf("%+.0f%%", 100*(ratio-1)) }
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	for _, x := range r.Ratios {
		t.Rows = append(t.Rows, []string{"bpfsh / pgbouncer", x.Script, fmt.Sprintf("%.2fx", x.TPS), pct(x.LatencyAvg), pct(x.P99), pct(x.Busy), pct(x.CPUPerTx), "",
			fmt.Sprintf("goal (Tigger's): latency at least 29%% lower: %s; CPU per transaction at least 42%% lower: %s (processes' CPU/tx %s)", met(x.LatencyGoal), met(x.CPUGoal), pct(x.ProcsPerTx))})
	}
	for _, run := range r.Runs {
		c := run.CPU
		var procs []string
		for _, name := range []string{"postgres", "pgbouncer", "bpfsh"} {
			if v, ok := c.Procs[name]; ok {
				procs = append(procs, fmt.Sprintf("%s %.2f", name, v))
			}
		}
		procs = append(procs, fmt.Sprintf("pgbench %.2f", run.Pgbench.ClientCPU))
		t.Rows = append(t.Rows, []string{"cpu: " + run.Leg, run.Script, "", "", "", fmt.Sprintf("%.1f of %.1f", c.Busy, c.Capacity), "", "",
			fmt.Sprintf("CPU-seconds: user %.2f, system %.2f, softirq %.2f, irq %.2f, idle %.2f; %s", c.User, c.System, c.Softirq, c.Irq, c.Idle, strings.Join(procs, ", "))})
	}
	t.Rows = append(t.Rows, []string{"setup", "", "", "", "", "", "", "", fmt.Sprintf("%s, %s; %d CPUs; pgbench -i -s %d, then -c %d -j %d -T %d -M simple; proxies in transaction mode with %d server connections",
		r.PostgresVersion, r.PgBouncerVersion, r.CPUs, o.Scale, o.Clients, o.Jobs, int(o.Duration/time.Second), o.Pool)})
	return t
}
