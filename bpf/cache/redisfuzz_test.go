// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRedisLiveRESP feeds arbitrary bytes (truncated, oversize, bad
// lengths, inline, non-ASCII) to a real redis-server through the live
// cache, on a connection of their own, with "foo" and "bar" cached. Once
// redis-server has closed that connection, every GET of foo and bar,
// answered by the kernel or not, is byte for byte what redis-server
// holds, and a connection that sends only good commands still works.
// Without -fuzz it runs the seeds.
func FuzzRedisLiveRESP(f *testing.F) {
	srv, rc := redisLive(f)
	for _, seed := range [][]byte{
		respCommand("GET", "foo"), respCommand("get", "bar"), respCommand("GET", "nope"), respCommand("SET", "foo", "x"),
		respCommand("DEL", "foo", "bar"), respCommand("FLUSHALL"), respCommand("PING"), respCommand("GET", "foo", "x"),
		append(respCommand("GET", "foo"), respCommand("SET", "bar", "y")...),
		[]byte("*2\r\n$3\r\nGET\r\n$9\r\nfoo\r\n"), []byte("*2\r\n$3\r\nGET\r\n$3\r\nfo\xff\r\n"),
		[]byte("GET foo\r\n"), []byte("SET foo inline\r\n"), []byte("*99999999999\r\n"), []byte("*2\r\n$-1\r\n"),
		[]byte("*1\r\n$4\r\nPI"), []byte("*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$100000\r\nabc"), []byte("*0\r\n"),
		[]byte("$3\r\nGET\r\n"), []byte("*2\r\n$3\r\nGET\r\n$3\r\nfoo\r"), []byte("\x00\xff*\r\n"),
		[]byte("*2\r\n$3\r\nGET\r\n$-5\r\nfoo\r\n"), []byte("*2\r\n$3\r\nSET\r\n$3\r\nfoo\r\n"),
		[]byte(strings.Repeat(string(respCommand("GET", "foo")), 40)),
		[]byte("*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$2\r\ndb\r\n*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n"),
		[]byte("*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$1\r\nm\r\n*1\r\n$4\r\nEXEC\r\n"),
		// Long nested replies, RESP3, replies missing or unasked.
		append(respCommand("COMMAND", "DOCS"), respCommand("GET", "foo")...),
		append(respCommand("HELLO", "3"), respCommand("GET", "foo")...),
		append(append(respCommand("CLIENT", "REPLY", "SKIP"), respCommand("SET", "foo", "s")...), respCommand("GET", "foo")...),
		append(append(respCommand("HELLO", "3"), respCommand("CLIENT", "TRACKING", "ON")...), respCommand("GET", "foo")...),
		[]byte(strings.Repeat(string(respCommand("GET", "foo")), 180)),
	} {
		f.Add(seed)
	}
	ctl := dialRedis(f, srv.Port)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) == 0 || len(payload) > 4096 {
			return
		}
		ctl.t = t
		for _, k := range []string{"foo", "bar"} {
			ctl.do("SET", k, "value of "+k) // and no TTL
		}
		// A connection the last input made unframeable stopped all
		// fills (it might have given some key a TTL); that connection is
		// gone and foo and bar have none: let them be cached again.
		if err := rc.Objs.RedisMeta.Put(uint32(1), uint64(0)); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"foo", "bar"} {
			ctl.do("GET", k)
			ctl.do("GET", k)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port)), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		c.Write(payload)
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
		// Wait until redis-server has seen the connection go: whatever
		// it wrote is done.
		for i := 0; ; i++ {
			info := ctl.do("INFO", "clients")
			if strings.Contains(info, "connected_clients:1\r\n") {
				break
			}
			if i > 200 {
				t.Fatalf("redis-server still has the fuzz connection: %q", info)
			}
			time.Sleep(5 * time.Millisecond)
		}
		ctl.do("SELECT", "0")
		for range 2 {
			for _, k := range []string{"foo", "bar", "nope"} {
				if got, want := ctl.do("GET", k), ctl.truth(k); got != want {
					t.Fatalf("after %q: GET %s answered %q, redis-server holds %q (stats %v)", payload, k, got, want, redisStats(t, rc))
				}
			}
		}
	})
}
