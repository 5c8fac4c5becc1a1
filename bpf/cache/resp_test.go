// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

const respClientPort = 40002

// respReq is a client's TCP segment to Redis (seq 1000, ack 2000).
func respReq(t testing.TB, payload []byte) []byte {
	return frame(t, true, clientMAC, serverMAC, clientIP, serverIP, respClientPort, RedisPort, payload)
}

// respReply is Redis's TCP segment to the client.
func respReply(t testing.TB, payload []byte) []byte {
	return frame(t, true, serverMAC, clientMAC, serverIP, clientIP, RedisPort, respClientPort, payload)
}

func (c *ct) prog(name string) *ebpf.Program { return c.coll.Programs[name] }

func (c *ct) respPass(in []byte) {
	c.t.Helper()
	ret, out := run(c.t, c.prog(RESPProgram), in)
	if ret != xdpPass || !bytes.Equal(out, in) {
		c.t.Fatalf("xdp_cache_resp: verdict %d (changed %v), want XDP_PASS untouched", ret, !bytes.Equal(out, in))
	}
}

func (c *ct) respFill(in []byte) {
	c.t.Helper()
	ret, out := run(c.t, c.prog(RESPFillProgram), in)
	if ret != tcOK || !bytes.Equal(out, in) {
		c.t.Fatalf("tc_cache_resp_fill: verdict %d, want TC_ACT_OK untouched", ret)
	}
}

func (c *ct) respCached(key string) (string, bool) {
	c.t.Helper()
	var k CacheCacheKey
	k.Len = uint32(len(key))
	copy(k.Bytes[:], key)
	var v CacheCacheValue
	if err := c.coll.Maps[RESPCacheMap].Lookup(&k, &v); err != nil {
		return "", false
	}
	return string(v.Text[:v.Tlen]), true
}

// respWrite sends a write and lets Redis's acknowledgement leave.
func (c *ct) respWrite(req []byte) {
	c.t.Helper()
	c.respPass(respReq(c.t, req))
	c.respFill(respReply(c.t, []byte("+OK\r\n")))
}

// respMissThenFill: GET key misses, Redis's bulk reply fills.
func (c *ct) respMissThenFill(key, data string) {
	c.t.Helper()
	c.respPass(respReq(c.t, RESPArray("GET", key)))
	c.respFill(respReply(c.t, RESPBulk(data)))
}

// TestRESPHit: a GET of a cached key is answered by XDP_TX with a TCP
// segment checked field by field: MACs, addresses and ports swapped, seq
// the request's ack, ack the request's seq plus its length, PSH|ACK, no
// options, lengths and both checksums summed here independently, and the
// bulk reply as payload.
func TestRESPHit(t *testing.T) {
	c := load(t)
	for _, data := range []string{"bar", "", "odd!x", string(make([]byte, MaxValue))} {
		c.respMissThenFill("foo", data)
		if got, ok := c.respCached("foo"); !ok || got != string(RESPBulk(data)) {
			t.Fatalf("data %q: resp_cache foo = %q %v after the fill (fills %d stale %d skip %d)", data, got, ok, c.stat(statRESPFill), c.stat(statRESPFillStale), c.stat(statRESPFillSkip))
		}
		for _, cmd := range []string{"GET", "get", "GeT"} {
			req := RESPArray(cmd, "foo")
			in := respReq(t, req)
			ret, out := run(t, c.prog(RESPProgram), in)
			if ret != xdpTX {
				t.Fatalf("%s foo: verdict %d, want XDP_TX", cmd, ret)
			}
			checkRESPHit(t, in, out, len(req), RESPBulk(data))
		}
		// SET invalidates, for the next round.
		c.respWrite(RESPArray("SET", "foo", "x"))
		if _, ok := c.respCached("foo"); ok {
			t.Fatal("SET left foo cached")
		}
	}
	if h := c.stat(statRESPHit); h != 12 {
		t.Errorf("resp hits %d, want 12", h)
	}
	// The memcached cache is another map: untouched.
	if n := c.entries(); n != 0 {
		t.Errorf("memcached cache has %d entries", n)
	}
}

func checkRESPHit(t *testing.T, in, out []byte, reqLen int, payload []byte) {
	t.Helper()
	if !bytes.Equal(out[0:6], in[6:12]) || !bytes.Equal(out[6:12], in[0:6]) {
		t.Errorf("MACs not swapped")
	}
	ip, rip := out[14:34], in[14:34]
	if !bytes.Equal(ip[12:16], rip[16:20]) || !bytes.Equal(ip[16:20], rip[12:16]) || ip[9] != 6 || ip[8] != 64 {
		t.Errorf("IPv4 header %x, request's %x", ip, rip)
	}
	if csum(ip, 0) != 0xffff {
		t.Errorf("IPv4 header checksum wrong")
	}
	if tot := int(binary.BigEndian.Uint16(ip[2:])); tot != 20+20+len(payload) || len(out) != 14+tot {
		t.Errorf("IPv4 total length %d, frame %d bytes, payload %d", tot, len(out), len(payload))
	}
	tcp, rtcp := out[34:54], in[34:54]
	if !bytes.Equal(tcp[0:2], rtcp[2:4]) || !bytes.Equal(tcp[2:4], rtcp[0:2]) {
		t.Errorf("ports not swapped")
	}
	if seq, rack := binary.BigEndian.Uint32(tcp[4:]), binary.BigEndian.Uint32(rtcp[8:]); seq != rack {
		t.Errorf("seq %d, want the request's ack %d", seq, rack)
	}
	if ack, rseq := binary.BigEndian.Uint32(tcp[8:]), binary.BigEndian.Uint32(rtcp[4:]); ack != rseq+uint32(reqLen) {
		t.Errorf("ack %d, want the request's seq %d + %d", ack, rseq, reqLen)
	}
	if tcp[12] != 0x50 || tcp[13] != 0x18 {
		t.Errorf("data offset/flags %#02x %#02x, want 0x50 (5 words) 0x18 (PSH|ACK)", tcp[12], tcp[13])
	}
	seg := out[34:]
	pseudo := append(append([]byte{}, ip[12:20]...), 0, 6, byte(len(seg)>>8), byte(len(seg)))
	if csum(seg, csum(pseudo, 0)) != 0xffff {
		t.Errorf("TCP checksum %#04x wrong", binary.BigEndian.Uint16(tcp[16:]))
	}
	if !bytes.Equal(out[54:], payload) {
		t.Errorf("payload %q, want %q", out[54:], payload)
	}
}

// TestRESPMissAndWrites: misses pass; writes invalidate (one key) or
// flush (several keys, unknown commands, pipelined segments); a write
// between the miss and the reply makes the fill stale; two outstanding
// GETs on a connection fill nothing.
func TestRESPMissAndWrites(t *testing.T) {
	c := load(t)
	c.respPass(respReq(t, RESPArray("GET", "nope")))
	if c.stat(statRESPMiss) != 1 || c.stat(statRESPGet) != 1 {
		t.Fatalf("resp gets %d misses %d", c.stat(statRESPGet), c.stat(statRESPMiss))
	}
	c.respFill(respReply(t, []byte("$-1\r\n"))) // nil: nothing to cache
	if c.stat(statRESPFillSkip) != 1 {
		t.Errorf("resp fill skips %d, want 1", c.stat(statRESPFillSkip))
	}

	for _, w := range [][]string{{"SET", "k", "v"}, {"del", "k"}, {"INCR", "k"}, {"APPEND", "k", "x"}, {"GETDEL", "k"}, {"EXPIRE", "k", "1"}} {
		c.respMissThenFill("k", "v")
		if _, ok := c.respCached("k"); !ok {
			t.Fatalf("before %v: k not filled", w)
		}
		c.respWrite(RESPArray(w...))
		if _, ok := c.respCached("k"); ok {
			t.Errorf("%v left k cached", w)
		}
	}
	for _, req := range [][]byte{
		RESPArray("DEL", "other", "k"), RESPArray("FLUSHALL"), RESPArray("MSET", "k", "1"), RESPArray("RENAME", "a", "k"),
		append(RESPArray("GET", "x"), RESPArray("SET", "k", "1")...), // pipelined
	} {
		c.respMissThenFill("k", "v")
		if _, ok := c.respCached("k"); !ok {
			t.Fatalf("before %q: k not filled", req)
		}
		c.respWrite(req)
		if _, ok := c.respCached("k"); ok {
			t.Errorf("%q left k cached", req)
		}
	}
	// Reads change nothing.
	c.respMissThenFill("k", "v")
	for _, req := range [][]byte{RESPArray("PING"), RESPArray("EXISTS", "k"), RESPArray("TTL", "k"), []byte("continued value bytes")} {
		c.respPass(respReq(t, req))
	}
	if _, ok := c.respCached("k"); !ok {
		t.Fatal("a read or continuation lost k")
	}

	// Stale: SET between the miss and the reply.
	c.respPass(respReq(t, RESPArray("GET", "s")))
	frame := frame(t, true, clientMAC, serverMAC, clientIP, serverIP, respClientPort+1, RedisPort, RESPArray("SET", "s", "new"))
	c.respPass(frame)
	c.respFill(respReply(t, RESPBulk("old")))
	if _, ok := c.respCached("s"); ok || c.stat(statRESPFillStale) != 1 {
		t.Fatalf("stale fill accepted (stale %d)", c.stat(statRESPFillStale))
	}
	// Two GETs before a reply: neither fills.
	c.respPass(respReq(t, RESPArray("GET", "a")))
	c.respPass(respReq(t, RESPArray("GET", "b")))
	c.respFill(respReply(t, RESPBulk("va")))
	c.respFill(respReply(t, RESPBulk("vb")))
	if _, ok := c.respCached("a"); ok {
		t.Error("a filled with two GETs outstanding")
	}
	if _, ok := c.respCached("b"); ok {
		t.Error("b filled with two GETs outstanding")
	}
}

// TestRESPLayer: RESP("GET", "foo") builds the request to port 6379 (as
// does RESP(["GET", "foo"])),
// and the program's reply decodes as a bulk string.
func TestRESPLayer(t *testing.T) {
	b, err := packet.Build(`Ether()/IPv4()/TCP(sport=40002, seq=1000, ack=2000, flags=PA)/RESP(["GET", "foo"])`)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, RESPArray("GET", "foo")) || binary.BigEndian.Uint16(b[36:]) != RedisPort {
		t.Fatalf("built %x", b)
	}
	for _, expr := range []string{`RESP("GET", "foo")`, `RESP(GET, foo)`, `RESP("GET", "foo", args=["x"])`} {
		v, err := packet.Build(`Ether()/IPv4()/TCP(sport=40002, seq=1000, ack=2000, flags=PA)/` + expr)
		switch {
		case strings.Contains(expr, "args="):
			if err == nil {
				t.Errorf("%s built: the words are given twice", expr)
			}
		case err != nil:
			t.Errorf("%s: %v", expr, err)
		case !bytes.Equal(v, b):
			t.Errorf("%s built %x, want %x", expr, v, b)
		}
	}
	if _, err := packet.Build(`TCP()/RESP([])`); err == nil {
		t.Error("an empty RESP request built")
	}
	c := load(t)
	c.respMissThenFill("foo", "bar")
	ret, out := run(t, c.prog(RESPProgram), b)
	if ret != xdpTX {
		t.Fatalf("verdict %d", ret)
	}
	got := packet.Format(packet.Decode(out, "Ether"))
	if want := `RESP(args=["bar"])`; !bytes.Contains([]byte(got), []byte(want)) {
		t.Errorf("reply decodes as\n%s\nwithout %s", got, want)
	}
	for text, want := range map[string][]string{
		"+OK\r\n": {"OK"}, "-ERR x\r\n": {"ERR x"}, ":42\r\n": {"42"}, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n": {"GET", "k"},
	} {
		strs, _, n, err := respValue([]byte(text), 0)
		if err != nil || n != len(text) || len(strs) != len(want) || strs[0] != want[0] {
			t.Errorf("%q decodes as %q (%d bytes, %v)", text, strs, n, err)
		}
	}
	for _, bad := range []string{"", "$3\r\nab\r\n", "*2\r\n$1\r\na\r\n", "?\r\n", ":x\r\n"} {
		if _, _, _, err := respValue([]byte(bad), 0); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestRESPLiveRefusal(t *testing.T) {
	if ErrRESPLive == nil || !bytes.Contains([]byte(ErrRESPLive.Error()), []byte("sequence numbers")) {
		t.Fatal("ErrRESPLive does not say why")
	}
}
