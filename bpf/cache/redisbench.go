// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// cache bench --redis
//
// RedisBench runs Debian's redis-server on a free loopback port, preloads
// the keys redis-benchmark's -r draws (key:%012d), and drives GETs with
// redis-benchmark twice with the same settings: against redis-server
// alone, then with the live Redis cache attached (redis-benchmark's
// connections are accepted after attach, so they are cached). Besides
// redis-benchmark's ops/s and GET p50/p99 it reads redis-server's own
// CPU time (utime+stime of /proc/PID/stat) over each run: CPU-seconds per
// 100k GETs is the figure that does not depend on where the client runs.
// A hit's work is done in the kernel's receive path, which on loopback
// runs in the client's send and is not charged to redis-server.

// RedisBenchOptions is a redis-benchmark run (-n, -c, -r, -d).
type RedisBenchOptions struct {
	Requests  int `json:"requests"`
	Clients   int `json:"clients"`
	Keys      int `json:"keys"`
	ValueSize int `json:"value_size"`
}

// RedisBenchPhase is one run.
type RedisBenchPhase struct {
	Name       string            `json:"name"`
	OpsPerSec  float64           `json:"ops_per_sec"`
	P50        time.Duration     `json:"get_p50_ns"`
	P99        time.Duration     `json:"get_p99_ns"`
	ServerCPU  float64           `json:"server_cpu_s"`
	CPUPer100k float64           `json:"server_cpu_s_per_100k_gets"`
	Counters   map[string]uint64 `json:"counters,omitempty"`
}

// RedisBenchResult is both runs and their ratios (cached / alone).
type RedisBenchResult struct {
	Options    RedisBenchOptions `json:"options"`
	Version    string            `json:"redis_version"`
	Port       int               `json:"port"`
	Alone      RedisBenchPhase   `json:"alone"`
	Cached     RedisBenchPhase   `json:"cached"`
	Throughput float64           `json:"throughput_ratio"`
	P50        float64           `json:"get_p50_ratio"`
	P99        float64           `json:"get_p99_ratio"`
	CPU        float64           `json:"server_cpu_ratio"`
}

// Huawei's figures for their in-kernel Redis cache: +337% throughput,
// -84% GET latency.
const (
	HuaweiThroughput = 4.37
	HuaweiLatency    = 0.16
)

// RedisBench measures redis-server alone and behind the live cache.
func RedisBench(ctx context.Context, o RedisBenchOptions) (*RedisBenchResult, error) {
	if o.Requests == 0 {
		o.Requests = 200000
	}
	if o.Clients == 0 {
		o.Clients = 8
	}
	if o.Keys == 0 {
		o.Keys = 10000
	}
	if o.ValueSize == 0 {
		o.ValueSize = 32
	}
	if o.ValueSize > RedisMaxValue {
		return nil, fmt.Errorf("cache bench --redis: value %d is over the cache's %d bytes", o.ValueSize, RedisMaxValue)
	}
	// redis-server runs in a cgroup of the bench's own, where the cache's
	// sock_ops program is attached: no other process's connections pass
	// through it.
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		return nil, fmt.Errorf("cache bench --redis: %w", err)
	}
	cgroup, err := os.MkdirTemp(mnt, "bpfsh-bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("cache bench --redis: make a cgroup for redis-server: %w", err)
	}
	defer bpf.RemoveCgroup(cgroup, 10*time.Second)
	srv, err := kv.StartRedis(ctx, kv.RedisOptions{Cgroup: cgroup})
	if err != nil {
		return nil, fmt.Errorf("cache bench --redis: %w", err)
	}
	defer srv.Stop()
	if err := srv.Preload(o.Keys, o.ValueSize); err != nil {
		return nil, fmt.Errorf("cache bench --redis: %w", err)
	}
	pid, err := redisPID(srv.Port)
	if err != nil {
		return nil, fmt.Errorf("cache bench --redis: %w", err)
	}
	r := &RedisBenchResult{Options: o, Version: srv.Version, Port: srv.Port}
	run := func(p *RedisBenchPhase) error {
		before, err := procCPU(pid)
		if err != nil {
			return err
		}
		res, err := srv.Benchmark(ctx, kv.RedisBenchOptions{Test: "get", Requests: o.Requests, Clients: o.Clients, Keys: o.Keys, ValueSize: o.ValueSize})
		if err != nil {
			return err
		}
		after, err := procCPU(pid)
		if err != nil {
			return err
		}
		p.OpsPerSec, p.P50, p.P99 = res.OpsPerSec, res.P50, res.P99
		p.ServerCPU = after - before
		p.CPUPer100k = p.ServerCPU * 100000 / float64(o.Requests)
		return nil
	}
	r.Alone.Name = "redis-server"
	if err := run(&r.Alone); err != nil {
		return nil, fmt.Errorf("cache bench --redis: alone: %w", err)
	}
	rc, err := NewRedisCache(srv.Port)
	if err != nil {
		return nil, fmt.Errorf("cache bench --redis: %w", err)
	}
	defer rc.Close()
	if err := rc.Attach(cgroup); err != nil {
		return nil, fmt.Errorf("cache bench --redis: %w", err)
	}
	if err := warmRedis(srv.Port, o.Keys); err != nil {
		return nil, fmt.Errorf("cache bench --redis: warm the cache: %w", err)
	}
	r.Cached.Name = "redis-server + cache"
	if err := run(&r.Cached); err != nil {
		return nil, fmt.Errorf("cache bench --redis: with the cache: %w", err)
	}
	if r.Cached.Counters, err = rc.Stats(); err != nil {
		return nil, fmt.Errorf("cache bench --redis: %w", err)
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	r.Throughput = ratio(r.Cached.OpsPerSec, r.Alone.OpsPerSec)
	r.P50 = ratio(float64(r.Cached.P50), float64(r.Alone.P50))
	r.P99 = ratio(float64(r.Cached.P99), float64(r.Alone.P99))
	r.CPU = ratio(r.Cached.CPUPer100k, r.Alone.CPUPer100k)
	return r, nil
}

// warmRedis GETs every key once on a cached connection, so that the
// cached run starts with the cache filled.
func warmRedis(port, keys int) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(c)
	for i := range keys {
		k := kv.Key(i)
		fmt.Fprintf(c, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(k), k)
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if n, err := strconv.Atoi(strings.TrimSpace(line[1:])); err == nil && line[0] == '$' && n >= 0 {
			if _, err := rd.Discard(n + 2); err != nil {
				return err
			}
		}
	}
	return nil
}

// redisPID asks redis-server for its process id (INFO server).
func redisPID(port int) (int, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
	rd := bufio.NewReader(c)
	head, err := rd.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil {
		return 0, fmt.Errorf("INFO answered %q", head)
	}
	body := make([]byte, n)
	if _, err := rd.Read(body); err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("INFO server has no process_id")
}

// procCPU is a process's user+system CPU-seconds (/proc/PID/stat).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count after its ')'.
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fs) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	u, err1 := strconv.ParseFloat(fs[11], 64)
	st, err2 := strconv.ParseFloat(fs[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return (u + st) / 100, nil // USER_HZ is 100 on Linux
}
