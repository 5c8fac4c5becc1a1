// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"strings"
	"testing"
)

// TestMissPasses: a get of a key the cache does not hold goes on to the
// server untouched, counted as a get and a miss, and is remembered for the
// fill.
func TestMissPasses(t *testing.T) {
	c := load(t)
	c.wantPass(udpReq(t, 7, "get foo\r\n"))
	if g, m := c.stat(statGet), c.stat(statMiss); g != 1 || m != 1 {
		t.Errorf("gets %d misses %d, want 1 1", g, m)
	}
	var k CacheCacheMissKey
	var v CacheCacheMiss
	n := 0
	it := c.coll.Maps[MissesMap].Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if n != 1 || k.Reqid != 7 || k.Port != swap16(clientPort) {
		t.Errorf("misses: %d entries, last %+v; want one for request 7 from port %d", n, k, clientPort)
	}
}

func swap16(v uint16) uint16 { return v>>8 | v<<8 }

// TestFillThenHit: memcached's VALUE reply leaving the server fills the
// cache; the next get is answered by XDP_TX with exactly that reply, the
// new request id echoed.
func TestFillThenHit(t *testing.T) {
	c := load(t)
	c.missThenFill(7, "foo", 42, "bar")
	v, ok := c.cached("foo")
	if !ok {
		t.Fatalf("no cache entry after the fill (fills %d, stale %d, skipped %d)", c.stat(statFill), c.stat(statFillStale), c.stat(statFillSkip))
	}
	if v.Flags != 42 || v.Vlen != 3 || string(v.Text[:v.Tlen]) != valueReply("foo", 42, "bar") {
		t.Errorf("cache entry flags %d vlen %d text %q", v.Flags, v.Vlen, v.Text[:v.Tlen])
	}
	for _, id := range []uint16{9, 0xfffe} {
		in := udpReq(t, id, "get foo\r\n")
		ret, out := run(t, c.rx, in)
		if ret != xdpTX {
			t.Fatalf("get foo after the fill: %d, want XDP_TX", ret)
		}
		checkHit(t, in, out, valueReply("foo", 42, "bar"))
	}
	if h := c.stat(statHit); h != 2 {
		t.Errorf("hits %d, want 2", h)
	}
}

// TestHitSizes: keys and values from 1 byte to the limits (250, 1024),
// odd and even lengths (the checksum's byte lanes), binary data.
func TestHitSizes(t *testing.T) {
	c := load(t)
	data := make([]byte, MaxValue)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for i, sz := range []struct{ k, v int }{{1, 0}, {1, 1}, {2, 2}, {3, 511}, {7, 512}, {8, 513}, {100, 1000}, {249, 1023}, {MaxKey, MaxValue}} {
		key := strings.Repeat(string(rune('a'+i)), sz.k)
		c.missThenFill(uint16(i), key, uint32(i)*1000003, string(data[:sz.v]))
		in := udpReq(t, 100+uint16(i), "get "+key+"\r\n")
		ret, out := run(t, c.rx, in)
		if ret != xdpTX {
			t.Fatalf("key %d bytes value %d bytes: %d, want XDP_TX", sz.k, sz.v, ret)
		}
		checkHit(t, in, out, valueReply(key, uint32(i)*1000003, string(data[:sz.v])))
	}
}

// TestWritesInvalidate: every write command, over TCP or UDP, removes the
// key before the server sees it; the next get passes.
func TestWritesInvalidate(t *testing.T) {
	cmds := []string{
		"set foo 0 0 3\r\nbaz\r\n", "add foo 0 0 3\r\nbaz\r\n", "replace foo 0 0 3\r\nbaz\r\n",
		"append foo 0 0 1\r\nx\r\n", "prepend foo 0 0 1\r\nx\r\n", "cas foo 0 0 1 99\r\nx\r\n",
		"delete foo\r\n", "incr foo 1\r\n", "decr foo 1\r\n", "ms foo 3\r\nbaz\r\n", "md foo\r\n", "ma foo\r\n",
		"flush_all\r\n",
	}
	for _, tcp := range []bool{true, false} {
		for _, cmd := range cmds {
			c := load(t)
			c.missThenFill(1, "foo", 0, "bar")
			c.missThenFill(2, "other", 0, "keep")
			if _, ok := c.cached("foo"); !ok {
				t.Fatal("no fill")
			}
			if tcp {
				c.wantPass(tcpReq(t, cmd))
			} else {
				c.wantPass(udpReq(t, 3, cmd))
			}
			if _, ok := c.cached("foo"); ok {
				t.Errorf("tcp %v %q: foo still cached", tcp, cmd)
			}
			c.wantPass(udpReq(t, 4, "get foo\r\n"))
			_, kept := c.cached("other")
			if flush := strings.HasPrefix(cmd, "flush_all"); kept == flush {
				t.Errorf("tcp %v %q: other cached %v", tcp, cmd, kept)
			}
		}
	}
}

// TestStaleFillRefused: a write between the miss and the reply makes the
// reply stale: it must not fill, else the old value would come back.
func TestStaleFillRefused(t *testing.T) {
	c := load(t)
	c.wantPass(udpReq(t, 7, "get foo\r\n"))
	c.wantPass(tcpReq(t, "set foo 0 0 3\r\nnew\r\n"))
	c.fillFrom(serverReply(t, 7, valueReply("foo", 0, "old")))
	if _, ok := c.cached("foo"); ok {
		t.Fatal("a fill older than a write was accepted")
	}
	if s := c.stat(statFillStale); s != 1 {
		t.Errorf("stale fills %d, want 1", s)
	}
	c.wantPass(udpReq(t, 8, "get foo\r\n"))
	// A get after the write fills as usual.
	c.fillFrom(serverReply(t, 8, valueReply("foo", 0, "new")))
	if _, ok := c.cached("foo"); !ok {
		t.Fatal("a fill after the write was refused")
	}
	// So does flush_all: a fill from before it is stale.
	c.wantPass(udpReq(t, 9, "get bar\r\n"))
	c.wantPass(tcpReq(t, "flush_all\r\n"))
	c.fillFrom(serverReply(t, 9, valueReply("bar", 0, "old")))
	if n := c.entries(); n != 0 {
		t.Fatalf("%d entries after flush_all and a stale fill", n)
	}
}

// TestFillNeedsMiss: a VALUE reply that answers no recorded miss (another
// client, another request id, or no get at all) fills nothing.
func TestFillNeedsMiss(t *testing.T) {
	c := load(t)
	c.fillFrom(serverReply(t, 7, valueReply("foo", 0, "bar")))
	c.wantPass(udpReq(t, 7, "get foo\r\n"))
	c.fillFrom(serverReply(t, 8, valueReply("foo", 0, "bar")))
	// The reply is for the right request but another key.
	c.fillFrom(serverReply(t, 7, valueReply("fop", 0, "bar")))
	if n := c.entries(); n != 0 {
		t.Fatalf("%d entries from replies to no miss", n)
	}
	if s := c.stat(statFillNoMiss); s != 2 {
		t.Errorf("fills without a miss %d, want 2", s)
	}
}

// TestOversizeAndOddPass: what the cache does not handle goes to the
// server untouched and changes nothing.
func TestOversizeAndOddPass(t *testing.T) {
	c := load(t)
	c.missThenFill(1, "foo", 0, "bar")
	long := strings.Repeat("k", MaxKey+1)
	for _, in := range [][]byte{
		udpReq(t, 2, "get "+long+"\r\n"),
		udpReq(t, 2, "get foo bar\r\n"),
		udpReq(t, 2, "gets foo\r\n"),
		udpReq(t, 2, "get foo\n"),
		udpReq(t, 2, "get foo\r\nget foo\r\n"),
		udpReq(t, 2, "GET foo\r\n"),
		udpReq(t, 2, "get fo\x01\r\n"),
		udpReq(t, 2, "get \r\n"),
		frame(t, false, clientMAC, serverMAC, clientIP, serverIP, clientPort, Port, append(FrameHeader(2, 0, 2, 0), "get foo\r\n"...)),
		frame(t, false, clientMAC, serverMAC, clientIP, serverIP, clientPort, Port, append(FrameHeader(2, 1, 1, 0), "get foo\r\n"...)),
		frame(t, false, clientMAC, serverMAC, clientIP, serverIP, clientPort, Port+1, append(FrameHeader(2, 0, 1, 0), "get foo\r\n"...)),
		tcpReq(t, "get foo\r\n"),
		tcpReq(t, "set "+long+" 0 0 1\r\nx\r\n"),
	} {
		c.wantPass(in)
	}
	if _, ok := c.cached("foo"); !ok || c.entries() != 1 {
		t.Fatalf("cache changed: foo cached %v, %d entries", ok, c.entries())
	}
	// A value over 1 KiB, or a key over 250 bytes, is not filled.
	big := strings.Repeat("v", MaxValue+1)
	c.missThenFill(3, "big", 0, big)
	c.wantPass(udpReq(t, 4, "get big2\r\n"))
	c.fillFrom(serverReply(t, 4, valueReply(long, 0, "x")))
	if _, ok := c.cached("big"); ok || c.entries() != 1 {
		t.Errorf("an oversize reply was cached: %d entries", c.entries())
	}
	if s := c.stat(statFillSkip); s != 2 {
		t.Errorf("skipped fills %d, want 2", s)
	}
	// A multi-key reply, a cas reply ("gets"), and a malformed one fill nothing.
	for i, text := range []string{
		"VALUE x 0 1\r\na\r\nVALUE y 0 1\r\nb\r\nEND\r\n",
		"VALUE x 0 1 77\r\na\r\nEND\r\n",
		"VALUE x 0 2\r\na\r\nEND\r\n",
		"VALUE x 0 1\r\nab\r\nEND\r\n",
		"VALUE x 0 1\r\na\r\nEND\r\nX",
		"VALUE x 99999999999 1\r\na\r\nEND\r\n",
		"END\r\n",
	} {
		c.wantPass(udpReq(t, 10+uint16(i), "get x\r\n"))
		c.fillFrom(serverReply(t, 10+uint16(i), text))
	}
	if _, ok := c.cached("x"); ok || c.entries() != 1 {
		t.Fatalf("malformed replies filled: %d entries", c.entries())
	}
}

func TestReadStatsNamesEveryCounter(t *testing.T) {
	c := load(t)
	c.get(1, "nothing-here")
	st, err := ReadStats(c.coll.Maps[StatsMap])
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]uint64{}
	for _, s := range st {
		byName[s.Name] = s.Value
	}
	if byName["get"] != 1 || byName["miss"] != 1 || byName["hit"] != 0 {
		t.Fatalf("after one missing get: %v", byName)
	}
	if int(c.coll.Maps[StatsMap].MaxEntries()) < len(StatNames) {
		t.Fatalf("stats map has %d slots, StatNames %d", c.coll.Maps[StatsMap].MaxEntries(), len(StatNames))
	}
}

// TestFillStoresOnlyItsOwnBytes: an entry holds its reply text and zeros
// after it, never bytes of an earlier, longer reply left in the per-CPU
// scratch (another key's data).
func TestFillStoresOnlyItsOwnBytes(t *testing.T) {
	c := load(t)
	c.missThenFill(1, "long", 0, strings.Repeat("secret", 100))
	c.missThenFill(2, "short", 0, "x")
	v, ok := c.cached("short")
	if !ok {
		t.Fatal("short not cached")
	}
	if tail := v.Text[v.Tlen:]; strings.Trim(string(tail[:]), "\x00") != "" {
		t.Fatalf("short's entry carries bytes past its %d-byte text: %q", v.Tlen, strings.TrimRight(string(tail[:]), "\x00"))
	}
}
