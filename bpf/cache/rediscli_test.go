// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// hits asks for key on c n times and checks every answer is want and
// that the kernel answered each.
func hits(t *testing.T, rc *RedisCache, c *respConn, who, key, want string, n int) {
	t.Helper()
	for i := range n {
		before := redisStats(t, rc)["hit"]
		if got := c.do("GET", key); got != want {
			t.Fatalf("%s: GET %s answered %q, want %q", who, key, got, want)
		}
		if s := redisStats(t, rc); s["hit"] != before+1 {
			t.Fatalf("%s: GET %s number %d was not a hit: %v", who, key, i, s)
		}
	}
}

// TestRedisLiveCommandDocs: redis-cli's start-up command, COMMAND DOCS,
// whose reply is a large nested aggregate written in many messages,
// neither costs the other connections their cache nor its own
// connection its hits: its reply is counted like any other.
func TestRedisLiveCommandDocs(t *testing.T) {
	srv, rc := redisLive(t)
	a := dialRedis(t, srv.Port)
	a.do("SET", "k", "v")
	a.do("GET", "k")
	hits(t, rc, a, "a", "k", bulk("v"), 2)

	b := dialRedis(t, srv.Port)
	docs := b.do("COMMAND", "DOCS")
	if !strings.HasPrefix(docs, "*") || len(docs) < 10000 {
		t.Fatalf("COMMAND DOCS answered %d bytes: %.80q", len(docs), docs)
	}
	t.Logf("COMMAND DOCS: %d bytes", len(docs))
	hits(t, rc, a, "a after b's COMMAND DOCS", "k", bulk("v"), 3)
	// b itself: the first GET proves it (redis-server answers), the rest hit.
	if got := b.do("GET", "k"); got != bulk("v") {
		t.Fatalf("b: GET k answered %q", got)
	}
	hits(t, rc, b, "b", "k", bulk("v"), 3)
	// More replies on b (COMMAND DOCS again, pipelined with GETs) leave
	// a's hits alone, and b's stream is followed throughout.
	b.c.SetDeadline(time.Now().Add(5 * time.Second))
	var batch []byte
	batch = append(batch, respCommand("GET", "k")...)
	batch = append(batch, respCommand("COMMAND", "DOCS")...)
	batch = append(batch, respCommand("GET", "k")...)
	batch = append(batch, respCommand("COMMAND", "DOCS", "get", "set")...)
	batch = append(batch, respCommand("GET", "k")...)
	if _, err := b.c.Write(batch); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{bulk("v"), docs, bulk("v"), "", bulk("v")} {
		got := b.reply()
		if want != "" && got != want {
			t.Fatalf("b: pipelined reply %d: %.80q, want %.80q", i, got, want)
		}
	}
	hits(t, rc, a, "a after b's pipeline", "k", bulk("v"), 2)
	hits(t, rc, b, "b after its pipeline", "k", bulk("v"), 2)
	// A write on b still invalidates for a.
	b.do("SET", "k", "w")
	if got := a.do("GET", "k"); got != bulk("w") {
		t.Fatalf("a: GET after b's SET answered %q", got)
	}
	hits(t, rc, a, "a after b's SET", "k", bulk("w"), 2)
	s := redisStats(t, rc)
	if s["desync"] != 0 || s["taint"] != 0 {
		t.Fatalf("stats %v", s)
	}
	t.Logf("stats: %v", s)
}

// cliSession is an interactive redis-cli on a pseudo-terminal: only with
// a terminal as its standard input does it ask COMMAND DOCS at start-up
// (for its hints), as a user's redis-cli does.
type cliSession struct {
	t   *testing.T
	cmd *exec.Cmd
	out chan []byte
	buf bytes.Buffer
	pty interface {
		Write([]byte) (int, error)
		Close() error
	}
}

func startCli(t *testing.T, port int) *cliSession {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli is not installed")
	}
	cmd := exec.Command("redis-cli", "-p", strconv.Itoa(port))
	cmd.Env = append(cmd.Environ(), "TERM=dumb", "HOME="+t.TempDir())
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	s := &cliSession{t: t, cmd: cmd, out: make(chan []byte, 64), pty: f}
	go func() {
		for {
			b := make([]byte, 4096)
			n, err := f.Read(b)
			if n > 0 {
				s.out <- b[:n]
			}
			if err != nil {
				close(s.out)
				return
			}
		}
	}()
	t.Cleanup(func() {
		f.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	s.prompt()
	return s
}

// prompt reads the terminal until redis-cli prompts again, and returns
// what it printed before.
func (s *cliSession) prompt() string {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if i := bytes.Index(s.buf.Bytes(), []byte("> ")); i >= 0 && bytes.HasSuffix(bytes.TrimRight(s.buf.Bytes(), " "), []byte(">")) {
			out := s.buf.String()
			s.buf.Reset()
			return out
		}
		select {
		case b, ok := <-s.out:
			if !ok {
				s.t.Fatalf("redis-cli ended: %q", s.buf.String())
			}
			s.buf.Write(b)
		case <-deadline:
			s.t.Fatalf("redis-cli does not prompt: %q", s.buf.String())
		}
	}
}

// do types a command line and returns what redis-cli printed for it.
func (s *cliSession) do(line string) string {
	s.t.Helper()
	if _, err := s.pty.Write([]byte(line + "\r")); err != nil {
		s.t.Fatal(err)
	}
	return s.prompt()
}

// TestRedisLiveRedisCli: an unmodified interactive redis-cli (which sends
// COMMAND DOCS when it starts) leaves the other clients their hits, and
// gets hits itself.
func TestRedisLiveRedisCli(t *testing.T) {
	srv, rc := redisLive(t)
	a := dialRedis(t, srv.Port)
	a.do("SET", "k", "v")
	a.do("GET", "k")
	hits(t, rc, a, "a", "k", bulk("v"), 2)

	cli := startCli(t, srv.Port)
	if info := a.do("INFO", "commandstats"); !strings.Contains(info, "cmdstat_command|docs:calls=1") {
		t.Fatalf("redis-cli did not send COMMAND DOCS at start-up: %q", info)
	}
	hits(t, rc, a, "a with redis-cli connected", "k", bulk("v"), 2)
	for i := range 4 {
		before := redisStats(t, rc)
		out := cli.do("GET k")
		if !strings.Contains(out, `"v"`) {
			t.Fatalf("redis-cli: GET k printed %q", out)
		}
		after := redisStats(t, rc)
		if i > 0 && after["hit"] != before["hit"]+1 {
			t.Errorf("redis-cli: GET k number %d was not a hit: %v", i, after)
		}
		hits(t, rc, a, "a while redis-cli GETs", "k", bulk("v"), 1)
	}
	if out := cli.do("SET k w"); !strings.Contains(out, "OK") {
		t.Fatalf("redis-cli: SET printed %q", out)
	}
	if got := a.do("GET", "k"); got != bulk("w") {
		t.Fatalf("a: GET after redis-cli's SET answered %q", got)
	}
	hits(t, rc, a, "a after redis-cli's SET", "k", bulk("w"), 2)
	if out := cli.do("GET k"); !strings.Contains(out, `"w"`) {
		t.Fatalf("redis-cli: GET k printed %q", out)
	}
	s := redisStats(t, rc)
	if s["desync"] != 0 || s["taint"] != 0 {
		t.Fatalf("stats %v", s)
	}
	t.Logf("stats: %v", s)
}

// misses asks for key on c and checks the answer is want and that
// redis-server answered it.
func misses(t *testing.T, rc *RedisCache, c *respConn, who, key, want string) {
	t.Helper()
	before := redisStats(t, rc)["hit"]
	if got := c.do("GET", key); got != want {
		t.Fatalf("%s: GET %s answered %q, want %q", who, key, got, want)
	}
	if s := redisStats(t, rc); s["hit"] != before {
		t.Fatalf("%s: GET %s was a hit: %v", who, key, s)
	}
}

// TestRedisLiveDesyncLocal: a connection whose replies stop being
// counted (here a former subscriber) gets no hits, but costs the others
// only what its own writes may have changed: at each message redis-server
// writes on it, the keys it wrote are invalidated again (one of these
// messages may be a write's acknowledgement), and everything only once it
// has sent a command that may write any key.
func TestRedisLiveDesyncLocal(t *testing.T) {
	srv, rc := redisLive(t)
	a := dialRedis(t, srv.Port)
	for _, k := range []string{"k", "o"} {
		a.do("SET", k, "v"+k)
		a.do("GET", k)
	}
	d := dialRedis(t, srv.Port)
	if got := d.do("SUBSCRIBE", "ch"); !strings.HasPrefix(got, "*3\r\n$9\r\nsubscribe") {
		t.Fatalf("SUBSCRIBE answered %q", got)
	}
	if got := d.do("UNSUBSCRIBE", "ch"); !strings.HasPrefix(got, "*3\r\n$11\r\nunsubscribe") {
		t.Fatalf("UNSUBSCRIBE answered %q", got)
	}
	if s := redisStats(t, rc); s["desync"] != 1 || s["flush"] != 0 {
		t.Fatalf("after SUBSCRIBE: %v", s)
	}
	hits(t, rc, a, "a", "k", bulk("vk"), 2)
	hits(t, rc, a, "a", "o", bulk("vo"), 2)
	// d gets no hits, and its messages cost a nothing.
	for range 3 {
		misses(t, rc, d, "d", "k", bulk("vk"))
	}
	hits(t, rc, a, "a after d's GETs", "k", bulk("vk"), 1)
	hits(t, rc, a, "a after d's GETs", "o", bulk("vo"), 1)
	// d writes k: invalidated before redis-server sees it, and again at
	// every message on d; o stays cached.
	if got := d.do("SET", "k", "dk"); got != "+OK\r\n" {
		t.Fatalf("d: SET answered %q", got)
	}
	misses(t, rc, a, "a after d's SET", "k", bulk("dk"))
	hits(t, rc, a, "a after d's SET", "k", bulk("dk"), 1)
	hits(t, rc, a, "a after d's SET", "o", bulk("vo"), 1)
	d.do("PING")
	misses(t, rc, a, "a after d's PING", "k", bulk("dk"))
	hits(t, rc, a, "a after d's PING", "k", bulk("dk"), 1)
	hits(t, rc, a, "a after d's PING", "o", bulk("vo"), 1)
	if s := redisStats(t, rc); s["flush"] != 0 {
		t.Fatalf("a desynced connection flushed: %v", s)
	}
	// A command that may write any key: from now on every message on d
	// flushes.
	d.do("FLUSHALL")
	misses(t, rc, a, "a after d's FLUSHALL", "o", "$-1\r\n")
	a.do("SET", "o", "again")
	a.do("GET", "o")
	hits(t, rc, a, "a after its SET", "o", bulk("again"), 1)
	d.do("PING")
	misses(t, rc, a, "a after d's PING", "o", bulk("again"))
	t.Logf("stats: %v", redisStats(t, rc))
}

// TestRedisLiveLongPipeline: thousands of commands in one write (one skb
// of tens of kilobytes; redis-benchmark -P 1000 sends such) are framed
// one by one, and their replies (messages of tens of kilobytes) counted:
// the connection is neither given up on (which would flush everything at
// each of its skbs and stop all fills) nor desynced.
func TestRedisLiveLongPipeline(t *testing.T) {
	srv, rc := redisLive(t)
	a := dialRedis(t, srv.Port)
	a.do("SET", "k", "v")
	a.do("GET", "k")
	hits(t, rc, a, "a", "k", bulk("v"), 1)
	b := dialRedis(t, srv.Port)
	var batch []byte
	var want []string
	for i := range 3000 {
		if i%100 == 99 {
			v := fmt.Sprintf("w%d", i)
			batch = append(batch, respCommand("SET", "p", v)...)
			want = append(want, "+OK\r\n")
			continue
		}
		batch = append(batch, respCommand("GET", "k")...)
		want = append(want, bulk("v"))
	}
	b.c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() { _, err := b.c.Write(batch); errc <- err }()
	for i, w := range want {
		if got := b.reply(); got != w {
			t.Fatalf("b: reply %d: %q, want %q", i, got, w)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	hits(t, rc, a, "a after b's pipeline", "k", bulk("v"), 2)
	if got := b.do("GET", "p"); got != bulk("w2999") {
		t.Fatalf("b: GET p answered %q", got)
	}
	hits(t, rc, b, "b after its pipeline", "p", bulk("w2999"), 2)
	s := redisStats(t, rc)
	if s["taint"] != 0 || s["desync"] != 0 || s["flush"] != 0 {
		t.Fatalf("stats %v", s)
	}
	t.Logf("stats: %v", s)
}

// TestRedisLiveClientLibrarySetup: what client libraries send when they
// connect (go-redis v9: HELLO 3 and CLIENT SETINFO, pipelined; redis-py
// 5: CLIENT SETINFO) leaves the connection counted: RESP3 replies are
// followed, and its GETs hit.
func TestRedisLiveClientLibrarySetup(t *testing.T) {
	srv, rc := redisLive(t)
	c := dialRedis(t, srv.Port)
	var batch []byte
	for _, cmd := range [][]string{{"HELLO", "3"}, {"CLIENT", "SETINFO", "LIB-NAME", "go-redis"},
		{"CLIENT", "SETINFO", "LIB-VER", "9.7.0"}, {"CLIENT", "SETNAME", "lib"}} {
		batch = append(batch, respCommand(cmd...)...)
	}
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(batch); err != nil {
		t.Fatal(err)
	}
	if got := c.reply(); !strings.HasPrefix(got, "%") || !strings.Contains(got, "$5\r\nproto\r\n:3\r\n") {
		t.Fatalf("HELLO 3 answered %q", got)
	}
	for range 3 {
		c.reply() // +OK, or -ERR where redis-server has no CLIENT SETINFO (before 7.2)
	}
	c.do("SET", "k", "v")
	if got := c.do("GET", "k"); got != bulk("v") {
		t.Fatalf("GET k answered %q", got)
	}
	hits(t, rc, c, "RESP3 client", "k", bulk("v"), 3)
	if got := c.do("GET", "nope"); got != "_\r\n" {
		t.Fatalf("GET nope answered %q", got)
	}
	if got := c.do("HGETALL", "nope"); got != "%0\r\n" {
		t.Fatalf("HGETALL nope answered %q", got)
	}
	hits(t, rc, c, "RESP3 client", "k", bulk("v"), 1)
	s := redisStats(t, rc)
	if s["desync"] != 0 || s["taint"] != 0 || s["flush"] != 0 {
		t.Fatalf("stats %v", s)
	}
	t.Logf("stats: %v", s)
}

// TestRedisLiveUncountedReplies: CLIENT REPLY SKIP (a command without a
// reply) and RESP3 tracking (pushes nobody asked for) desync their own
// connection, which then gets no hits and no wrong answer, while the
// others keep their hits.
func TestRedisLiveUncountedReplies(t *testing.T) {
	srv, rc := redisLive(t)
	a := dialRedis(t, srv.Port)
	for _, k := range []string{"k", "o"} {
		a.do("SET", k, "v"+k)
		a.do("GET", k)
	}
	s := dialRedis(t, srv.Port)
	s.do("GET", "k")
	hits(t, rc, s, "s", "k", bulk("vk"), 1)
	s.send("CLIENT", "REPLY", "SKIP")
	s.send("SET", "k", "skipped")
	if got := s.do("GET", "k"); got != bulk("skipped") {
		t.Fatalf("s: GET after a reply skipped answered %q", got)
	}
	for range 2 {
		misses(t, rc, s, "s after CLIENT REPLY SKIP", "k", bulk("skipped"))
	}
	misses(t, rc, a, "a", "k", bulk("skipped"))
	hits(t, rc, a, "a", "k", bulk("skipped"), 1)
	hits(t, rc, a, "a", "o", bulk("vo"), 1)

	tr := dialRedis(t, srv.Port)
	if got := tr.do("HELLO", "3"); !strings.HasPrefix(got, "%") {
		t.Fatalf("HELLO 3 answered %q", got)
	}
	tr.do("CLIENT", "TRACKING", "ON")
	tr.do("GET", "o")
	hits(t, rc, tr, "tracking client", "o", bulk("vo"), 1)
	a.do("SET", "o", "new")
	// tr is pushed an invalidation, then answers its GET.
	got := tr.do("GET", "o")
	if strings.HasPrefix(got, ">") {
		got = tr.reply()
	}
	if got != bulk("new") {
		t.Fatalf("tracking client: GET o after the push answered %q", got)
	}
	if st := redisStats(t, rc); st["desync"] != 2 {
		t.Fatalf("after a push: %v", st)
	}
	misses(t, rc, tr, "tracking client after a push", "o", bulk("new"))
	misses(t, rc, a, "a", "o", bulk("new"))
	hits(t, rc, a, "a", "o", bulk("new"), 1)
	hits(t, rc, a, "a", "k", bulk("skipped"), 1)
	if st := redisStats(t, rc); st["flush"] != 0 || st["taint"] != 0 {
		t.Fatalf("stats %v", st)
	}
}

// TestRedisLiveMultiRefusedGet: a GET redis-server refuses inside MULTI
// (wrong arity) leaves the transaction open, and the GETs after it are
// queued by redis-server, never answered by the kernel.
func TestRedisLiveMultiRefusedGet(t *testing.T) {
	srv, rc := redisLive(t)
	c := dialRedis(t, srv.Port)
	c.do("SET", "k", "v")
	c.do("GET", "k")
	hits(t, rc, c, "c", "k", bulk("v"), 1)
	c.do("MULTI")
	if got := c.do("GET", "k", "extra"); !strings.HasPrefix(got, "-ERR") {
		t.Fatalf("GET k extra answered %q", got)
	}
	if got := c.do("GET", "k"); got != "+QUEUED\r\n" {
		t.Fatalf("GET k inside MULTI answered %q", got)
	}
	if got := c.do("EXEC"); !strings.HasPrefix(got, "-EXECABORT") {
		t.Fatalf("EXEC answered %q", got)
	}
	if got := c.do("GET", "k"); got != bulk("v") {
		t.Fatalf("GET k after EXEC answered %q", got)
	}
}

// TestRedisLiveInlineClient: a client that sends inline commands (telnet,
// nc) cannot be framed, and any of its bytes may write any key or give it
// a TTL: everything cached goes at each of its packets, so its write is
// never answered stale, and the cache fills no more (until it is
// reloaded: a key it gave a TTL must never be cached).
func TestRedisLiveInlineClient(t *testing.T) {
	srv, rc := redisLive(t)
	a := dialRedis(t, srv.Port)
	a.do("SET", "k", "v1")
	a.do("GET", "k")
	hits(t, rc, a, "a", "k", bulk("v1"), 1)

	in := dialRedis(t, srv.Port).c
	in.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := in.Write([]byte("SET k v2\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := in.Read(buf); err != nil || string(buf[:n]) != "+OK\r\n" {
		t.Fatalf("inline SET: %q, %v", buf[:n], err)
	}
	if s := redisStats(t, rc); s["taint"] != 1 {
		t.Fatalf("an inline command did not taint its connection: %v", s)
	}
	for i := range 3 {
		if got := a.do("GET", "k"); got != bulk("v2") {
			t.Fatalf("a: GET k number %d after the inline SET: %q", i, got)
		}
	}
	in.Close()
	for i := range 3 {
		if got := a.do("GET", "k"); got != bulk("v2") {
			t.Fatalf("a: GET k number %d after the inline client left: %q", i, got)
		}
	}
	if s := redisStats(t, rc); s["fill"] != 1 || s["hit"] != 1 {
		t.Fatalf("the cache filled or hit after an inline client: %v", s)
	}
}

// TestRedisLiveInlinePing: the inline PING of health checks (HAProxy's
// tcp-check, scripts) is the one inline command understood: it neither
// taints its connection nor stops the fills, and its PONG is counted, so
// a GET behind it on the same connection is answered in order.
func TestRedisLiveInlinePing(t *testing.T) {
	srv, rc := redisLive(t)
	a := dialRedis(t, srv.Port)
	a.do("SET", "k", "v1")
	a.do("GET", "k")
	hits(t, rc, a, "a", "k", bulk("v1"), 1)

	hc := dialRedis(t, srv.Port).c
	hc.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	for _, ping := range []string{"PING\r\n", "ping\r\n", "PING\n"} {
		if _, err := hc.Write([]byte(ping)); err != nil {
			t.Fatal(err)
		}
		if n, err := hc.Read(buf); err != nil || string(buf[:n]) != "+PONG\r\n" {
			t.Fatalf("inline %q: %q, %v", ping, buf[:n], err)
		}
	}
	// A PING and a GET in one write: the GET waits for the PONG.
	if _, err := hc.Write(append([]byte("PING\r\n"), respCommand("GET", "k")...)); err != nil {
		t.Fatal(err)
	}
	want := "+PONG\r\n" + bulk("v1")
	got := ""
	for len(got) < len(want) {
		n, err := hc.Read(buf)
		if err != nil {
			t.Fatalf("PING then GET: %q so far: %v", got, err)
		}
		got += string(buf[:n])
	}
	if got != want {
		t.Fatalf("PING then GET answered %q, want %q", got, want)
	}
	if s := redisStats(t, rc); s["taint"] != 0 || s["desync"] != 0 {
		t.Fatalf("inline PINGs gave up on their connection: %v", s)
	}
	a.do("SET", "k", "v2")
	a.do("GET", "k")
	hits(t, rc, a, "a after the health check", "k", bulk("v2"), 2)
	t.Logf("stats: %v", redisStats(t, rc))
}
