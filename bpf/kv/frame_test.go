// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// Frame is the fast path the client and the load generator use; it must
// build what testrun/packet builds from the same layers, which is how the
// tests and users build packets (issue 13 item 22).
func TestFrameIsWhatPacketBuilds(t *testing.T) {
	v6 := DefaultAddressing()
	v6.SrcIP, v6.DstIP = net.ParseIP("fd00::1"), net.ParseIP("fd00::2")
	tagged := DefaultAddressing()
	tagged.VLAN = 42
	for _, a := range []Addressing{DefaultAddressing(), DefaultAddressing().Reply(), v6, tagged} {
		for _, payload := range [][]byte{nil, {magic}, (&Message{Op: OpSet, Key: []byte("a"), Value: []byte("1")}).Marshal()} {
			ip := "IPv4(src=%s, dst=%s, ttl=64, id=1)"
			if a.IPv6() {
				ip = "IPv6(src=%s, dst=%s, hlim=64)"
			}
			expr := fmt.Sprintf("Ether(src=%s, dst=%s)/", a.SrcMAC, a.DstMAC)
			if a.VLAN != 0 {
				expr += fmt.Sprintf("Dot1Q(vlan=%d)/", a.VLAN)
			}
			expr += fmt.Sprintf(ip+"/UDP(sport=%d, dport=%d)", a.SrcIP, a.DstIP, a.SrcPort, a.DstPort)
			if len(payload) > 0 {
				expr += fmt.Sprintf("/Raw(hex=%x)", payload)
			}
			want, err := packet.Build(expr)
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			if got := a.Frame(payload); !bytes.Equal(got, want) {
				t.Errorf("%s:\nFrame  %x\npacket %x", expr, got, want)
			}
		}
	}
}
