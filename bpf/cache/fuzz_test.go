// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"encoding/binary"
	"maps"
	"strings"
	"testing"
)

// writeWords are the commands after which the cache may lose entries
// (PROTOCOL.md): a write invalidates its key, flush_all everything.
var writeWords = []string{"set ", "add ", "cas ", "incr ", "decr ", "replace ", "prepend ", "append ", "delete ", "ms ", "md ", "ma ", "flush_al"}

// isWrite: a line of the request starts with a write command (every line
// is looked at: pipelined commands, and value lines that look like one).
func isWrite(text []byte) bool {
	for _, line := range bytes.Split(text, []byte("\n")) {
		for _, w := range writeWords {
			if bytes.HasPrefix(line, []byte(w)) {
				return true
			}
		}
	}
	return false
}

// snapshot is the cache map as key -> reply text.
func (c *ct) snapshot() map[string]string { return c.snapshotOf(CacheMap) }

// snapshotOf is a cache or resp_cache map as key -> reply text.
func (c *ct) snapshotOf(name string) map[string]string {
	c.t.Helper()
	out := map[string]string{}
	var k CacheCacheKey
	var v CacheCacheValue
	it := c.coll.Maps[name].Iterate()
	for it.Next(&k, &v) {
		out[string(k.Bytes[:k.Len])] = string(v.Text[:v.Tlen])
	}
	if err := it.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// FuzzCacheRequest sends an arbitrary UDP payload (frame header included)
// or TCP payload (first byte's bit 0) to memcached's port through
// xdp_cache_rx, as a whole datagram or as an IPv4 fragment (bit 1), with
// "foo", "bar" and a 250-byte key cached. The verdict must be XDP_PASS
// with the frame untouched, or XDP_TX with exactly the cached replies to
// a well-formed "get k1 ... kn\r\n" (n <= 8) whose keys are all cached;
// and the cache must be unchanged unless a line of the payload is a
// write command, after which it may only have lost entries, never gained
// or changed one. A fragment changes nothing.
func FuzzCacheRequest(f *testing.F) {
	c := load(f)
	long := strings.Repeat("L", MaxKey)
	udp := func(h []byte, text string) []byte { return append(append([]byte{0}, h...), text...) }
	for _, s := range []string{"get foo\r\n", "get " + long + "\r\n", "get foo bar\r\n", "get fo\r\n", "set foo 0 0 1\r\nx\r\n",
		"delete foo\r\n", "flush_all\r\n", "gets foo\r\n", "get foo\n", "get\r\n"} {
		f.Add(udp(FrameHeader(1, 0, 1, 0), s))
		f.Add(append([]byte{1}, s...))
	}
	f.Add(udp(FrameHeader(1, 0, 2, 0), "get foo\r\n"))
	f.Add(udp(FrameHeader(1, 0, 1, 1), "get foo\r\n"))
	for _, s := range []string{"get foo bar\r\n", "get foo bar foo bar foo bar foo bar\r\n", "get foo bar foo bar foo bar foo bar foo\r\n",
		"get foo " + long + "\r\n", "get foo  bar\r\n", "get foo bar \r\n", "get foo\r\nset bar 0 0 1\r\nx\r\n", "get f\xc3\xa9\r\n"} {
		f.Add(udp(FrameHeader(1, 0, 1, 0), s))
		f.Add(append([]byte{2}, append(FrameHeader(1, 0, 1, 0), s...)...))
	}
	f.Add(append([]byte{1}, "get foo\r\nset foo 0 0 1\r\nx\r\ndelete bar\r\n"...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > 1400 {
			return
		}
		c.t = t
		for id, key := range []string{"foo", long, "bar"} {
			if _, ok := c.cached(key); !ok {
				c.missThenFill(uint16(id), key, 5, "value of "+key[:3])
			}
		}
		before := c.snapshot()
		tcp := in[0]&1 == 1
		frag := in[0]&2 == 2
		payload := in[1:]
		var frm []byte
		text := payload
		if tcp {
			frm = frame(t, true, clientMAC, serverMAC, clientIP, serverIP, clientPort+1, Port, payload)
		} else {
			frm = frame(t, false, clientMAC, serverMAC, clientIP, serverIP, clientPort, Port, payload)
			if len(payload) >= FrameHeaderLen {
				text = payload[FrameHeaderLen:]
			} else {
				text = nil
			}
		}
		if frag {
			frm[14+6] |= 0x20 // more fragments
			frm[14+10], frm[14+11] = 0, 0
			ck := ^csum(frm[14:34], 0)
			frm[14+10], frm[14+11] = byte(ck>>8), byte(ck)
		}
		ret, out := run(t, c.rx, frm)
		after := c.snapshot()
		if frag && (ret != xdpPass || !maps.Equal(before, after)) {
			t.Fatalf("a fragment: verdict %d, cache changed %v", ret, !maps.Equal(before, after))
		}
		switch ret {
		case xdpPass:
			if !bytes.Equal(out, frm) {
				t.Fatalf("XDP_PASS with a changed frame")
			}
		case xdpTX:
			hdrOK := len(payload) >= FrameHeaderLen && binary.BigEndian.Uint64(payload) & ^uint64(0xffff<<48) == 1<<16
			t1, ok := strings.CutPrefix(string(text), "get ")
			keys, ok2 := strings.CutSuffix(t1, "\r\n")
			want, cached := "", true
			list := strings.Split(keys, " ")
			for _, key := range list {
				v, in := before[key]
				cached = cached && in && key != "" && !strings.ContainsAny(key, "\r\n\t")
				want += strings.TrimSuffix(v, "END\r\n")
			}
			want += "END\r\n"
			if tcp || !hdrOK || !ok || !ok2 || !cached || len(list) > MaxGetKeys {
				t.Fatalf("answered %q (tcp %v, frame header ok %v)", payload, tcp, hdrOK)
			}
			checkHit(t, frm, out, want)
		default:
			t.Fatalf("verdict %d", ret)
		}
		if isWrite(text) {
			for k, v := range after {
				if before[k] != v {
					t.Fatalf("write %q changed or added %q", text, k)
				}
			}
		} else if !maps.Equal(before, after) {
			t.Fatalf("%q changed the cache: %v -> %v", payload, before, after)
		}
	})
}

// FuzzRESPRequest sends an arbitrary TCP payload to Redis's port through
// xdp_cache_resp with "foo" and "bar" in resp_cache. The verdict must be
// XDP_PASS with the frame untouched, or XDP_TX only for exactly
// "*2\r\n$3\r\nGET\r\n$<n>\r\n<key>\r\n" (any case) of a cached key,
// with the right reply; resp_cache may only lose entries, and only when
// the payload is a RESP array (a command).
func FuzzRESPRequest(f *testing.F) {
	c := load(f)
	for _, req := range [][]byte{
		RESPArray("GET", "foo"), RESPArray("get", "bar"), RESPArray("GET", "nope"), RESPArray("SET", "foo", "x"),
		RESPArray("DEL", "foo", "bar"), RESPArray("FLUSHALL"), RESPArray("PING"), RESPArray("GET", "foo", "x"),
		append(RESPArray("GET", "foo"), RESPArray("GET", "bar")...), []byte("*2\r\n$3\r\nGET\r\n$9\r\nfoo\r\n"),
		[]byte("*2\r\n$3\r\nGET\r\n$3\r\nfo\xff\r\n"), []byte("GET foo\r\n"), []byte("*99999999999\r\n"), []byte("*2\r\n$-1\r\n"),
	} {
		f.Add(req)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) == 0 || len(payload) > 1400 {
			return
		}
		c.t = t
		// The last input's writes are acknowledged, so the refills are not
		// taken for their acknowledgement.
		c.respFill(respReply(t, []byte("+OK\r\n")))
		for _, key := range []string{"foo", "bar"} {
			if _, ok := c.respCached(key); !ok {
				c.respMissThenFill(key, "value of "+key)
			}
		}
		before := c.snapshotOf(RESPCacheMap)
		in := respReq(t, payload)
		ret, out := run(t, c.prog(RESPProgram), in)
		after := c.snapshotOf(RESPCacheMap)
		switch ret {
		case xdpPass:
			if !bytes.Equal(out, in) {
				t.Fatalf("XDP_PASS with a changed frame")
			}
		case xdpTX:
			var key string
			for k := range before {
				if bytes.Equal(payload, RESPArray("GET", k)) || bytes.EqualFold(payload, RESPArray("GET", k)) && bytes.HasSuffix(payload, []byte(k+"\r\n")) {
					key = k
				}
			}
			if key == "" {
				t.Fatalf("answered %q", payload)
			}
			checkRESPHit(t, in, out, len(payload), []byte(before[key]))
		default:
			t.Fatalf("verdict %d", ret)
		}
		for k, v := range after {
			if before[k] != v {
				t.Fatalf("%q changed or added %q", payload, k)
			}
		}
		if payload[0] != '*' && !maps.Equal(before, after) {
			t.Fatalf("%q (not an array) changed resp_cache", payload)
		}
	})
}
