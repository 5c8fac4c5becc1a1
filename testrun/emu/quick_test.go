// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"os"
	"testing"
)

func udpFrame(payload string) []byte {
	udpLen := 8 + len(payload)
	ipLen := 20 + udpLen
	b := make([]byte, 14+ipLen)
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{0xa, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	udp := b[34:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 7777)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[8:], payload)
	return b
}

func TestQuickPrivate(t *testing.T) {
	data, err := os.ReadFile("../fixture/progs_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := LoadObject("progs", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"xdp_reflect", "xdp_count", "tc_mark", "sock_trunc"} {
		p, err := obj.Program(name)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(Config{Program: p, Packet: udpFrame("ping")})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: retval %d steps %d trace %q maps %d packet % x", name, res.Retval, res.Steps, res.Trace, len(res.Maps), res.Packet[:12])
		for _, c := range res.Maps {
			t.Logf("  %s %x: %x -> %x", c.Map, c.Key, c.Before, c.After)
		}
	}
}

func TestQuickEvents(t *testing.T) {
	data, _ := os.ReadFile("../fixture/progs_bpfel.o")
	obj, _ := LoadObject("progs", data)
	p, _ := obj.Program("xdp_count")
	s, err := NewSession(Config{Program: p, Packet: udpFrame("ping")})
	if err != nil {
		t.Fatal(err)
	}
	st := s.Run()
	t.Logf("%+v", st)
	for _, e := range s.Events() {
		t.Log(e.String())
	}
	t.Logf("%+v", s.Result().Queues)
}
