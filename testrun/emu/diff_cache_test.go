// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/bpfsh/bpfsh/bpf/cache"
	"github.com/bpfsh/bpfsh/testrun"
)

var (
	clientMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	serverMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	clientIP  = net.IPv4(10, 0, 0, 1).To4()
	serverIP  = net.IPv4(10, 0, 0, 2).To4()
)

// l4Frame builds an Ethernet/IPv4 frame carrying payload over UDP or TCP,
// lengths and checksums right.
func l4Frame(t testing.TB, tcp bool, srcMAC, dstMAC net.HardwareAddr, src, dst net.IP, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 1, SrcIP: src, DstIP: dst}
	var l4 gopacket.SerializableLayer
	if tcp {
		ip.Protocol = layers.IPProtocolTCP
		tl := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 2000, ACK: true, PSH: true, Window: 65535}
		tl.SetNetworkLayerForChecksum(ip)
		l4 = tl
	} else {
		ip.Protocol = layers.IPProtocolUDP
		ul := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		ul.SetNetworkLayerForChecksum(ip)
		l4 = ul
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type cacheRig struct {
	t                     *testing.T
	rx, fill, resp, rfill *ebpf.Program
}

func loadCache(t *testing.T) *cacheRig {
	t.Helper()
	spec, err := cache.Spec()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Skipf("skipped: this kernel cannot load cache: %v", err)
	}
	t.Cleanup(coll.Close)
	return &cacheRig{t: t, rx: coll.Programs[cache.RxProgram], fill: coll.Programs[cache.FillProgram],
		resp: coll.Programs[cache.RESPProgram], rfill: coll.Programs[cache.RESPFillProgram]}
}

func (c *cacheRig) run(p *ebpf.Program, in []byte) uint32 {
	c.t.Helper()
	return run(c.t, testrun.Options{Program: p, Data: in}).Retval
}

func (c *cacheRig) udpReq(id uint16, text string) []byte {
	return l4Frame(c.t, false, clientMAC, serverMAC, clientIP, serverIP, 40000, cache.Port, append(cache.FrameHeader(id, 0, 1, 0), text...))
}

func (c *cacheRig) tcpReq(text string) []byte {
	return l4Frame(c.t, true, clientMAC, serverMAC, clientIP, serverIP, 40001, cache.Port, []byte(text))
}

func (c *cacheRig) reply(id uint16, text string) []byte {
	return l4Frame(c.t, false, serverMAC, clientMAC, serverIP, clientIP, cache.Port, 40000, append(cache.FrameHeader(id, 0, 1, 0), text...))
}

func valueReply(key string, flags uint32, data string) string {
	return "VALUE " + key + " " + strconv.FormatUint(uint64(flags), 10) + " " + strconv.Itoa(len(data)) + "\r\n" + data + "\r\nEND\r\n"
}

func (c *cacheRig) missThenFill(id uint16, key string, flags uint32, data string) {
	c.run(c.rx, c.udpReq(id, "get "+key+"\r\n"))
	c.run(c.fill, c.reply(id, valueReply(key, flags, data)))
}

// TestDifferentialCache runs the memcached cache's flows (misses, fills,
// hits of every size, multi-key gets, writes over TCP and UDP that
// invalidate, stale and unmatched fills, odd requests) and the RESP
// cache's (GET misses, bulk fills, hits, writes) through the emulator
// and the kernel.
func TestDifferentialCache(t *testing.T) {
	differential(t)
	c := loadCache(t)

	c.run(c.rx, c.udpReq(7, "get foo\r\n"))
	c.missThenFill(7, "foo", 42, "bar")
	for _, id := range []uint16{9, 0xfffe} {
		c.run(c.rx, c.udpReq(id, "get foo\r\n"))
	}
	data := make([]byte, cache.MaxValue)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for i, sz := range []struct{ k, v int }{{1, 0}, {1, 1}, {2, 2}, {3, 511}, {7, 512}, {8, 513}, {100, 1000}, {249, 1023}, {cache.MaxKey, cache.MaxValue}} {
		key := strings.Repeat(string(rune('a'+i)), sz.k)
		c.missThenFill(uint16(i), key, uint32(i)*1000003, string(data[:sz.v]))
		c.run(c.rx, c.udpReq(100+uint16(i), "get "+key+"\r\n"))
	}
	// Multi-key gets: all hit, one misses.
	c.run(c.rx, c.udpReq(77, "get a bb ccc\r\n"))
	c.run(c.rx, c.udpReq(78, "get foo nope\r\n"))
	// Writes invalidate.
	for i, cmd := range []string{"set foo 0 0 3\r\nbaz\r\n", "add foo 0 0 3\r\nbaz\r\n", "delete foo\r\n", "incr foo 1\r\n", "ms foo 3\r\nbaz\r\n", "md foo\r\n", "flush_all\r\n"} {
		c.missThenFill(200+uint16(i), "foo", 0, "bar")
		if i%2 == 0 {
			c.run(c.rx, c.tcpReq(cmd))
		} else {
			c.run(c.rx, c.udpReq(300+uint16(i), cmd))
		}
		c.run(c.rx, c.udpReq(400+uint16(i), "get foo\r\n"))
	}
	// A stale fill, fills with no miss.
	c.run(c.rx, c.udpReq(7, "get foo\r\n"))
	c.run(c.rx, c.tcpReq("set foo 0 0 3\r\nnew\r\n"))
	c.run(c.fill, c.reply(7, valueReply("foo", 0, "old")))
	c.run(c.fill, c.reply(8, valueReply("foo", 0, "bar")))
	// What the cache does not handle.
	long := strings.Repeat("k", cache.MaxKey+1)
	for _, in := range [][]byte{
		c.udpReq(2, "get "+long+"\r\n"), c.udpReq(2, "gets foo\r\n"), c.udpReq(2, "get foo\n"),
		c.udpReq(2, "get foo\r\nget foo\r\n"), c.udpReq(2, "GET foo\r\n"), c.udpReq(2, "get fo\x01\r\n"), c.udpReq(2, "get \r\n"),
		l4Frame(t, false, clientMAC, serverMAC, clientIP, serverIP, 40000, cache.Port, append(cache.FrameHeader(2, 0, 2, 0), "get foo\r\n"...)),
		l4Frame(t, false, clientMAC, serverMAC, clientIP, serverIP, 40000, cache.Port+1, append(cache.FrameHeader(2, 0, 1, 0), "get foo\r\n"...)),
		c.tcpReq("get foo\r\n"), c.tcpReq("set " + long + " 0 0 1\r\nx\r\n"),
	} {
		c.run(c.rx, in)
	}
	for i, text := range []string{
		"VALUE x 0 1\r\na\r\nVALUE y 0 1\r\nb\r\nEND\r\n", "VALUE x 0 1 77\r\na\r\nEND\r\n", "VALUE x 0 2\r\na\r\nEND\r\n",
		"VALUE x 0 1\r\nab\r\nEND\r\n", "VALUE x 99999999999 1\r\na\r\nEND\r\n", "END\r\n",
	} {
		c.run(c.rx, c.udpReq(10+uint16(i), "get x\r\n"))
		c.run(c.fill, c.reply(10+uint16(i), text))
	}

	// RESP.
	respReq := func(payload []byte) []byte {
		return l4Frame(t, true, clientMAC, serverMAC, clientIP, serverIP, 40002, cache.RedisPort, payload)
	}
	respReply := func(payload []byte) []byte {
		return l4Frame(t, true, serverMAC, clientMAC, serverIP, clientIP, cache.RedisPort, 40002, payload)
	}
	for _, d := range []string{"bar", "", "odd!x", string(make([]byte, cache.MaxValue))} {
		c.run(c.resp, respReq(cache.RESPArray("GET", "foo")))
		c.run(c.rfill, respReply(cache.RESPBulk(d)))
		for _, cmd := range []string{"GET", "get", "GeT"} {
			c.run(c.resp, respReq(cache.RESPArray(cmd, "foo")))
		}
		c.run(c.resp, respReq(cache.RESPArray("SET", "foo", "x")))
		c.run(c.rfill, respReply([]byte("+OK\r\n")))
	}
	c.run(c.resp, respReq(cache.RESPArray("GET", "nope")))
	c.run(c.resp, respReq(cache.RESPArray("MSET", "a", "1", "b", "2")))
	c.run(c.resp, respReq([]byte("*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n*2\r\n$3\r\nGET\r\n$3\r\nbar\r\n")))
}
