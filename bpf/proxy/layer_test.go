// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// TestLayerBuild: the PG layers build what pgproto3 encodes, to port
// 5432, and tc_pg_walk counts them.
func TestLayerBuild(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []byte
	}{
		{`PGQuery("select 1")`, enc(t, &pgproto3.Query{String: "select 1"})},
		{`PG("Q", text="select 1")`, enc(t, &pgproto3.Query{String: "select 1"})},
		{`PG("Q", data="select 1\x00")`, enc(t, &pgproto3.Query{String: "select 1"})},
		{`PGSync()/PGTerminate()`, enc(t, &pgproto3.Sync{}, &pgproto3.Terminate{})},
		{`PGReady("T")`, enc(t, &pgproto3.ReadyForQuery{TxStatus: 'T'})},
		{`PG("D", len=100000, data="ab")`, []byte{'D', 0, 1, 0x86, 0xa0, 'a', 'b'}},
	} {
		b, err := packet.Build(`TCP(chksum=0)/` + c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := b[20:]; !bytes.Equal(got, c.want) {
			t.Errorf("%s built %q, want %q", c.expr, got, c.want)
		}
	}
	b, err := packet.Build(`TCP(chksum=0)/PGQuery("x")`)
	if err != nil {
		t.Fatal(err)
	}
	if dport := int(b[2])<<8 | int(b[3]); dport != Port {
		t.Errorf("TCP()/PGQuery() goes to port %d, want %d", dport, Port)
	}
	for _, bad := range []string{`TCP(chksum=0)/PG("QQ")`, `TCP(chksum=0)/PG("Q", text="a", data="b")`, `TCP(chksum=0)/PGReady("idle")`} {
		if _, err := packet.Build(bad); err == nil {
			t.Errorf("%s built", bad)
		}
	}

	objs := loadObjs(t)
	in, err := packet.Build(`Ether()/IPv4()/TCP(sport=40500)/PG("P", data="\x00select 1\x00\x00\x00")/PGSync()/PGQuery("select 2")`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := objs.TcPgWalk.Run(&ebpf.RunOptions{Data: in}); err != nil {
		t.Fatal(err)
	}
	var r ProxyPgWalkResult
	if err := objs.WalkLast.Lookup(uint32(0), &r); err != nil {
		t.Fatal(err)
	}
	if r.Msgs != 3 || r.Syncs != 1 || r.Queries != 1 || r.Malformed != 0 {
		t.Fatalf("walked %+v", r)
	}
}

// TestLayerDecode: a segment from port 5432 decodes one PG layer per
// message, naming it, and says when a message continues in later
// segments.
func TestLayerDecode(t *testing.T) {
	payload := append(enc(t, &pgproto3.DataRow{Values: [][]byte{[]byte("7")}}, &pgproto3.ReadyForQuery{TxStatus: 'I'}), 'D', 0, 0, 1, 0, 0)
	frame := tcpFrame(t, Port, 40000, payload)
	got := packet.Format(packet.Decode(frame, "Ether"))
	for _, want := range []string{`PG(type="D", len=11`, `PG(type="Z", len=5, data="I")`, `PG(type="D", len=256`} {
		if !strings.Contains(got, want) {
			t.Errorf("decoded\n%s\nwithout %s", got, want)
		}
	}
	var notes []string
	for _, l := range packet.Decode(frame, "Ether") {
		notes = append(notes, l.Note)
	}
	all := strings.Join(notes, "|")
	for _, want := range []string{"ReadyForQuery idle", "1 of 252 body bytes here"} {
		if !strings.Contains(all, want) {
			t.Errorf("notes %q without %q", all, want)
		}
	}
}

// TestLayout checks the structs' sizes against PROTOCOL.md.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"struct pg_walk", unsafe.Sizeof(ProxyPgWalk{}), 24},
		{"struct pg_conn", unsafe.Sizeof(ProxyPgConn{}), 64},
		{"struct pg_event", unsafe.Sizeof(ProxyPgEvent{}), eventSize},
		{"struct pg_walk_result", unsafe.Sizeof(ProxyPgWalkResult{}), 32},
		{"struct pg_flow", unsafe.Sizeof(ProxyPgFlow{}), 16},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d bytes, PROTOCOL.md says %d", c.name, c.got, c.want)
		}
	}
}
