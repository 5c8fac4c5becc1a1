// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// redisLive starts a private redis-server on a free loopback port and
// the live Redis cache in front of it; both go when the test ends.
func redisLive(t testing.TB) (*kv.Redis, *RedisCache) {
	t.Helper()
	bpftest.RequireRoot(t)
	bpftest.HostOnly(t, "redis-server")
	if err := kv.RedisMissing(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := kv.StartRedis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	rc, err := NewRedisCache(srv.Port)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Attach(""); err != nil {
		rc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rc.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv, rc
}

// respConn is a test client speaking RESP to redis-server.
type respConn struct {
	t  testing.TB
	c  net.Conn
	rd *bufio.Reader
}

func dialRedis(t testing.TB, port int) *respConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &respConn{t: t, c: c, rd: bufio.NewReader(c)}
}

// respCommand encodes a command as a RESP array of bulk strings.
func respCommand(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

func (r *respConn) send(args ...string) {
	r.t.Helper()
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(respCommand(args...)); err != nil {
		r.t.Fatal(err)
	}
}

// reply reads one whole reply and returns its bytes exactly as sent.
func (r *respConn) reply() string {
	r.t.Helper()
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	s, err := readReply(r.rd)
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

func (r *respConn) do(args ...string) string {
	r.t.Helper()
	r.send(args...)
	return r.reply()
}

// readReply reads one RESP2 reply, nested arrays included, raw.
func readReply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("reply line %q", line)
	}
	switch line[0] {
	case '+', '-', ':':
		return line, nil
	case '$':
		n, err := strconv.Atoi(line[1 : len(line)-2])
		if err != nil {
			return "", fmt.Errorf("reply line %q", line)
		}
		if n < 0 {
			return line, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return "", fmt.Errorf("read bulk: %w", err)
		}
		return line + string(b), nil
	case '*':
		n, err := strconv.Atoi(line[1 : len(line)-2])
		if err != nil {
			return "", fmt.Errorf("reply line %q", line)
		}
		s := line
		for range max(n, 0) {
			e, err := readReply(rd)
			if err != nil {
				return "", err
			}
			s += e
		}
		return s, nil
	}
	return "", fmt.Errorf("reply line %q", line)
}

func bulk(v string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(v), v) }

func redisStats(t testing.TB, rc *RedisCache) map[string]uint64 {
	t.Helper()
	s, err := rc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisLiveHit is the proof: a GET that hits is answered by the
// kernel from redis-server's own socket, over real TCP, and the
// connection goes on working afterwards.
func TestRedisLiveHit(t *testing.T) {
	srv, rc := redisLive(t)
	c := dialRedis(t, srv.Port)
	if got := c.do("SET", "k", "hello"); got != "+OK\r\n" {
		t.Fatalf("SET answered %q", got)
	}
	if got := c.do("GET", "k"); got != bulk("hello") {
		t.Fatalf("first GET answered %q", got)
	}
	s := redisStats(t, rc)
	if s["fill"] != 1 || s["hit"] != 0 {
		t.Fatalf("after a miss: %v", s)
	}
	for i := range 3 {
		c.send("GET", "k")
		got, err := readReply(c.rd)
		if err != nil {
			t.Fatalf("GET %d: %v (stats %v)", i, err, redisStats(t, rc))
		}
		if got != bulk("hello") {
			t.Fatalf("GET %d answered %q", i, got)
		}
	}
	if s = redisStats(t, rc); s["hit"] != 3 {
		t.Fatalf("3 GETs of a cached key: %v", s)
	}
	// The connection keeps working; a write invalidates before redis sees it.
	if got := c.do("SET", "k", "world"); got != "+OK\r\n" {
		t.Fatalf("SET answered %q", got)
	}
	if got := c.do("GET", "k"); got != bulk("world") {
		t.Fatalf("GET after SET answered %q", got)
	}
	if got := c.do("GET", "k"); got != bulk("world") {
		t.Fatalf("second GET after SET answered %q", got)
	}
	if s = redisStats(t, rc); s["hit"] != 4 || s["invalidate"] != 2 {
		t.Fatalf("after SET, GET, GET: %v", s)
	}
	t.Logf("stats: %v", s)
}
