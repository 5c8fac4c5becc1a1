// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bpfsh/bpfsh/bpf/internal/child"
)

// Redis for comparison
//
// The bench runs Debian's redis-server on a free loopback port with no
// persistence and drives it with redis-benchmark. redis-benchmark runs
// one command per test, so GETs and SETs are measured in two runs; a
// closed-loop client mixing them g:s spends g/(g+s) of its requests at
// the GET rate and s/(g+s) at the SET rate, so the mix's rate is
// 1 / (g'/getRPS + s'/setRPS) with g' and s' the shares.

// RedisMissing says how to get redis when it is not installed; nil when
// redis-server and redis-benchmark are both there.
func RedisMissing() error {
	var missing []string
	for _, p := range []string{"redis-server", "redis-benchmark"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s not installed: apt-get install -y redis-server (it brings redis-tools, which has redis-benchmark)", strings.Join(missing, " and "))
}

// Redis is a redis-server the bench started.
type Redis struct {
	Port    int
	Version string
	// Cgroup is the cgroup v2 directory it runs in ("" when it runs in
	// the caller's).
	Cgroup string
	// Dir is its working directory (removed by Stop).
	Dir     string
	cmd     *exec.Cmd
	out     *child.Output
	exited  chan struct{}
	waitErr error
}

// RedisOptions says where StartRedis runs redis-server.
type RedisOptions struct {
	// Port is the TCP port of 127.0.0.1 it listens on; 0 is a free one.
	Port int
	// Cgroup, when set, is a cgroup v2 directory redis-server starts in
	// (clone3 with CLONE_INTO_CGROUP, so from its first instruction): a
	// sock_ops program attached there sees its connections and nothing
	// else's.
	Cgroup string
}

// StartRedis starts redis-server on 127.0.0.1, on o.Port or a free port,
// with no persistence (--save "" --appendonly no) and its working
// directory in a temporary directory, in o.Cgroup when it is set, and
// waits until it answers PING. It runs until Stop, or until this process
// ends.
func StartRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	if err := RedisMissing(); err != nil {
		return nil, err
	}
	if o.Port != 0 {
		return startRedis(ctx, o.Port, o.Cgroup)
	}
	var lastErr error
	for range 3 { // a port found free may be taken before redis binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r, err := startRedis(ctx, port, o.Cgroup)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startRedis(ctx context.Context, port int, cgroup string) (*Redis, error) {
	dir, err := os.MkdirTemp("", "bpfsh-redis-")
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r := &Redis{Port: port, Cgroup: cgroup, Dir: dir, out: &child.Output{Max: 64 << 10}, exited: make(chan struct{})}
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "", "--daemonize", "no")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if cgroup != "" {
		cg, err := os.Open(cgroup)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start redis-server in cgroup %s: %w", cgroup, err)
		}
		defer cg.Close()
		r.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	}
	if err := child.Start(r.cmd, nil, func(err error) { r.waitErr = err; close(r.exited) }); err != nil {
		os.RemoveAll(dir)
		if cgroup != "" {
			return nil, fmt.Errorf("start redis-server in cgroup %s: %w", cgroup, err)
		}
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := r.ping()
		if err == nil {
			r.Version = v
			return r, nil
		}
		select {
		case <-r.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redis-server on port %d exited (%v): %s", port, r.waitErr, r.out.LastLine())
		case <-ctx.Done():
			r.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("redis-server on port %d does not answer PING after 5s: %v", port, err)
		}
	}
}

// Exited is closed when redis-server has exited (stopped, or died).
func (r *Redis) Exited() <-chan struct{} { return r.exited }

// Pid is redis-server's process id.
func (r *Redis) Pid() int { return r.cmd.Process.Pid }

// ping asks redis for its version with INFO server; an answer means it
// serves.
func (r *Redis) ping() (string, error) {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return "", err
	}
	info, err := readBulk(bufio.NewReader(c))
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(info), "\r\n") {
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			return v, nil
		}
	}
	return "", nil
}

func (r *Redis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)) }

// readBulk reads one RESP bulk string reply.
func readBulk(rd *bufio.Reader) ([]byte, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "$") {
		return nil, fmt.Errorf("redis answered %q", strings.TrimSpace(line))
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("redis answered %q", strings.TrimSpace(line))
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, err
	}
	return b[:n], nil
}

// Preload SETs key:%012d (Key(i)) for i < keys to valueFor(i, size), one
// pipeline over one connection, so that the GET run finds every key as
// kv's does.
func (r *Redis) Preload(keys, size int) error {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return fmt.Errorf("preload redis: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	errc := make(chan error, 1)
	go func() {
		rd := bufio.NewReader(c)
		for i := range keys {
			line, err := rd.ReadString('\n')
			if err != nil {
				errc <- fmt.Errorf("preload redis: reply %d: %w", i, err)
				return
			}
			if line != "+OK\r\n" {
				errc <- fmt.Errorf("preload redis: SET answered %q", strings.TrimSpace(line))
				return
			}
		}
		errc <- nil
	}()
	w := bufio.NewWriter(c)
	for i := range keys {
		k, v := Key(i), valueFor(i, size)
		fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("preload redis: %w", err)
	}
	return <-errc
}

// Stop stops redis-server (SIGTERM, then SIGKILL after 5s) and removes
// its directory.
func (r *Redis) Stop() error {
	defer os.RemoveAll(r.Dir)
	return child.Stop(r.cmd, r.exited, "redis-server")
}

// RedisOpResult is one redis-benchmark test (GET or SET).
type RedisOpResult struct {
	Requests  int           `json:"requests"`
	OpsPerSec float64       `json:"ops_per_sec"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
}

// RedisBenchOptions is a redis-benchmark run.
type RedisBenchOptions struct {
	Test      string // "get" or "set"
	Requests  int    // -n
	Clients   int    // -c
	Keys      int    // -r
	ValueSize int    // -d
}

// Benchmark runs redis-benchmark against r, one test, no pipelining,
// and reads its CSV line.
func (r *Redis) Benchmark(ctx context.Context, o RedisBenchOptions) (RedisOpResult, error) {
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.Port), "-t", o.Test, "-n", strconv.Itoa(o.Requests),
		"-c", strconv.Itoa(o.Clients), "-r", strconv.Itoa(o.Keys), "-d", strconv.Itoa(o.ValueSize), "-P", "1", "--csv"}
	cmd := exec.Command("redis-benchmark", args...)
	out := &child.Output{Max: 1 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan error, 1)
	if err := child.Start(cmd, nil, func(err error) { done <- err }); err != nil {
		return RedisOpResult{}, fmt.Errorf("redis-benchmark: %w", err)
	}
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return RedisOpResult{}, ctx.Err()
	}
	if err != nil {
		return RedisOpResult{}, fmt.Errorf("redis-benchmark %s: %v: %s", strings.Join(args, " "), err, out.LastLine())
	}
	res, err := parseRedisCSV(out.Bytes(), o.Test)
	res.Requests = o.Requests
	return res, err
}

// parseRedisCSV reads redis-benchmark --csv output:
//
//	"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
//	"GET","212765.97","0.012","0.000","0.015","0.015","0.023","0.167"
func parseRedisCSV(out []byte, test string) (RedisOpResult, error) {
	var res RedisOpResult
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(rows) < 2 {
		return res, fmt.Errorf("redis-benchmark printed no CSV table: %q", firstLine(out))
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, name := range []string{"test", "rps", "p50_latency_ms", "p99_latency_ms", "max_latency_ms"} {
		if _, ok := col[name]; !ok {
			return res, fmt.Errorf("redis-benchmark's CSV has no %q column (it has %v)", name, rows[0])
		}
	}
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) || !strings.EqualFold(row[col["test"]], test) {
			continue
		}
		num := func(name string) (float64, error) {
			v, err := strconv.ParseFloat(row[col[name]], 64)
			if err != nil {
				return 0, fmt.Errorf("redis-benchmark's %s %q: %w", name, row[col[name]], err)
			}
			return v, nil
		}
		ms := func(name string) (time.Duration, error) {
			v, err := num(name)
			return time.Duration(v * float64(time.Millisecond)), err
		}
		var errs [4]error
		res.OpsPerSec, errs[0] = num("rps")
		res.P50, errs[1] = ms("p50_latency_ms")
		res.P99, errs[2] = ms("p99_latency_ms")
		res.Max, errs[3] = ms("max_latency_ms")
		return res, errors.Join(errs[:]...)
	}
	return res, fmt.Errorf("redis-benchmark's CSV has no %s row", strings.ToUpper(test))
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(line)
}

// freePort finds a TCP port of 127.0.0.1 nobody listens on.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
