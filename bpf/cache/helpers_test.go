// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// Return codes of the programs under test-run.
const (
	xdpPass = 2
	xdpTX   = 3
	tcOK    = 0
)

// The test's addresses: a client at 10.0.0.1:40000, memcached at
// 10.0.0.2:11211, as the packet layers default.
var (
	clientMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	serverMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	clientIP  = net.IPv4(10, 0, 0, 1).To4()
	serverIP  = net.IPv4(10, 0, 0, 2).To4()
)

const clientPort = 40000

// ct is one test's own cache: the embedded object loaded and pinned under
// the test's private pin root.
type ct struct {
	t    testing.TB
	coll *ebpf.Collection
	rx   *ebpf.Program
	fill *ebpf.Program
	dir  string
}

func load(t testing.TB) *ct {
	t.Helper()
	dir := bpftest.PinRoot(t)
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load cache: %v", err)
	}
	t.Cleanup(coll.Close)
	for name, p := range coll.Programs {
		if err := p.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatalf("pin program %s: %v", name, err)
		}
	}
	for name, m := range coll.Maps {
		if err := m.Pin(filepath.Join(dir, strings.TrimPrefix(name, "."))); err != nil {
			t.Fatalf("pin map %s: %v", name, err)
		}
	}
	return &ct{t: t, coll: coll, rx: coll.Programs[RxProgram], fill: coll.Programs[FillProgram], dir: dir}
}

// frame builds an Ethernet/IPv4 frame carrying payload over UDP or TCP,
// lengths and checksums right, with testrun/packet's layers (padded to
// Ethernet's 60 bytes, as a NIC would).
func frame(t testing.TB, tcp bool, srcMAC, dstMAC net.HardwareAddr, src, dst net.IP, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	l4 := fmt.Sprintf("UDP(sport=%d, dport=%d)", sport, dport)
	if tcp {
		l4 = fmt.Sprintf("TCP(sport=%d, dport=%d, seq=1000, ack=2000, flags=PA, window=65535)", sport, dport)
	}
	return buildFrame(t, fmt.Sprintf("Ether(src=%s, dst=%s, pad=true)/IPv4(src=%s, dst=%s, ttl=64, id=1)/%s", srcMAC, dstMAC, src, dst, l4), payload)
}

// buildFrame builds the layer expression expr with payload after it.
func buildFrame(t testing.TB, expr string, payload []byte) []byte {
	t.Helper()
	if len(payload) > 0 {
		expr += fmt.Sprintf("/Raw(hex=%x)", payload)
	}
	b, err := packet.Build(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return b
}

// udpReq is a memcached UDP request from the client: frame header and text.
func udpReq(t testing.TB, reqID uint16, text string) []byte {
	return frame(t, false, clientMAC, serverMAC, clientIP, serverIP, clientPort, Port, append(FrameHeader(reqID, 0, 1, 0), text...))
}

// tcpReq is a memcached TCP segment from the client.
func tcpReq(t testing.TB, text string) []byte {
	return frame(t, true, clientMAC, serverMAC, clientIP, serverIP, clientPort+1, Port, []byte(text))
}

// serverReply is memcached's UDP reply to the client's request reqID.
func serverReply(t testing.TB, reqID uint16, text string) []byte {
	return frame(t, false, serverMAC, clientMAC, serverIP, clientIP, Port, clientPort, append(FrameHeader(reqID, 0, 1, 0), text...))
}

// valueReply is the text memcached answers a get of key with.
func valueReply(key string, flags uint32, data string) string {
	return "VALUE " + key + " " + itoa(uint64(flags)) + " " + itoa(uint64(len(data))) + "\r\n" + data + "\r\nEND\r\n"
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// run test-runs prog on a frame and returns its verdict and the frame
// after it.
func run(t testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+4096), Repeat: 1}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("test-run: %v", err)
	}
	return ret, opts.DataOut
}

// get sends "get key" with reqID through xdp_cache_rx.
func (c *ct) get(reqID uint16, key string) (uint32, []byte) {
	return run(c.t, c.rx, udpReq(c.t, reqID, "get "+key+"\r\n"))
}

// wantPass sends a frame to xdp_cache_rx and wants XDP_PASS with the
// frame untouched.
func (c *ct) wantPass(in []byte) {
	c.t.Helper()
	ret, out := run(c.t, c.rx, in)
	if ret != xdpPass {
		c.t.Fatalf("xdp_cache_rx returned %d, want XDP_PASS", ret)
	}
	if !bytes.Equal(out, in) {
		c.t.Fatalf("xdp_cache_rx passed a changed frame:\n%x\nwant\n%x", out, in)
	}
}

// fillFrom runs a server reply through tc_cache_fill, which must let it go.
func (c *ct) fillFrom(in []byte) {
	c.t.Helper()
	ret, out := run(c.t, c.fill, in)
	if ret != tcOK {
		c.t.Fatalf("tc_cache_fill returned %d, want TC_ACT_OK", ret)
	}
	if !bytes.Equal(out, in) {
		c.t.Fatal("tc_cache_fill changed the reply")
	}
}

// missThenFill does what a miss does live: the get passes, memcached's
// VALUE reply leaves through TC egress.
func (c *ct) missThenFill(reqID uint16, key string, flags uint32, data string) {
	c.t.Helper()
	c.wantPass(udpReq(c.t, reqID, "get "+key+"\r\n"))
	c.fillFrom(serverReply(c.t, reqID, valueReply(key, flags, data)))
}

// cached reads the cache map's entry for key.
func (c *ct) cached(key string) (*CacheCacheValue, bool) {
	c.t.Helper()
	var k CacheCacheKey
	k.Len = uint32(len(key))
	copy(k.Bytes[:], key)
	var v CacheCacheValue
	if err := c.coll.Maps[CacheMap].Lookup(&k, &v); err != nil {
		return nil, false
	}
	return &v, true
}

// entries counts the cache map's entries.
func (c *ct) entries() int {
	c.t.Helper()
	n := 0
	var k CacheCacheKey
	var v CacheCacheValue
	it := c.coll.Maps[CacheMap].Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// stat sums one per-CPU counter.
func (c *ct) stat(i uint32) uint64 {
	c.t.Helper()
	var per []uint64
	if err := c.coll.Maps[StatsMap].Lookup(&i, &per); err != nil {
		c.t.Fatal(err)
	}
	var sum uint64
	for _, v := range per {
		sum += v
	}
	return sum
}

// csum is the folded Internet checksum sum of b (not complemented).
func csum(b []byte, sum uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum
}

// checkHit checks that out is the reply to the get request in: addresses
// and ports swapped, lengths and both checksums right, and exactly the
// frame header (request id echoed, datagram 0 of 1) and text as payload.
func checkHit(t testing.TB, in, out []byte, text string) {
	t.Helper()
	if len(out) < 14+20+8 {
		t.Fatalf("reply of %d bytes", len(out))
	}
	if !bytes.Equal(out[0:6], in[6:12]) || !bytes.Equal(out[6:12], in[0:6]) || !bytes.Equal(out[12:14], in[12:14]) {
		t.Errorf("reply Ethernet header %x, request's %x", out[:14], in[:14])
	}
	ip, rip := out[14:34], in[14:34]
	if !bytes.Equal(ip[12:16], rip[16:20]) || !bytes.Equal(ip[16:20], rip[12:16]) || ip[9] != 17 {
		t.Errorf("reply IPv4 header %x, request's %x", ip, rip)
	}
	if csum(ip, 0) != 0xffff {
		t.Errorf("reply IPv4 header checksum wrong: %x", ip)
	}
	if tot := int(binary.BigEndian.Uint16(ip[2:])); tot != len(out)-14 {
		t.Errorf("reply IPv4 total length %d, frame has %d bytes after Ethernet", tot, len(out)-14)
	}
	udp, rudp := out[34:], in[34:42]
	if !bytes.Equal(udp[0:2], rudp[2:4]) || !bytes.Equal(udp[2:4], rudp[0:2]) {
		t.Errorf("reply ports %x, request's %x", udp[:4], rudp[:4])
	}
	if l := int(binary.BigEndian.Uint16(udp[4:])); l != len(udp) {
		t.Errorf("reply UDP length %d, %d bytes there", l, len(udp))
	}
	pseudo := append(append(append([]byte{}, ip[12:20]...), 0, 17), udp[4:6]...)
	if binary.BigEndian.Uint16(udp[6:]) == 0 || csum(udp, csum(pseudo, 0)) != 0xffff {
		t.Errorf("reply UDP checksum %#04x wrong", binary.BigEndian.Uint16(udp[6:]))
	}
	want := append(FrameHeader(binary.BigEndian.Uint16(in[42:]), 0, 1, 0), text...)
	if !bytes.Equal(udp[8:], want) {
		t.Errorf("reply payload\n%q\nwant\n%q", udp[8:], want)
	}
}
