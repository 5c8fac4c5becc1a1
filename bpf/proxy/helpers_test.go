// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// loadObjs loads the embedded object into the kernel, unpinned.
func loadObjs(t testing.TB) *ProxyObjects {
	t.Helper()
	bpftest.RequireRoot(t)
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	var objs ProxyObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatalf("load proxy: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	return &objs
}

// tcpFrame builds Ethernet/IPv4/TCP around payload, lengths and checksums
// right, from 10.0.0.1:sport to 10.0.0.2:dport, with testrun/packet's
// layers (padded to Ethernet's 60 bytes, as a NIC would).
func tcpFrame(t testing.TB, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	expr := fmt.Sprintf("Ether(src=02:00:00:00:00:01, dst=02:00:00:00:00:02, pad=true)/IPv4(src=10.0.0.1, dst=10.0.0.2, ttl=64, id=1)/TCP(sport=%d, dport=%d, seq=1, ack=1, flags=PA, window=65535)", sport, dport)
	if len(payload) > 0 {
		expr += fmt.Sprintf("/Raw(hex=%x)", payload)
	}
	b, err := packet.Build(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return b
}

// walker runs tc_pg_walk over chunks of one direction of one flow.
type walker struct {
	t      testing.TB
	objs   *ProxyObjects
	sport  uint16
	dport  uint16
	server bool
}

// clientWalker walks what a client sends to port 5432; serverWalker what
// the server sends back. Each test uses its own client port.
func clientWalker(t testing.TB, objs *ProxyObjects, cport uint16) *walker {
	return (&walker{t: t, objs: objs, sport: cport, dport: Port}).reset()
}

func serverWalker(t testing.TB, objs *ProxyObjects, cport uint16) *walker {
	return (&walker{t: t, objs: objs, sport: Port, dport: cport, server: true}).reset()
}

// chunk walks one segment's payload and returns the chunk's result.
func (w *walker) chunk(payload []byte) ProxyPgWalkResult {
	w.t.Helper()
	ret, err := w.objs.TcPgWalk.Run(&ebpf.RunOptions{Data: tcpFrame(w.t, w.sport, w.dport, payload)})
	if err != nil {
		w.t.Fatalf("test-run tc_pg_walk: %v", err)
	}
	if ret != 0 {
		w.t.Fatalf("tc_pg_walk returned %d, want TC_ACT_OK (0)", int32(ret))
	}
	var r ProxyPgWalkResult
	if err := w.objs.WalkLast.Lookup(uint32(0), &r); err != nil {
		w.t.Fatal(err)
	}
	return r
}

// reset forgets the flow's state (a port used before starts afresh).
func (w *walker) reset() *walker {
	w.objs.Walks.Delete(w.key())
	return w
}

func (w *walker) key() *ProxyPgFlow {
	return &ProxyPgFlow{Saddr: 0x0100000a, Daddr: 0x0200000a, Sport: htons(w.sport), Dport: htons(w.dport)}
}

// state is the flow's walker state and totals.
func (w *walker) state() ProxyPgFlowWalk {
	w.t.Helper()
	var fw ProxyPgFlowWalk
	if err := w.objs.Walks.Lookup(w.key(), &fw); err != nil {
		w.t.Fatalf("look up the flow's walk state: %v", err)
	}
	return fw
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// enc encodes pgproto3 messages back to back.
func enc(t testing.TB, msgs ...pgproto3.Message) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
