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

func isWrite(text []byte) bool {
	for _, w := range writeWords {
		if bytes.HasPrefix(text, []byte(w)) {
			return true
		}
	}
	return false
}

// snapshot is the cache map as key -> reply text.
func (c *ct) snapshot() map[string]string {
	c.t.Helper()
	out := map[string]string{}
	var k CacheCacheKey
	var v CacheCacheValue
	it := c.coll.Maps[CacheMap].Iterate()
	for it.Next(&k, &v) {
		out[string(k.Bytes[:k.Len])] = string(v.Text[:v.Tlen])
	}
	if err := it.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// FuzzCacheRequest sends an arbitrary UDP payload (frame header included)
// or TCP payload (first byte odd) to memcached's port through
// xdp_cache_rx, with "foo" and a 250-byte key cached. The verdict must be
// XDP_PASS with the frame untouched, or XDP_TX with exactly the cached
// reply to a well-formed "get <key>\r\n" of a cached key; and the cache
// must be unchanged unless the payload is a write command, after which
// it may only have lost entries, never gained or changed one.
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
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > 1400 {
			return
		}
		c.t = t
		for id, key := range []string{"foo", long} {
			if _, ok := c.cached(key); !ok {
				c.missThenFill(uint16(id), key, 5, "value of "+key[:3])
			}
		}
		before := c.snapshot()
		tcp := in[0]&1 == 1
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
		ret, out := run(t, c.rx, frm)
		after := c.snapshot()
		switch ret {
		case xdpPass:
			if !bytes.Equal(out, frm) {
				t.Fatalf("XDP_PASS with a changed frame")
			}
		case xdpTX:
			hdrOK := len(payload) >= FrameHeaderLen && binary.BigEndian.Uint64(payload) & ^uint64(0xffff<<48) == 1<<16
			t1, ok := strings.CutPrefix(string(text), "get ")
			key, ok2 := strings.CutSuffix(t1, "\r\n")
			want, cached := before[key]
			if tcp || !hdrOK || !ok || !ok2 || !cached || strings.ContainsAny(key, " \r\n") {
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
