// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"fmt"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestHitVLANAndOptions: a request with a VLAN tag and IPv4 options gets
// a reply with both kept, the lengths and checksums right.
func TestHitVLANAndOptions(t *testing.T) {
	c := load(t)
	c.missThenFill(1, "foo", 7, "bar!")
	in := buildFrame(t, fmt.Sprintf("Ether(src=%s, dst=%s)/Dot1Q(vlan=42)/IPv4(src=%s, dst=%s, ttl=9, id=1, options=0x01010100)/UDP(sport=%d, dport=%d)",
		clientMAC, serverMAC, clientIP, serverIP, clientPort, Port), append(FrameHeader(77, 0, 1, 0), "get foo\r\n"...))
	ret, out := run(t, c.rx, in)
	if ret != xdpTX {
		t.Fatalf("verdict %d, want XDP_TX", ret)
	}
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	rv, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	rip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	rudp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if rv == nil || rip == nil || rudp == nil {
		t.Fatalf("reply does not decode: %v", p)
	}
	if rv.VLANIdentifier != 42 || rip.IHL != 6 || !rip.SrcIP.Equal(serverIP) || !rip.DstIP.Equal(clientIP) ||
		rudp.SrcPort != Port || rudp.DstPort != clientPort {
		t.Errorf("reply vlan %d ihl %d %v:%d -> %v:%d", rv.VLANIdentifier, rip.IHL, rip.SrcIP, rudp.SrcPort, rip.DstIP, rudp.DstPort)
	}
	// Checksums: summing a header with its checksum gives 0xffff.
	ipHdr := out[18 : 18+24]
	if csum(ipHdr, 0) != 0xffff {
		t.Errorf("IPv4 header checksum wrong: %x", ipHdr)
	}
	seg := out[18+24:]
	pseudo := append(append(append([]byte{}, ipHdr[12:20]...), 0, 17), seg[4:6]...)
	if csum(seg, csum(pseudo, 0)) != 0xffff || int(rudp.Length) != len(seg) || int(rip.Length) != len(out)-18 {
		t.Errorf("UDP checksum or lengths wrong: udp len %d of %d, ip len %d of %d", rudp.Length, len(seg), rip.Length, len(out)-18)
	}
	if want := string(FrameHeader(77, 0, 1, 0)) + valueReply("foo", 7, "bar!"); string(seg[8:]) != want {
		t.Errorf("payload %q, want %q", seg[8:], want)
	}
}
