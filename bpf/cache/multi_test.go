// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"strings"
	"testing"
)

// multiText is what memcached answers a multi-key get whose keys all hit:
// each key's VALUE block, then one END.
func multiText(vals ...[2]string) string {
	var b strings.Builder
	for _, kv := range vals {
		b.WriteString(strings.TrimSuffix(valueReply(kv[0], 1, kv[1]), "END\r\n"))
	}
	return b.String() + "END\r\n"
}

// TestMultiGetHit: "get k1 ... kn" with every key cached is answered with
// the VALUE blocks in request order and one END, byte for byte what
// memcached answers; odd and even lengths put the pieces on both
// checksum lanes; a key may repeat.
func TestMultiGetHit(t *testing.T) {
	c := load(t)
	vals := map[string]string{"a": "1", "bb": "22", "ccc": "333", "dddd": "", "e": strings.Repeat("x", 301), "f": "ff", "g": "g", "h": "hhh", "i": "i"}
	for i, k := range []string{"a", "bb", "ccc", "dddd", "e", "f", "g", "h", "i"} {
		c.missThenFill(uint16(i), k, 1, vals[k])
	}
	for _, keys := range [][]string{
		{"a", "bb"}, {"bb", "a"}, {"ccc", "dddd", "e"}, {"a", "a"}, {"e", "ccc", "bb", "a"},
		{"a", "bb", "ccc", "dddd", "e", "f", "g", "h"}, // the limit: 8 keys
	} {
		var want [][2]string
		for _, k := range keys {
			want = append(want, [2]string{k, vals[k]})
		}
		in := udpReq(t, 77, "get "+strings.Join(keys, " ")+"\r\n")
		ret, out := run(t, c.rx, in)
		if ret != xdpTX {
			t.Fatalf("get %v: verdict %d, want XDP_TX", keys, ret)
		}
		checkHit(t, in, out, multiText(want...))
	}
	if n := c.stat(statGetMulti); n != 6 {
		t.Errorf("multi-key gets %d, want 6", n)
	}
	// Nine keys: past the limit, passed.
	c.wantPass(udpReq(t, 78, "get a bb ccc dddd e f g h i\r\n"))
	if n := c.stat(statPassMany); n != 1 {
		t.Errorf("pass_many %d, want 1", n)
	}
}

// TestMultiGetMissPasses: one key missing passes the whole request; the
// miss is counted but not recorded, so memcached's reply (several VALUE
// blocks) fills nothing.
func TestMultiGetMissPasses(t *testing.T) {
	c := load(t)
	c.missThenFill(1, "foo", 0, "bar")
	misses := c.stat(statMiss)
	c.wantPass(udpReq(t, 9, "get foo nope\r\n"))
	c.wantPass(udpReq(t, 10, "get nope foo\r\n"))
	if n := c.stat(statMiss); n != misses+2 {
		t.Errorf("misses %d, want %d", n, misses+2)
	}
	c.fillFrom(serverReply(t, 9, "VALUE foo 0 3\r\nbar\r\nEND\r\n"))
	c.fillFrom(serverReply(t, 10, "VALUE foo 0 3\r\nbar\r\nVALUE nope 0 1\r\nx\r\nEND\r\n"))
	if _, ok := c.cached("nope"); ok || c.entries() != 1 {
		t.Fatalf("a multi-key miss filled: %d entries", c.entries())
	}
	if n := c.stat(statFillNoMiss); n != 2 {
		t.Errorf("fill_no_miss %d, want 2 (no miss recorded for a multi-key get)", n)
	}
}

// TestMultiGetMalformedPasses: spacing memcached would read differently,
// bad bytes, and replies too long for the frame pass untouched.
func TestMultiGetMalformedPasses(t *testing.T) {
	c := load(t)
	big := strings.Repeat("v", MaxValue)
	for i, k := range []string{"a", "b", "c", "d"} {
		c.missThenFill(uint16(i), k, 0, big)
	}
	c.missThenFill(5, "x", 0, "1")
	for _, text := range []string{
		"get x  x\r\n", "get x x \r\n", "get  x x\r\n", "get x x\r\r\n", "get x \x01\r\n", "get x\tx\r\n",
		"get x x\n", "get x " + strings.Repeat("k", MaxKey+1) + "\r\n",
		"get a b c d\r\n", // 4 KiB of reply: more than the frame holds
	} {
		c.wantPass(udpReq(t, 9, text))
	}
	if n := c.stat(statHit); n != 0 {
		t.Errorf("hits %d", n)
	}
	if n := c.stat(statPassRoom); n != 1 {
		t.Errorf("pass_room %d, want 1", n)
	}
}
