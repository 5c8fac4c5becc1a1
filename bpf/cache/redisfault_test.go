// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// conns counts the connection records the cache holds.
func conns(t *testing.T, rc *RedisCache) int {
	t.Helper()
	n := 0
	var k RedisR_sockkey
	var v RedisR_conn
	it := rc.Objs.RedisConns.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRedisLiveClientGoesMidCommand: a client that disconnects in the
// middle of a command (a SET whose value never comes) leaves nothing
// behind: its record goes with its socket, and other connections are
// answered right.
func TestRedisLiveClientGoesMidCommand(t *testing.T) {
	srv, rc := redisLive(t)
	c := dialRedis(t, srv.Port)
	c.do("SET", "k", "v1")
	c.do("GET", "k")
	for _, part := range []string{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc", "*3\r\n$3\r\nSE", "*2\r\n$3\r\nGET\r\n$1\r\nk\r"} {
		d, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port)))
		if err != nil {
			t.Fatal(err)
		}
		d.Write([]byte(part))
		time.Sleep(20 * time.Millisecond)
		d.Close()
	}
	deadline := time.Now().Add(3 * time.Second)
	for conns(t, rc) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection records, want 1 (the test's own)", conns(t, rc))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 3 {
		if got, want := c.do("GET", "k"), c.truth("k"); got != want || got != bulk("v1") {
			t.Fatalf("GET k answered %q, redis-server holds %q", got, want)
		}
	}
	if s := redisStats(t, rc); s["hit"] == 0 {
		t.Fatalf("stats %v", s)
	}
}

// TestRedisLiveServerRestart: redis-server restarted on the same port
// (its data gone) while the cache stays attached: nothing the old one
// held is answered, and new connections are cached again.
func TestRedisLiveServerRestart(t *testing.T) {
	srv, rc := redisLive(t)
	port := srv.Port
	c := dialRedis(t, port)
	c.do("SET", "k", "old")
	for range 3 {
		c.do("GET", "k")
	}
	if s := redisStats(t, rc); s["hit"] == 0 {
		t.Fatalf("nothing cached before the restart: %v", s)
	}
	c.c.Close()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// The new one in the same cgroup, where the cache is attached.
	dir := t.TempDir()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	startInCgroup(t, cmd, srv.Cgroup)
	var d *respConn
	for i := 0; ; i++ {
		nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			nc.Close()
			break
		}
		if i > 200 {
			t.Fatalf("the new redis-server does not listen: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d = dialRedis(t, port)
	for range 3 {
		if got := d.do("GET", "k"); got != "$-1\r\n" {
			t.Fatalf("after the restart GET k answered %q: the old server's value", got)
		}
	}
	before := redisStats(t, rc)["hit"]
	d.do("SET", "k", "new")
	for range 3 {
		if got := d.do("GET", "k"); got != bulk("new") {
			t.Fatalf("GET k answered %q", got)
		}
	}
	if redisStats(t, rc)["hit"] == before {
		t.Fatalf("nothing answered by the kernel after the restart: %v", redisStats(t, rc))
	}
}

// TestRedisLiveDetachUnderLoad: 8 clients GET and SET while the cache is
// detached under them: every reply stays right (no stale read after an
// acknowledged SET), nothing hangs, and the clients go on afterwards.
func TestRedisLiveDetachUnderLoad(t *testing.T) {
	srv, rc := redisLive(t)
	const clients, keys = 8, 64
	var acked [keys]atomic.Int64
	keyName := func(k int) string { return fmt.Sprintf("detach:%d", k) }
	deadline := time.Now().Add(2 * time.Second)
	errs := make(chan error, clients)
	var gets, sets atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- staleClient(srv.Port, i, clients, keys, &acked, keyName, deadline, &gets, &sets)
		}()
	}
	time.Sleep(700 * time.Millisecond)
	hits := redisStats(t, rc)["hit"]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rc.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("detach hangs")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d GETs, %d SETs, %d hits before detach", gets.Load(), sets.Load(), hits)
	if hits == 0 {
		t.Fatal("no hits before detach")
	}
}

// TestRedisLivePubSub: a subscriber's connection stops being counted
// (pushes come unasked) but keeps working, and the other connections
// keep their hits and fills.
func TestRedisLivePubSub(t *testing.T) {
	srv, rc := redisLive(t)
	sub := dialRedis(t, srv.Port)
	if got := sub.do("SUBSCRIBE", "ch"); got != "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n" {
		t.Fatalf("SUBSCRIBE answered %q", got)
	}
	pub := dialRedis(t, srv.Port)
	if got := pub.do("PUBLISH", "ch", "hello"); got != ":1\r\n" {
		t.Fatalf("PUBLISH answered %q", got)
	}
	if got := sub.reply(); got != "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n" {
		t.Fatalf("the subscriber got %q", got)
	}
	c := dialRedis(t, srv.Port)
	c.do("SET", "k", "v")
	for range 3 {
		if got := c.do("GET", "k"); got != bulk("v") {
			t.Fatalf("GET answered %q", got)
		}
	}
	if got := sub.do("UNSUBSCRIBE", "ch"); got != "*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n" {
		t.Fatalf("UNSUBSCRIBE answered %q", got)
	}
	for range 2 {
		if got := sub.do("GET", "k"); got != bulk("v") {
			t.Fatalf("GET on the former subscriber answered %q", got)
		}
	}
	c.do("SET", "k", "w")
	for range 3 {
		if got := c.do("GET", "k"); got != bulk("w") {
			t.Fatalf("GET answered %q", got)
		}
	}
	s := redisStats(t, rc)
	if s["desync"] != 1 || s["taint"] != 0 || s["hit"] < 4 || s["fill"] < 2 {
		t.Fatalf("stats %v", s)
	}
}

// TestRedisLiveAuth: with requirepass, a client that has not
// authenticated gets redis-server's -NOAUTH for a cached key, never the
// value: a connection gets hits only once redis-server itself has
// answered it a GET (and again after each AUTH).
func TestRedisLiveAuth(t *testing.T) {
	bpftest.RequireRoot(t)
	bpftest.HostOnly(t, "redis-server")
	if err := kv.RedisMissing(); err != nil {
		t.Skip(err)
	}
	cg := bpftest.Cgroup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--requirepass", "s3cret")
	startInCgroup(t, cmd, cg)
	for i := 0; ; i++ {
		nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			nc.Close()
			break
		}
		if i > 200 {
			t.Fatalf("redis-server does not listen: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc, err := NewRedisCache(port)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Attach(cg); err != nil {
		t.Fatal(err)
	}
	a := dialRedis(t, port)
	if got := a.do("AUTH", "s3cret"); got != "+OK\r\n" {
		t.Fatalf("AUTH answered %q", got)
	}
	a.do("SET", "k", "secret value")
	for range 3 {
		if got := a.do("GET", "k"); got != bulk("secret value") {
			t.Fatalf("GET answered %q", got)
		}
	}
	if s := redisStats(t, rc); s["hit"] != 2 {
		t.Fatalf("stats %v", s)
	}
	b := dialRedis(t, port)
	for range 3 {
		if got := b.do("GET", "k"); !strings.HasPrefix(got, "-NOAUTH") {
			t.Fatalf("GET without AUTH answered %q", got)
		}
	}
	if got := b.do("AUTH", "wrong"); !strings.HasPrefix(got, "-") {
		t.Fatalf("AUTH wrong answered %q", got)
	}
	if got := b.do("GET", "k"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("GET after a failed AUTH answered %q", got)
	}
}
