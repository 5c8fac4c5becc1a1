// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/fixture"
)

func TestMain(m *testing.M) {
	code := m.Run()
	CloseTrace()
	os.Exit(code)
}

// progs loads the fixture programs for one test.
func progs(t *testing.T) *fixture.ProgsObjects {
	t.Helper()
	bpftest.RequireRoot(t)
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return &p
}

// frame builds Ethernet/IPv4/UDP by hand: dst and src MACs, addresses
// 10.0.0.1 -> 10.0.0.2, ports 40000 -> 7777, and payload.
func frame(dst, src [6]byte, payload string) []byte {
	udpLen := 8 + len(payload)
	ipLen := 20 + udpLen
	b := make([]byte, 14+ipLen)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := b[34:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 7777)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[8:], payload)
	return b
}

var (
	macLocal  = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	macRemote = [6]byte{0x0a, 0, 0, 0, 0, 0x01}
)

// udpFrame is a frame addressed to a locally administered MAC.
func udpFrame(payload string) []byte { return frame(macLocal, macRemote, payload) }
