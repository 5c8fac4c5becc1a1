// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// redisLive starts a private redis-server on a free loopback port, in a
// cgroup of the test's own, and the live Redis cache in front of it,
// attached to that cgroup; all go when the test ends.
func redisLive(t testing.TB) (*kv.Redis, *RedisCache) {
	t.Helper()
	bpftest.RequireRoot(t)
	bpftest.HostOnly(t, "redis-server")
	if err := kv.RedisMissing(); err != nil {
		t.Skip(err)
	}
	cg := bpftest.Cgroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := kv.StartRedis(ctx, kv.RedisOptions{Cgroup: cg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	rc, err := NewRedisCache(srv.Port)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Attach(cg); err != nil {
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

// startInCgroup starts cmd in the cgroup v2 directory dir, and kills it
// when the test ends.
func startInCgroup(t testing.TB, cmd *exec.Cmd, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
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

// readReply reads one RESP2 or RESP3 reply, nested aggregates included,
// raw.
func readReply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("reply line %q", line)
	}
	switch line[0] {
	case '+', '-', ':', '_', ',', '#', '(':
		return line, nil
	case '$', '=', '!':
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
	case '*', '~', '>', '%':
		n, err := strconv.Atoi(line[1 : len(line)-2])
		if err != nil {
			return "", fmt.Errorf("reply line %q", line)
		}
		if line[0] == '%' {
			n *= 2
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

// truth is what redis-server itself holds for key, asked with a command
// the cache never answers (GETRANGE passes): the bulk reply GET would
// give, or "$-1\r\n" when the key does not exist.
func (r *respConn) truth(key string) string {
	r.t.Helper()
	if got := r.do("EXISTS", key); got == ":0\r\n" {
		return "$-1\r\n"
	}
	return r.do("GETRANGE", key, "0", "-1")
}

// TestRedisLiveDifferential: every GET, whether redis-server or the
// kernel answers it, is byte for byte what redis-server holds; keys and
// values within the limits are answered by the kernel from the second
// GET on, and the others never.
func TestRedisLiveDifferential(t *testing.T) {
	srv, rc := redisLive(t)
	c := dialRedis(t, srv.Port)
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	type tc struct {
		key, val string
		cached   bool
	}
	cases := []tc{
		{"k", "v", true},
		{"empty", "", true},
		{"crlf", "a\r\nb\r\n$3\r\nGET\r\n", true},
		{"binary", string(bin), true},
		{"resp-looking", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", true},
		{"max", strings.Repeat("m", RedisMaxValue), true},
		{"over", strings.Repeat("o", RedisMaxValue+1), false},
		{"big", strings.Repeat("b", 100000), false},
		{strings.Repeat("K", RedisMaxKey), "longest key", true},
		{strings.Repeat("L", RedisMaxKey+1), "key one too long", false},
		{strings.Repeat("M", 1000), "key far too long", false},
		{"\x00\xff\r\n key", "binary key", true},
		{"digits", "12345", true},
	}
	for _, k := range cases {
		if got := c.do("SET", k.key, k.val); got != "+OK\r\n" {
			t.Fatalf("SET %q answered %q", k.key, got)
		}
	}
	for round := range 3 {
		for _, k := range cases {
			before := redisStats(t, rc)["hit"]
			got := c.do("GET", k.key)
			hit := redisStats(t, rc)["hit"] - before
			if want := c.truth(k.key); got != want || got != bulk(k.val) {
				t.Fatalf("round %d: GET %.40q answered %.80q; redis-server holds %.80q", round, k.key, got, want)
			}
			if wantHit := uint64(0); k.cached && round > 0 {
				wantHit = 1
				if hit != wantHit {
					t.Errorf("round %d: GET %.40q: %d hits, want %d", round, k.key, hit, wantHit)
				}
			} else if hit != 0 {
				t.Errorf("round %d: GET %.40q answered by the kernel", round, k.key)
			}
		}
	}
	// Missing keys: redis answers, nothing is cached.
	for range 2 {
		if got := c.do("GET", "missing"); got != "$-1\r\n" {
			t.Fatalf("GET missing answered %q", got)
		}
	}
	// Every kind of write invalidates before redis sees it.
	writes := [][]string{
		{"SET", "k", "v2"}, {"APPEND", "k", "x"}, {"DEL", "k"}, {"SET", "k", "5"}, {"INCR", "k"}, {"INCRBY", "k", "10"},
		{"MSET", "k", "m1", "other", "o"}, {"SETRANGE", "k", "0", "Z"}, {"GETSET", "k", "gs"}, {"RENAME", "other", "k"},
		{"FLUSHDB"}, {"SET", "k", "after flush"}, {"UNLINK", "k"}, {"SETNX", "k", "nx"},
	}
	for _, w := range writes {
		c.do("GET", "k")
		c.do("GET", "k") // cached, where it can be
		c.do(w...)
		for range 2 {
			if got, want := c.do("GET", "k"), c.truth("k"); got != want {
				t.Fatalf("after %v: GET k answered %q, redis-server holds %q", w, got, want)
			}
		}
	}
	// A transaction: the queued SET runs at EXEC, whose reply moves the
	// epoch again; GETs inside are queued, not answered.
	c.do("SET", "k", "before")
	c.do("GET", "k")
	c.do("GET", "k")
	other := dialRedis(t, srv.Port)
	for _, step := range [][]string{{"MULTI"}, {"SET", "k", "in multi"}, {"GET", "k"}} {
		c.do(step...)
		if got := other.do("GET", "k"); got != bulk("before") {
			t.Fatalf("during MULTI, after %v: GET k on another connection answered %q", step, got)
		}
	}
	if got := c.do("EXEC"); got != "*2\r\n+OK\r\n$8\r\nin multi\r\n" {
		t.Fatalf("EXEC answered %q", got)
	}
	for range 2 {
		if got := other.do("GET", "k"); got != bulk("in multi") {
			t.Fatalf("after EXEC GET k answered %q", got)
		}
	}
	s := redisStats(t, rc)
	if s["hit"] == 0 || s["taint"] != 0 {
		t.Fatalf("stats: %v", s)
	}
	t.Logf("stats: %v", s)
}

// TestRedisLiveTTL: a key that has, or may have, a TTL is never cached;
// it expires in redis-server and GET says so.
func TestRedisLiveTTL(t *testing.T) {
	srv, rc := redisLive(t)
	c := dialRedis(t, srv.Port)
	c.do("SET", "t", "short", "PX", "300")
	c.do("SET", "e", "v")
	c.do("PEXPIRE", "e", "300")
	for range 3 {
		if got := c.do("GET", "t"); got != bulk("short") {
			t.Fatalf("GET t answered %q", got)
		}
		c.do("GET", "e")
	}
	if s := redisStats(t, rc); s["hit"] != 0 || s["fill"] != 0 {
		t.Fatalf("keys with a TTL were cached: %v", s)
	}
	time.Sleep(400 * time.Millisecond)
	for _, k := range []string{"t", "e"} {
		if got := c.do("GET", k); got != "$-1\r\n" {
			t.Fatalf("GET %s after it expired answered %q", k, got)
		}
	}
}

// TestRedisLivePipelined: commands pipelined in one write (GETs that hit,
// GETs that miss, SETs in between) get every reply, in order, right.
func TestRedisLivePipelined(t *testing.T) {
	srv, rc := redisLive(t)
	c := dialRedis(t, srv.Port)
	for i := range 8 {
		c.do("SET", fmt.Sprintf("p%d", i), fmt.Sprintf("v%d", i))
		c.do("GET", fmt.Sprintf("p%d", i))
	}
	model := map[string]string{}
	for i := range 8 {
		model[fmt.Sprintf("p%d", i)] = fmt.Sprintf("v%d", i)
	}
	for round := range 50 {
		var batch []byte
		var want []string
		for j := range 16 {
			k := fmt.Sprintf("p%d", (round+j*3)%8)
			if (round+j)%5 == 0 {
				v := fmt.Sprintf("r%dj%d", round, j)
				batch = append(batch, respCommand("SET", k, v)...)
				model[k] = v
				want = append(want, "+OK\r\n")
				continue
			}
			batch = append(batch, respCommand("GET", k)...)
			want = append(want, bulk(model[k]))
		}
		c.c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.c.Write(batch); err != nil {
			t.Fatal(err)
		}
		for j, w := range want {
			if got := c.reply(); got != w {
				t.Fatalf("round %d, reply %d: %q, want %q", round, j, got, w)
			}
		}
		// One GET alone: answered by the kernel once nothing is outstanding.
		k := fmt.Sprintf("p%d", round%8)
		if got := c.do("GET", k); got != bulk(model[k]) {
			t.Fatalf("round %d: GET %s answered %q, want %q", round, k, got, bulk(model[k]))
		}
	}
	// Split across writes: a command in pieces, byte by byte.
	req := respCommand("GET", "p1")
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	for i := range req {
		if _, err := c.c.Write(req[i : i+1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if got := c.reply(); got != bulk(model["p1"]) {
		t.Fatalf("GET in pieces answered %q", got)
	}
	s := redisStats(t, rc)
	if s["hit"] == 0 || s["taint"] != 0 {
		t.Fatalf("stats: %v", s)
	}
	t.Logf("stats: %v", s)
}
