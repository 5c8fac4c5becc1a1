// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bpfsh/bpfsh/bpf/proxy"
	"github.com/bpfsh/bpfsh/testrun"
)

func pgEnc(t testing.TB, msgs ...pgproto3.Message) []byte {
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

// TestDifferentialProxyWalk runs the proxy's tc_pg_walk (the PostgreSQL
// message walker, the one proxy program the kernel can test-run) over
// client and server streams cut at many places, thousands of DataRows,
// malformed lengths and other ports.
func TestDifferentialProxyWalk(t *testing.T) {
	differential(t)
	spec, err := proxy.Spec()
	if err != nil {
		t.Fatal(err)
	}
	spec = spec.Copy()
	for n := range spec.Programs {
		if n != "tc_pg_walk" {
			delete(spec.Programs, n)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Skipf("skipped: this kernel cannot load tc_pg_walk: %v", err)
	}
	defer coll.Close()
	walk := coll.Programs["tc_pg_walk"]
	chunk := func(sport, dport uint16, payload []byte) {
		t.Helper()
		run(t, testrun.Options{Program: walk, Data: l4Frame(t, true, clientMAC, serverMAC, clientIP, serverIP, sport, dport, payload)})
	}
	client := pgEnc(t,
		&pgproto3.Parse{Name: "s1", Query: "select $1::int"},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("42")}},
		&pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Query{String: "begin; update t set v = v + 1; commit"},
		&pgproto3.FunctionCall{Function: 7})
	server := pgEnc(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}}, &pgproto3.DataRow{Values: [][]byte{[]byte("22")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")}, &pgproto3.ReadyForQuery{TxStatus: 'T'},
		&pgproto3.CommandComplete{CommandTag: []byte("COMMIT")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	port := uint16(41000)
	step := 1
	if testing.Short() {
		step = 7
	}
	for _, side := range []struct {
		server bool
		data   []byte
	}{{false, client}, {true, server}} {
		for i := 0; i <= len(side.data); i += step {
			port++
			for _, seg := range [][]byte{side.data[:i], side.data[i:]} {
				if len(seg) == 0 {
					continue
				}
				if side.server {
					chunk(proxy.Port, port, seg)
				} else {
					chunk(port, proxy.Port, seg)
				}
			}
		}
	}
	// Thousands of rows in segments of about 3.3 KB.
	var stream []byte
	for i := range 800 {
		stream = append(stream, pgEnc(t, &pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("v"), i%7)}})...)
	}
	stream = append(stream, pgEnc(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 800")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})...)
	for off := 0; off < len(stream); off += 3333 {
		chunk(proxy.Port, 42000, stream[off:min(off+3333, len(stream))])
	}
	// Malformed lengths, the largest allowed one, other ports.
	good := pgEnc(t, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	for i, bad := range [][]byte{{'Q', 0, 0, 0, 3}, {'Q', 0, 0, 0, 0}, {'D', 0x40, 0, 0, 1}, {'D', 0xff, 0xff, 0xff, 0xff}} {
		chunk(proxy.Port, uint16(43000+i), append(append([]byte{}, good...), bad...))
		chunk(proxy.Port, uint16(43000+i), good)
	}
	chunk(proxy.Port, 43100, []byte{'D', 0x40, 0, 0, 0, 1, 2, 3})
	chunk(1234, 80, []byte("GET / HTTP/1.0\r\n\r\n"))
}
