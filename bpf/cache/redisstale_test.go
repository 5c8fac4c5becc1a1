// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"fmt"
	"math/rand"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// staleValue is the value of version ver of a key: the version, then
// bytes that depend on it (so a torn or mixed value shows).
func staleValue(key string, ver int64) string {
	return fmt.Sprintf("%d:%s:%s", ver, key, strings.Repeat(string(rune('a'+ver%26)), int(ver%40)))
}

// TestRedisLiveNoStaleReads: 8 clients, Zipf-distributed keys, each
// client the only writer of its own keys. A GET sent after a SET of the
// same key was acknowledged never returns an older version, and every
// value is byte for byte one that was written.
func TestRedisLiveNoStaleReads(t *testing.T) {
	srv, rc := redisLive(t)
	const clients, keys = 8, 64
	var acked [keys]atomic.Int64
	keyName := func(k int) string { return fmt.Sprintf("stale:%d", k) }
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	deadline := time.Now().Add(dur)
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
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := redisStats(t, rc)
	t.Logf("%d GETs, %d SETs; stats %v", gets.Load(), sets.Load(), s)
	if s["hit"] == 0 {
		t.Fatalf("no GET was answered by the kernel: %v", s)
	}
	if s["taint"] != 0 {
		t.Fatalf("connections were given up on: %v", s)
	}
}

func staleClient(port, me, clients, keys int, acked *[64]atomic.Int64, keyName func(int) string,
	deadline time.Time, gets, sets *atomic.Int64) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	rng := rand.New(rand.NewSource(int64(me) + 1))
	zipf := rand.NewZipf(rng, 1.2, 1, uint64(keys-1))
	var ver [64]int64
	do := func(args ...string) (string, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(respCommand(args...)); err != nil {
			return "", err
		}
		return readReply(rd)
	}
	for time.Now().Before(deadline) {
		if rng.Intn(10) == 0 {
			// SET one of this client's own keys.
			k := (rng.Intn(keys/clients))*clients + me
			ver[k]++
			got, err := do("SET", keyName(k), staleValue(keyName(k), ver[k]))
			if err != nil {
				return err
			}
			if got != "+OK\r\n" {
				return fmt.Errorf("SET answered %q", got)
			}
			acked[k].Store(ver[k])
			sets.Add(1)
			continue
		}
		k := int(zipf.Uint64())
		lo := acked[k].Load()
		got, err := do("GET", keyName(k))
		if err != nil {
			return err
		}
		gets.Add(1)
		if got == "$-1\r\n" {
			if lo != 0 {
				return fmt.Errorf("GET %s answered nil after version %d was acknowledged", keyName(k), lo)
			}
			continue
		}
		v, _, ok := strings.Cut(strings.TrimPrefix(got[strings.Index(got, "\r\n")+2:], ""), ":")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("GET %s answered %q", keyName(k), got)
		}
		if got != bulk(staleValue(keyName(k), n)) {
			return fmt.Errorf("GET %s answered %q, not version %d as written", keyName(k), got, n)
		}
		if n < lo {
			return fmt.Errorf("stale read: GET %s answered version %d after version %d was acknowledged", keyName(k), n, lo)
		}
	}
	return nil
}

// TestRedisLiveBenchmarkPipelined: redis-benchmark with -P 16 (SETs, then
// GETs of the same keys) runs to the end against the cache with no error,
// and a pipelined client in the same run gets every reply in order.
func TestRedisLiveBenchmarkPipelined(t *testing.T) {
	srv, rc := redisLive(t)
	for _, test := range []string{"set", "get"} {
		cmd := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(srv.Port), "-t", test,
			"-n", "20000", "-c", "8", "-P", "16", "-r", "100", "-d", "32", "-q")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark -t %s: %v: %s", test, err, out)
		}
		if strings.Contains(strings.ToLower(string(out)), "error") {
			t.Fatalf("redis-benchmark -t %s: %s", test, out)
		}
		t.Logf("redis-benchmark -t %s -P 16: %s", test, strings.TrimSpace(string(out)))
	}
	s := redisStats(t, rc)
	t.Logf("stats %v", s)
	// redis-benchmark does not check values: check ours, pipelined, on
	// the keys it wrote, against redis-server's own (GETRANGE passes).
	c := dialRedis(t, srv.Port)
	for round := range 20 {
		var batch []byte
		var keys []string
		for j := range 16 {
			k := fmt.Sprintf("key:%012d", (round*16+j)%100)
			keys = append(keys, k)
			batch = append(batch, respCommand("GET", k)...)
		}
		c.c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.c.Write(batch); err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(keys))
		for j := range keys {
			got[j] = c.reply()
		}
		for j, k := range keys {
			if want := c.truth(k); got[j] != want {
				t.Fatalf("pipelined GET %s (reply %d) answered %q, redis-server holds %q", k, j, got[j], want)
			}
			// And alone, where the kernel may answer.
			if one := c.do("GET", k); one != got[j] {
				t.Fatalf("GET %s answered %q, pipelined %q", k, one, got[j])
			}
		}
	}
	if s := redisStats(t, rc); s["taint"] != 0 || s["hit"] == 0 {
		t.Fatalf("stats %v", s)
	}
}
