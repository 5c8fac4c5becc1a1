// SPDX-License-Identifier: Apache-2.0

package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PgbenchOptions says where pgbench connects and what it runs.
type PgbenchOptions struct {
	// Host and Port are the endpoint (the cluster, PgBouncer, bpfsh's
	// proxy); the cluster's own address when empty.
	Host string
	Port int
	// User (default postgres), Password (PGPASSWORD) and Database
	// (default postgres).
	User, Password, Database string
	// Clients (-c, default 1) and Jobs (-j, pgbench's threads, default 1).
	Clients, Jobs int
	// Duration (-T, whole seconds, at least 1) or Transactions (-t, per
	// client); Duration wins when both are set; 10 transactions per
	// client when neither is.
	Duration     time.Duration
	Transactions int
	// Mode is the query mode (-M): "simple" (the default), "extended" or
	// "prepared" (prepared statements do not survive transaction pooling).
	Mode string
	// SelectOnly runs the built-in select-only script (-S) instead of
	// TPC-B (sort of).
	SelectOnly bool
	// Init, when above 0, first initialises the pgbench tables at that
	// scale (pgbench -i -s Init) directly on the cluster, as postgres.
	Init int
}

// PgbenchResult is what a run measured: pgbench's own summary, and the
// latency percentiles from its per-transaction log (-l), which records
// every transaction's time in microseconds.
type PgbenchResult struct {
	// Transactions is "number of transactions actually processed"
	// (failed ones not included), Failed "number of failed transactions".
	Transactions int64 `json:"transactions"`
	Failed       int64 `json:"failed"`
	// TPS is pgbench's tps (without initial connection time).
	TPS float64 `json:"tps"`
	// LatencyAvg is pgbench's "latency average"; P50, P99 and Max come
	// from the per-transaction log (Logged transactions, failed ones
	// apart).
	LatencyAvg time.Duration `json:"latency_avg_ns"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
	Logged     int64         `json:"logged"`
	// Wall is the run's wall time; ClientCPU pgbench's own CPU time
	// (user + system), in seconds.
	Wall      time.Duration `json:"wall_ns"`
	ClientCPU float64       `json:"client_cpu"`
	// Output is pgbench's summary as printed.
	Output string `json:"-"`
}

// Pgbench runs pgbench against an endpoint and parses what it measured.
// A run that pgbench reports as aborted (a client lost its connection,
// exit status 2) returns the figures it has and an error.
func Pgbench(ctx context.Context, c *Cluster, o PgbenchOptions) (*PgbenchResult, error) {
	if o.Host == "" {
		o.Host, o.Port = c.Host, c.Port
	}
	if o.User == "" {
		o.User = "postgres"
	}
	if o.Database == "" {
		o.Database = "postgres"
	}
	if o.Clients == 0 {
		o.Clients = 1
	}
	if o.Jobs == 0 {
		o.Jobs = 1
	}
	if o.Mode == "" {
		o.Mode = "simple"
	}
	if o.Duration == 0 && o.Transactions == 0 {
		o.Transactions = 10
	}
	switch {
	case o.Mode != "simple" && o.Mode != "extended" && o.Mode != "prepared":
		return nil, fmt.Errorf("pgbench: mode %q: want simple, extended or prepared", o.Mode)
	case o.Clients < 1 || o.Jobs < 1 || o.Jobs > o.Clients:
		return nil, fmt.Errorf("pgbench: %d clients, %d jobs: at least one client, and jobs between 1 and clients", o.Clients, o.Jobs)
	case o.Duration != 0 && o.Duration < time.Second:
		return nil, fmt.Errorf("pgbench: duration %s: at least 1s (pgbench counts whole seconds)", o.Duration)
	case o.Transactions < 0 || o.Init < 0:
		return nil, fmt.Errorf("pgbench: transactions %d, scale %d: not negative", o.Transactions, o.Init)
	}
	if o.Init > 0 {
		if err := PgbenchInit(ctx, c, o.Init); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "bpfsh-pgbench-")
	if err != nil {
		return nil, fmt.Errorf("pgbench: temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	args := []string{"-h", o.Host, "-p", strconv.Itoa(o.Port), "-U", o.User, "-c", strconv.Itoa(o.Clients), "-j", strconv.Itoa(o.Jobs),
		"-M", o.Mode, "-l", "--log-prefix", filepath.Join(dir, "log")}
	if o.Duration != 0 {
		args = append(args, "-T", strconv.Itoa(int(o.Duration.Round(time.Second)/time.Second)))
	} else {
		args = append(args, "-t", strconv.Itoa(o.Transactions))
	}
	if o.SelectOnly {
		args = append(args, "-S")
	}
	args = append(args, o.Database)
	cmd := exec.CommandContext(ctx, c.Bin("pgbench"), args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "HOME=" + dir, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=disable"}
	if o.Password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+o.Password)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	r := &PgbenchResult{Wall: time.Since(start), Output: string(out)}
	if ps := cmd.ProcessState; ps != nil {
		r.ClientCPU = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("pgbench: %w", ctx.Err())
	}
	perr := r.parse(string(out))
	if runErr != nil {
		return r, fmt.Errorf("pgbench against %s:%d: %w: %s", o.Host, o.Port, runErr, lastLines(out))
	}
	if perr != nil {
		return r, fmt.Errorf("pgbench against %s:%d: %w: %s", o.Host, o.Port, perr, lastLines(out))
	}
	if err := r.readLogs(dir); err != nil {
		return r, err
	}
	return r, nil
}

// PgbenchInit makes the pgbench tables at a scale (pgbench -i -s N -q),
// directly on the cluster, as postgres.
func PgbenchInit(ctx context.Context, c *Cluster, scale int) error {
	if scale < 1 {
		return fmt.Errorf("pgbench -i: scale %d: at least 1", scale)
	}
	out, err := c.run(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale), "-h", c.Dir, "-p", strconv.Itoa(c.Port), "-U", "postgres", "postgres")
	if err != nil {
		return fmt.Errorf("pgbench -i -s %d: %w: %s", scale, err, lastLines(out))
	}
	return nil
}

var (
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	reFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	reLatency   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
)

// parse reads pgbench's summary (PostgreSQL 15's wording).
func (r *PgbenchResult) parse(out string) error {
	m := reProcessed.FindStringSubmatch(out)
	if m == nil {
		return errors.New("no \"number of transactions actually processed\" in pgbench's output")
	}
	r.Transactions, _ = strconv.ParseInt(m[1], 10, 64)
	if m := reFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reLatency.FindStringSubmatch(out); m != nil {
		ms, _ := strconv.ParseFloat(m[1], 64)
		r.LatencyAvg = time.Duration(ms * float64(time.Millisecond))
	}
	if m := reTPS.FindStringSubmatch(out); m != nil {
		r.TPS, _ = strconv.ParseFloat(m[1], 64)
	}
	return nil
}

// readLogs reads the per-transaction logs (one per job: log.PID and
// log.PID.N): "client_id transaction_no time script_no time_epoch
// time_us ...", time in microseconds, or "failed" / "skipped".
func (r *PgbenchResult) readLogs(dir string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	if len(files) == 0 {
		return fmt.Errorf("pgbench: no per-transaction log in %s", dir)
	}
	var times []int64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("pgbench: read its log: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				continue // failed or skipped
			}
			times = append(times, us)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("pgbench: read %s: %w", name, err)
		}
	}
	r.Logged = int64(len(times))
	if len(times) == 0 {
		return nil
	}
	slices.Sort(times)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(times)))) - 1 // nearest rank
		i = max(0, min(i, len(times)-1))
		return time.Duration(times[i]) * time.Microsecond
	}
	r.P50, r.P99, r.Max = at(0.50), at(0.99), time.Duration(times[len(times)-1])*time.Microsecond
	return nil
}
