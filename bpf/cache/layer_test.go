// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// TestLayerBuild: UDP()/MemcacheUDP(req_id=7)/Raw("get foo\r\n") is the
// request the tests build by hand, to port 11211; and the layer's frame
// gets a hit from the program.
func TestLayerBuild(t *testing.T) {
	b, err := packet.Build(`Ether()/IPv4()/UDP(sport=40000)/MemcacheUDP(req_id=7)/Raw("get foo\r\n")`)
	if err != nil {
		t.Fatal(err)
	}
	// The frame is padded to Ethernet's 60 bytes (Ether(pad=true)).
	if want := udpReq(t, 7, "get foo\r\n"); len(want) < len(b) || !bytes.Equal(b, want[:len(b)]) {
		t.Fatalf("layer built\n%x\nwant\n%x", b, want)
	}
	b, err = packet.Build(`UDP(chksum=0)/MemcacheUDP(9, seq=1, total=3, reserved=4)`)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte{0x9c, 0x40, 0x2b, 0xcb, 0, 16, 0, 0}, FrameHeader(9, 1, 3, 4)...); !bytes.Equal(b[2:], want[2:]) {
		t.Errorf("MemcacheUDP(9, seq=1, total=3, reserved=4) built %x", b)
	}
	if _, err := packet.Build(`UDP()/MemcacheUDP(req_id=0x10000)`); err == nil {
		t.Error("a 17-bit request id built")
	}

	c := load(t)
	c.missThenFill(1, "foo", 3, "bar")
	in, _ := packet.Build(`Ether()/IPv4()/UDP(sport=40000)/MemcacheUDP(req_id=7)/Raw("get foo\r\n")`)
	ret, out := run(t, c.rx, in)
	if ret != xdpTX {
		t.Fatalf("verdict %d, want XDP_TX", ret)
	}
	got := packet.Format(packet.Decode(out, "Ether"))
	for _, want := range []string{"UDP(sport=11211, dport=40000", "MemcacheUDP(req_id=7, seq=0, total=1, reserved=0)", `Raw(load="VALUE foo 3 3\r\nbar\r\nEND\r\n")`} {
		if !strings.Contains(got, want) {
			t.Errorf("reply decodes as\n%s\nwithout %s", got, want)
		}
	}
}

// TestLayout checks the structs' sizes against PROTOCOL.md: user space
// (map dumps, the shell's cache commands) reads them by these layouts.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"struct cache_key", unsafe.Sizeof(CacheCacheKey{}), 256},
		{"struct cache_value", unsafe.Sizeof(CacheCacheValue{}), 1608},
		{"struct cache_meta", unsafe.Sizeof(CacheCacheMeta{}), 16},
		{"struct cache_miss_key", unsafe.Sizeof(CacheCacheMissKey{}), 8},
		{"struct cache_miss", unsafe.Sizeof(CacheCacheMiss{}), 24},
		{"struct cache_conn", unsafe.Sizeof(CacheCacheConn{}), 12},
		{"struct cache_pending", unsafe.Sizeof(CacheCachePending{}), 1048},
		{"struct resp_miss", unsafe.Sizeof(CacheRespMiss{}), 280},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d bytes, PROTOCOL.md says %d", c.name, c.got, c.want)
		}
	}
}
