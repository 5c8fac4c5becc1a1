// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// fakeRedis is a few commands of Redis (GET, SET, DEL, EXISTS, GETRANGE
// key 0 -1, PING) in Go, one Write per reply as redis-server does: for
// the kernels of the matrix, whose guests have no redis-server, so that
// the live path (sock_ops, sk_skb, sk_msg) is exercised on each.
type fakeRedis struct {
	ln   net.Listener
	mu   sync.Mutex
	data map[string]string
	wg   sync.WaitGroup
}

// startFakeRedis listens on a free loopback port from inside the cgroup
// cg (so that the connections it accepts are that cgroup's), or from the
// test's own when cg is "".
func startFakeRedis(t testing.TB, cg string) *fakeRedis {
	t.Helper()
	var (
		ln  net.Listener
		err error
	)
	listen := func() { ln, err = net.Listen("tcp", "127.0.0.1:0") }
	if cg == "" {
		listen()
	} else {
		bpftest.InCgroup(t, cg, listen)
	}
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{ln: ln, data: map[string]string{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	return f
}

func (f *fakeRedis) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// stop closes the listener; connections end when their clients close.
func (f *fakeRedis) stop() { f.ln.Close() }

func (f *fakeRedis) serve(c net.Conn) {
	defer c.Close()
	rd := bufio.NewReader(c)
	for {
		args, err := readCommand(rd)
		if err != nil {
			return
		}
		if _, err := c.Write([]byte(f.do(args))); err != nil {
			return
		}
	}
}

func readCommand(rd *bufio.Reader) ([]string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		h, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l, err := strconv.Atoi(strings.TrimSpace(h[1:]))
		if err != nil {
			return nil, err
		}
		b := make([]byte, l+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:l])
	}
	return args, nil
}

func (f *fakeRedis) do(args []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch strings.ToUpper(args[0]) {
	case "PING":
		return "+PONG\r\n"
	case "SET":
		f.data[args[1]] = args[2]
		return "+OK\r\n"
	case "GET", "GETRANGE":
		v, ok := f.data[args[1]]
		if !ok {
			if strings.ToUpper(args[0]) == "GETRANGE" {
				return "$0\r\n\r\n"
			}
			return "$-1\r\n"
		}
		return bulk(v)
	case "EXISTS":
		if _, ok := f.data[args[1]]; ok {
			return ":1\r\n"
		}
		return ":0\r\n"
	case "DEL":
		n := 0
		for _, k := range args[1:] {
			if _, ok := f.data[k]; ok {
				delete(f.data, k)
				n++
			}
		}
		return fmt.Sprintf(":%d\r\n", n)
	}
	return "-ERR unknown command\r\n"
}

// TestRedisLiveKernel: the live path on whatever kernel runs the test
// (the matrix's guests included), against fakeRedis: hits answered in
// the kernel with the server's exact bytes, values shorter and longer
// than their requests, invalidation, pipelining, a connection that goes
// on working.
func TestRedisLiveKernel(t *testing.T) {
	cg := bpftest.Cgroup(t)
	f := startFakeRedis(t, cg)
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
	for _, v := range []string{"", "x", "hello", strings.Repeat("v", 200), strings.Repeat("w", RedisMaxValue), "a\r\nb"} {
		if got := c.do("SET", "k", v); got != "+OK\r\n" {
			t.Fatalf("SET answered %q", got)
		}
		for i := range 4 {
			if got := c.do("GET", "k"); got != bulk(v) {
				t.Fatalf("GET %d of a %d-byte value answered %.60q (stats %v)", i, len(v), got, redisStats(t, rc))
			}
		}
		if got := c.do("EXISTS", "k"); got != ":1\r\n" {
			t.Fatalf("EXISTS answered %q", got)
		}
	}
	var batch []byte
	for range 8 {
		batch = append(batch, respCommand("GET", "k")...)
	}
	c.c.Write(batch)
	for range 8 {
		if got := c.reply(); got != bulk("a\r\nb") {
			t.Fatalf("pipelined GET answered %q", got)
		}
	}
	c.do("DEL", "k")
	if got := c.do("GET", "k"); got != "$-1\r\n" {
		t.Fatalf("GET after DEL answered %q", got)
	}
	s := redisStats(t, rc)
	if s["hit"] < 18 || s["taint"] != 0 {
		t.Fatalf("stats %v", s)
	}
	t.Logf("stats %v", s)
}
