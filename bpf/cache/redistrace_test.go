// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun"
)

// TestRedisTraceHeadroom: loaded with redis_trace on (cache attach
// --redis trace), every program still verifies with at most a quarter of
// the verifier's limit, on whatever kernel runs the test.
func TestRedisTraceHeadroom(t *testing.T) {
	bpftest.RequireRoot(t)
	rc, err := LoadRedisCache(RedisConfig{Port: RedisPort, Trace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for name, p := range map[string]*ebpf.Program{
		RedisSockops: rc.Objs.RedisSockops, RedisVerdict: rc.Objs.RedisVerdict, RedisReplies: rc.Objs.RedisReplies,
	} {
		info, err := bpf.DescribeProgram(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-14s %7d instructions processed with redis_trace on", name, info.VerifiedInsns)
		if info.VerifiedInsns > bpf.VerifierLimit/4 {
			t.Errorf("%s: %d instructions processed with redis_trace on, over a quarter of the limit", name, info.VerifiedInsns)
		}
	}
}

// TestRedisTraceLines: with redis_trace on, a miss, a fill, a hit and an
// invalidation each print their line, naming the key, against fakeRedis
// (so on the matrix's guests too).
func TestRedisTraceLines(t *testing.T) {
	bpftest.RequireRoot(t)
	cg := bpftest.Cgroup(t)
	f := startFakeRedis(t, cg)
	defer f.stop()
	rc, err := LoadRedisCache(RedisConfig{Port: f.port(), Trace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Attach(cg); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		lines []string
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- testrun.Trace(ctx, testrun.TraceOptions{Grep: regexp.MustCompile(`redis (miss|fill|hit|invalidate): .*tracedkey`), Started: func() { close(ready) }},
			func(l testrun.TraceLine) error {
				mu.Lock()
				lines = append(lines, l.Text)
				mu.Unlock()
				return nil
			})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("trace: %v", err)
	}
	// Should a line still be lost (the trace buffer is shared by every
	// bpf_printk of the machine), each try uses a key of its own, until
	// one try's four lines are all there.
	c := dialRedis(t, f.port())
	var missing, got string
	for try := 1; try <= 5; try++ {
		key := fmt.Sprintf("tracedkey%d", try)
		c.do("SET", key, "v")
		c.do("GET", key)
		c.do("GET", key)
		want := []string{
			"redis invalidate: " + key + " is written",
			"redis miss: GET " + key + " goes on to redis-server",
			"redis fill: " + key + " cached from redis-server's reply (7 bytes)",
			"redis hit: GET " + key + " answered from the cache",
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			mu.Lock()
			got = strings.Join(lines, "\n")
			mu.Unlock()
			missing = ""
			for _, w := range want {
				if !strings.Contains(got, w) {
					missing = w
					break
				}
			}
			if missing == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if missing == "" {
			break
		}
		t.Logf("try %d: no trace line %q yet; again with another key", try, missing)
	}
	if missing != "" {
		t.Fatalf("no trace line %q; got:\n%s\nstats %v", missing, got, redisStats(t, rc))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRedisCgroupConfines: attached to a cgroup, redis_sockops does not
// see a server outside it, even on the port it watches: the connection
// is not added, and nothing is cached or counted.
func TestRedisCgroupConfines(t *testing.T) {
	bpftest.RequireRoot(t)
	cg := bpftest.Cgroup(t)
	f := startFakeRedis(t, "") // in the test's own cgroup, not cg
	defer f.stop()
	rc, err := NewRedisCache(f.port())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Attach(cg); err != nil {
		t.Fatal(err)
	}
	c := dialRedis(t, f.port())
	c.do("SET", "k", "v")
	for range 3 {
		if got := c.do("GET", "k"); got != bulk("v") {
			t.Fatalf("GET answered %q", got)
		}
	}
	for name, v := range redisStats(t, rc) {
		if v != 0 {
			t.Errorf("%s = %d: the cache saw a server outside its cgroup", name, v)
		}
	}
}
