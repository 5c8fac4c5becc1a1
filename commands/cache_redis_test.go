// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// redisGet sends GET key on c and returns the reply's bytes.
func redisGet(t *testing.T, c net.Conn, rd *bufio.Reader, key string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line[0] != '$' || line == "$-1\r\n" {
		return line
	}
	n, _ := strconv.Atoi(line[1 : len(line)-2])
	b := make([]byte, n+2)
	if _, err := io.ReadFull(rd, b); err != nil {
		t.Fatal(err)
	}
	return line + string(b)
}

// cache attach --redis, stats and detach through the shell, with a real
// redis-server on a free port: a GET of a cached key is counted as a
// hit, and a connection open across detach keeps working.
func TestCacheRedisCommands(t *testing.T) {
	root, _ := kvRoot(t)
	bpftest.HostOnly(t, "redis-server")
	if err := kv.RedisMissing(); err != nil {
		t.Skip(err)
	}
	// redis-server in a cgroup of the test's own, where the cache goes.
	cg := bpftest.Cgroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := kv.StartRedis(ctx, kv.RedisOptions{Cgroup: cg})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	port := strconv.Itoa(srv.Port)

	early, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	// A round trip first: Dial returns when the client's side is up, and
	// under load the server's side can still be a half-open request.
	if _, err := early.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	early.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(early).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING on the early connection: %q, %v", line, err)
	}
	out := bpfshOK(t, root, "cache attach --redis port "+port+" cgroup "+cg)
	wantLines(t, "cache attach --redis", out, "attached the Redis cache for port "+port, "redis_sockops on cgroup "+cg+" (it sees its processes' connections)", "redis_cache",
		"warning: 1 connection(s) to port "+port+" were established before attach")
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(root, "redis_cache")); err == nil {
			bpfsh(t, root, "-c", "cache detach --redis")
		}
	})
	bpfshFails(t, root, "cache attach --redis port "+port+" cgroup "+cg, 1, "already attached", "'cache detach --redis' first")

	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n")
	if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("SET: %q %v", line, err)
	}
	for range 3 {
		if got := redisGet(t, c, rd, "k"); got != "$5\r\nhello\r\n" {
			t.Fatalf("GET k answered %q", got)
		}
	}
	stats := decodeJSON[map[string]uint64](t, bpfshOK(t, root, "cache stats --redis", "-j"))
	if stats["hit"] != 2 || stats["miss"] != 1 || stats["fill"] != 1 || stats["invalidate"] != 1 {
		t.Fatalf("cache stats --redis: %v", stats)
	}
	// Plain 'cache stats' shows it too when no memcached cache is loaded.
	if plain := decodeJSON[map[string]uint64](t, bpfshOK(t, root, "cache stats", "-j")); plain["hit"] != 2 {
		t.Fatalf("cache stats: %v", plain)
	}

	out = bpfshOK(t, root, "cache detach")
	wantLines(t, "cache detach", out, "detached the Redis cache")
	if _, err := os.Stat(filepath.Join(root, "redis_cache")); !os.IsNotExist(err) {
		t.Fatalf("pins left after detach: %v", err)
	}
	// The connection goes on, answered by redis-server.
	for range 2 {
		if got := redisGet(t, c, rd, "k"); got != "$5\r\nhello\r\n" {
			t.Fatalf("GET k after detach answered %q", got)
		}
	}
	bpfshFails(t, root, "cache detach --redis", 1, "not attached")
}

// cache bench --redis runs both phases (short here) and shows the ratios;
// bad words are refused with one line.
func TestCacheBenchRedis(t *testing.T) {
	root, _ := kvRoot(t)
	bpftest.HostOnly(t, "redis-server")
	if err := kv.RedisMissing(); err != nil {
		t.Skip(err)
	}
	bpfshFails(t, root, "cache bench --redis value 2000", 2, "1 to 1024 bytes")
	bpfshFails(t, root, "cache bench --redis depth 3", 2, "takes requests N, clients N, keys N and value BYTES")
	out := bpfshOK(t, root, "cache bench --redis requests 5000 clients 2 keys 100")
	wantLines(t, "cache bench --redis", out, "redis-server + cache", "cache / alone", "Huawei reported +337% throughput and -84% GET latency", "CPU S/100K GETS")
	type phase struct {
		OpsPerSec float64           `json:"ops_per_sec"`
		Counters  map[string]uint64 `json:"counters"`
	}
	res := decodeJSON[struct {
		Alone  phase `json:"alone"`
		Cached phase `json:"cached"`
	}](t, bpfshOK(t, root, "cache bench --redis requests 5000 clients 2 keys 100", "-j"))
	if res.Alone.OpsPerSec <= 0 || res.Cached.OpsPerSec <= 0 || res.Cached.Counters["hit"] == 0 {
		t.Fatalf("cache bench --redis -j: %+v", res)
	}
}
