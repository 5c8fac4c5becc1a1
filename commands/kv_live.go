// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf/kv"
)

// kv serve and kv bench: kv on a real network path (bpf/kv/serve.go).

var kvServeCmd = &Command{
	Name:  "serve",
	Usage: "[port N] [for DURATION]",
	Short: "answer real UDP clients: xdp_kv on a veth pair whose peer is in a namespace bpfsh makes",
	Long: "kv serve attaches the kv loaded under the pin root (load kv) in driver mode to the host end of a new veth pair " +
		"whose other end sits in a new network namespace, addresses the pair from 10.199.0.0/16, and serves until Ctrl-C " +
		"or the time given with for; then it detaches and removes the pair and the namespace. It shows the namespace, " +
		"the address clients send to, and a command that sends a request from there with bash alone; " +
		"'ip netns exec NAMESPACE COMMAND' runs any client there. The peer gets an XDP_PASS program: on veth, frames sent " +
		"back with XDP_TX are dropped unless the peer has one. port N, when given, must be the port kv was loaded with " +
		"(load kv set kv_port=N). Unless a WAL writer already drains kv's log, serve runs one on the default WAL for " +
		"as long as it serves (without one, SETs answer LOG_FULL once about 450 commits fill the log). On veth a GET reply " +
		"can grow its request frame only up to the next 64-byte boundary, so a GET is answered only when its value fits " +
		"there (up to 50 bytes with a 16-byte key); longer replies are dropped and counted in drop.",
	Example: "kv serve for 60s",
	Run:     runKVServe,
}

// kvServeArgs reads kv serve's words.
var kvServeArgs = argSpec{
	Valued: []string{"port", "for"},
	Need:   map[string]string{"port": "a value, e.g. kv serve port 6390 for 60s", "for": "a value, e.g. kv serve port 6390 for 60s"},
	Takes:  "kv serve takes port N and for DURATION",
}

var kvBenchCmd = &Command{
	Name:  "bench",
	Usage: "[clients N] [keys N] [value BYTES] [mix GET:SET] [for DURATION] [no-redis]",
	Short: "measure kv live against redis-server: ops/s, p50/p99, and test-run ns per GET and SET",
	Long: "kv bench loads a private kv (its own empty store: the one under the pin root is not touched), serves it on a " +
		"veth pair as kv serve does, preloads the keys and drives it from the namespace with a UDP load generator " +
		"(N clients, each one request in flight; LOG_FULL and BUSY are retried as a client that wants its write would), " +
		"with a WAL writer draining the log to tmpfs. In the same run it starts redis-server on a free loopback port " +
		"with no persistence, preloads the same keys, runs redis-benchmark's GET and SET tests with the same clients, " +
		"keys and value size, sized to take about as long, and stops it; the mix's rate for redis is 1/(g/GET rate + " +
		"s/SET rate). It shows ops/s and p50/p99 for both, their ratio, and the kernel's ns per GET and per SET " +
		"through test-run. Defaults: clients 8, keys 10000, value 32, mix 9:1, for 5s. Values are at most 50 bytes " +
		"(see kv serve). no-redis benches kv alone. Redis comes from Debian: apt-get install -y redis-server.",
	Example: "kv bench clients 16 keys 50000 value 32 mix 9:1 for 10s",
	Run:     runKVBench,
}

func runKVServe(s *Session, args []string) (Result, error) {
	var (
		port     uint16
		duration time.Duration
	)
	_, err := kvServeArgs.parse(args, func(w string, v ...string) error {
		switch w {
		case "port":
			n, err := strconv.ParseUint(v[0], 10, 16)
			if err != nil || n == 0 {
				return Usagef("port %q: give a UDP port, 1 to 65535", v[0])
			}
			port = uint16(n)
		case "for":
			d, err := ParseDuration(v[0])
			if err != nil {
				return err
			}
			if d == 0 {
				return Usagef("for 0 would end before it starts; give a duration such as 60s")
			}
			duration = d
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t, err := openKV(s, kv.BuiltinName)
	if err != nil {
		return nil, fmt.Errorf("kv serve: %w", err)
	}
	h, loaded := t.h, t.addr.DstPort
	if port != 0 && port != loaded {
		t.close()
		return nil, fmt.Errorf("kv serve: kv under %s answers on port %d, set when it was loaded; to serve on %d: unload kv, then load kv set kv_port=%d", s.PinRoot, loaded, port, port)
	}
	// The session's WAL writer (started by load, or now) drains the log
	// while live clients commit.
	walNote := t.ensureWriter(s)
	if walNote == "" {
		walNote = "the WAL writer drains kv's log into " + t.walPath(s)
	}
	srv, err := kv.Serve(kv.ServeOptions{Program: h.Prog, Port: loaded})
	if err != nil {
		t.close()
		return nil, fmt.Errorf("kv serve: %w", err)
	}
	ctx := s.Context()
	return &Stream{
		Columns: []string{"event", "detail"},
		Live:    true,
		Widths:  []int{8},
		Each: func(emit func([]string, any) error) error {
			start := time.Now()
			stop := func() error {
				return errors.Join(srv.Close(), h.Close())
			}
			say := func(event, detail string) error {
				return emit([]string{event, detail}, map[string]string{"event": event, "detail": detail})
			}
			lines := [][2]string{
				{"serving", fmt.Sprintf("xdp_kv (driver mode) on %s %s; clients in namespace %s (%s on %s) send UDP to %s",
					srv.HostDev, srv.HostAddr, srv.Namespace, srv.PeerAddr, srv.PeerDev, srv.Addr())},
				{"clients", fmt.Sprintf("ip netns exec %s COMMAND runs a client there", srv.Namespace)},
				{"try", srv.TryCommand(&kv.Message{Op: kv.OpSet, ReqID: 1, Key: kv.Key(1), Value: []byte("hello")})},
				{"try", srv.TryCommand(&kv.Message{Op: kv.OpGet, ReqID: 2, Key: kv.Key(1)})},
				{"wal", walNote},
			}
			for _, n := range srv.Reaped {
				lines = append(lines, [2]string{"removed", "namespace " + n + " left by a bpfsh that no longer runs"})
			}
			lines = append(lines, [2]string{"stop", "Ctrl-C stops serving and removes the namespace and the veth pair"})
			if duration > 0 {
				lines[len(lines)-1][1] = fmt.Sprintf("serving for %s (Ctrl-C stops sooner); then the namespace and the veth pair are removed", duration)
			}
			for _, l := range lines {
				if err := say(l[0], l[1]); err != nil {
					stop()
					return err
				}
			}
			before, _ := h.ReadStats()
			err := liveServeUntil(ctx, duration, func() error {
				after, err := h.ReadStats()
				if err != nil {
					return nil
				}
				if d := liveStatsDelta(before, after); d != "" {
					before = after
					return say("requests", d)
				}
				return nil
			})
			total := ""
			if st, err := h.ReadStats(); err == nil {
				total = liveStatsDelta(nil, st)
			}
			if cerr := stop(); cerr != nil {
				return fmt.Errorf("kv serve: stopping: %w", cerr)
			}
			if err != nil {
				return err
			}
			return say("stopped", fmt.Sprintf("served %s; namespace %s and veth %s removed; kv's counters: %s",
				time.Since(start).Round(time.Millisecond), srv.Namespace, srv.HostDev, liveOrNone(total)))
		},
	}, nil
}

// liveServeUntil waits for ctx or duration (0: no limit), calling tick every
// 5 seconds. An interrupt is a normal end.
func liveServeUntil(ctx context.Context, duration time.Duration, tick func() error) error {
	var end <-chan time.Time
	if duration > 0 {
		t := time.NewTimer(duration)
		defer t.Stop()
		end = t.C
	}
	ticker := time.NewTicker(5 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end:
			return nil
		case <-ticker.C:
			if err := tick(); err != nil {
				return err
			}
		}
	}
}

// liveStatsDelta lists the counters that grew from before to after (before
// nil: all that are not 0), e.g. "get 120, set 30, ok 150".
func liveStatsDelta(before, after []kv.Stat) string {
	var parts []string
	for i, st := range after {
		d := st.Value
		if before != nil && i < len(before) {
			d -= before[i].Value
		}
		if d != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st.Name, d))
		}
	}
	return strings.Join(parts, ", ")
}

// liveOrNone is s, or "none moved" when it is empty.
func liveOrNone(s string) string {
	if s == "" {
		return "none moved"
	}
	return s
}

func runKVBench(s *Session, args []string) (Result, error) {
	var o kv.BenchOptions
	err := benchArgs(args, []string{"no-redis"}, []string{"clients", "keys", "value", "mix", "for"},
		"kv bench clients 8 keys 10000 value 32 mix 9:1 for 5s",
		"kv bench takes clients N, keys N, value BYTES, mix GET:SET, for DURATION and no-redis",
		func(w, v string) (err error) {
			switch w {
			case "no-redis":
				o.NoRedis = true
			case "clients":
				o.Clients, err = livePositive(w, v, 1024)
			case "keys":
				o.Keys, err = livePositive(w, v, 60000)
			case "value":
				o.ValueSize, err = livePositive(w, v, kv.MaxLiveValue)
				if err != nil {
					err = Usagef("value %s: 1 to %d bytes: on veth a GET reply can only grow its request frame to the next 64-byte boundary (see help kv serve)", v, kv.MaxLiveValue)
				}
			case "mix":
				o.GetWeight, o.SetWeight, err = benchMix(v, "9:1, 1:1 or 1:0")
			case "for":
				o.Duration, err = benchFor(v)
			}
			return err
		})
	if err != nil {
		return nil, err
	}
	if !o.NoRedis {
		if err := kv.RedisMissing(); err != nil {
			return nil, fmt.Errorf("kv bench: %v; or add no-redis to bench kv alone", err)
		}
	}
	res, err := kv.Bench(s.Context(), o)
	if err != nil {
		return nil, benchFailed(s, "kv bench", err)
	}
	return liveBenchTable(res), nil
}

// livePositive parses a count from 1 to limit.
func livePositive(word, v string, limit int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > limit {
		return 0, Usagef("%s %q: give a number from 1 to %d", word, v, limit)
	}
	return n, nil
}

// liveBenchTable shows a bench result: kv's rows, redis's, the ratio, and
// the test-run figures; in JSON, the whole result.
func liveBenchTable(r *kv.BenchResult) *Table {
	o := r.Options
	mix := fmt.Sprintf("GET:SET %d:%d", o.GetWeight, o.SetWeight)
	t := &Table{Columns: []string{"system", "op", "ops/s", "p50", "p99", "detail"}, JSON: r}
	add := func(cells ...string) { t.Rows = append(t.Rows, cells) }
	l := r.KV
	secs := l.Elapsed.Seconds()
	add("kv (XDP, live)", mix, liveRate(r.KVDonePerSec), liveMicros(l.All.P50), liveMicros(l.All.P99),
		fmt.Sprintf("%d clients, %d keys, %d-byte values, %s; %d requests, %d timeouts, %d wrong, %d errors; namespace %s",
			o.Clients, o.Keys, o.ValueSize, l.Elapsed.Round(time.Millisecond), l.All.Sent, l.All.Timeouts, l.All.Wrong, l.All.Errors, r.Namespace))
	for _, op := range []struct {
		name string
		st   *kv.OpStats
	}{{"GET", &l.Get}, {"SET", &l.Set}} {
		if op.st.Sent == 0 {
			continue
		}
		done := op.st.OK()
		if op.name == "GET" {
			done += op.st.Statuses[kv.StatusNotFound.String()]
		}
		add("kv (XDP, live)", op.name, liveRate(float64(done)/secs), liveMicros(op.st.P50), liveMicros(op.st.P99),
			fmt.Sprintf("%d done of %d (%s), %d retries of LOG_FULL/BUSY", done, op.st.Sent, liveStatuses(op.st.Statuses), op.st.Retries))
	}
	if rd := r.Redis; rd != nil {
		name := "redis " + rd.Version
		add(name, mix, liveRate(rd.MixOpsPerSec), "", "", "from the GET and SET runs: 1/(g/GET rate + s/SET rate); no persistence, loopback TCP")
		for _, op := range []struct {
			name string
			res  *kv.RedisOpResult
		}{{"GET", rd.Get}, {"SET", rd.Set}} {
			if op.res != nil {
				add(name, op.name, liveRate(op.res.OpsPerSec), liveMicros(op.res.P50), liveMicros(op.res.P99),
					fmt.Sprintf("redis-benchmark -t %s -n %d -c %d -r %d -d %d", strings.ToLower(op.name), op.res.Requests, o.Clients, o.Keys, o.ValueSize))
			}
		}
		add("kv / redis", mix, fmt.Sprintf("%.2fx", r.Ratio), "", "", "kv's done/s over redis's mix ops/s")
	} else {
		add("redis", mix, "", "", "", "skipped: "+r.RedisSkipped)
	}
	tr := r.TestRun
	add("kv test-run", "GET", "", "", "", fmt.Sprintf("%.0f ns per run (kernel time, %d runs, present key, %d-byte value)", tr.GetNs, tr.GetRuns, o.ValueSize))
	add("kv test-run", "SET", "", "", "", fmt.Sprintf("%.0f ns per run (kernel time, %d runs, replacing a key: one commit; %d LOG_FULL)", tr.SetNs, tr.SetRuns, tr.SetLogFull))
	add("kv WAL", "", "", "", "", fmt.Sprintf("%d records, %d fsyncs to %s (tmpfs when /dev/shm is there, as redis keeps nothing on disk); xdp_kv counters, preload included: %s",
		r.WAL.Records, r.WAL.Batches, filepath.Dir(r.WALPath), liveOrNone(liveCounters(r.KVCounters))))
	return t
}

// liveRate shows a rate as a whole number.
func liveRate(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// liveMicros shows a latency in microseconds.
func liveMicros(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 1, 64) + "µs"
}

// liveStatuses lists reply statuses and their counts in status order.
func liveStatuses(m map[string]uint64) string {
	var parts []string
	for i := range 16 {
		name := kv.Status(i).String()
		if n := m[name]; n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	if len(parts) == 0 {
		return "no replies"
	}
	return strings.Join(parts, ", ")
}

// liveCounters lists xdp_kv counters in index order.
func liveCounters(m map[string]uint64) string {
	var parts []string
	for _, name := range kv.StatNames {
		if n := m[name]; n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	return strings.Join(parts, ", ")
}
