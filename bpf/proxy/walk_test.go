// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/jackc/pgx/v5/pgproto3"
)

func TestWalkQuery(t *testing.T) {
	objs := loadObjs(t)
	w := clientWalker(t, objs, 40001)
	r := w.chunk(enc(t, &pgproto3.Query{String: "select 1"}))
	if r.Msgs != 1 || r.Queries != 1 || r.Syncs != 0 || r.Malformed != 0 || r.BoundHit != 0 {
		t.Fatalf("one Query: got %+v", r)
	}
	st := w.state()
	if st.Walk.Remain != 0 || st.Walk.Held != 0 || st.Walk.Last != 'Q' {
		t.Fatalf("after a whole Query the walker should stand between messages, last 'Q': %+v", st.Walk)
	}
	// A Ethernet frame this short is padded to 60 bytes: the padding
	// must not be walked as messages (it would be a malformed length 0).
	r = w.chunk(enc(t, &pgproto3.Sync{}))
	if r.Msgs != 1 || r.Syncs != 1 || r.Malformed != 0 {
		t.Fatalf("Sync in a padded frame: got %+v", r)
	}
	r = w.chunk(enc(t, &pgproto3.Terminate{}))
	if r.Terminate != 1 {
		t.Fatalf("Terminate not reported: %+v", r)
	}
}

// clientStream is an extended-protocol batch and a simple query, as psql
// and pgbench send them.
func clientStream(t testing.TB) []byte {
	return enc(t,
		&pgproto3.Parse{Name: "s1", Query: "select $1::int"},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("42")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "begin; update t set v = v + 1; commit"},
		&pgproto3.FunctionCall{Function: 7},
	)
}

func serverStream(t testing.TB) []byte {
	return enc(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("22")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")},
		&pgproto3.ReadyForQuery{TxStatus: 'T'},
		&pgproto3.CommandComplete{CommandTag: []byte("COMMIT")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
}

// TestWalkSplitEverywhere cuts a stream into two and three segments at
// every pair of byte boundaries: the totals must be those of the whole,
// the state carried across (headers and ReadyForQuery status bytes split
// included), and the last chunk must report the final ReadyForQuery's
// status exactly when it holds that status byte.
func TestWalkSplitEverywhere(t *testing.T) {
	objs := loadObjs(t)
	for _, side := range []struct {
		name   string
		server bool
		data   []byte
	}{{"client", false, clientStream(t)}, {"server", true, serverStream(t)}} {
		t.Run(side.name, func(t *testing.T) {
			model := &modelWalk{server: side.server}
			whole := model.walk(side.data)
			port := uint16(41000)
			n := len(side.data)
			for i := 0; i <= n; i++ {
				for j := i; j <= n; j += 1 + (n-i)/16*boolInt(i%5 != 0) {
					port++
					var w *walker
					if side.server {
						w = serverWalker(t, objs, port)
					} else {
						w = clientWalker(t, objs, port)
					}
					var sum modelResult
					var last ProxyPgWalkResult
					for _, seg := range [][]byte{side.data[:i], side.data[i:j], side.data[j:]} {
						if len(seg) == 0 {
							continue
						}
						last = w.chunk(seg)
						if last.Malformed != 0 || last.BoundHit != 0 {
							t.Fatalf("cut at %d,%d: well-formed chunk reported malformed/bound: %+v", i, j, last)
						}
						sum.msgs += last.Msgs
						sum.queries += last.Queries
						sum.syncs += last.Syncs
						sum.calls += last.Calls
						sum.ready += last.Ready
					}
					if sum.msgs != whole.msgs || sum.queries != whole.queries || sum.syncs != whole.syncs || sum.calls != whole.calls || sum.ready != whole.ready {
						t.Fatalf("cut at %d,%d: totals %+v, whole stream %+v", i, j, sum, whole)
					}
					st := w.state()
					if !walkBoundary(st.Walk) {
						t.Fatalf("cut at %d,%d: after the whole stream the walker is mid-message: %+v", i, j, st.Walk)
					}
					if side.server && last.Rfq != 'I' {
						t.Fatalf("cut at %d,%d: the last chunk ends with ReadyForQuery 'I' but reports rfq %q", i, j, last.Rfq)
					}
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func walkBoundary(w ProxyPgWalk) bool {
	return w.Remain == 0 && w.Held == 0 && w.Flags&(WalkStatus|WalkBroken) == 0
}

// TestWalkManyDataRows walks thousands of DataRow messages in segments of
// about 3.4 KB (test-run's limit for a TC packet), message boundaries and
// segment boundaries unaligned.
func TestWalkManyDataRows(t *testing.T) {
	objs := loadObjs(t)
	w := serverWalker(t, objs, 42000)
	var stream []byte
	const rows = 5000
	for i := range rows {
		stream = append(stream, enc(t, &pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("v"), i%7)}})...)
	}
	stream = append(stream, enc(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 5000")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})...)
	var msgs, chunks uint32
	var last ProxyPgWalkResult
	for off := 0; off < len(stream); off += 3333 {
		last = w.chunk(stream[off:min(off+3333, len(stream))])
		if last.Malformed != 0 || last.BoundHit != 0 {
			t.Fatalf("chunk at %d: %+v", off, last)
		}
		msgs += last.Msgs
		chunks++
	}
	if msgs != rows+2 || last.Rfq != 'I' || last.Ready != 1 {
		t.Fatalf("%d DataRows + CommandComplete + ReadyForQuery in %d chunks: walked %d messages, last chunk %+v", rows, chunks, msgs, last)
	}
	if st := w.state(); st.Msgs != rows+2 || st.Chunks != uint64(chunks) {
		t.Fatalf("flow totals: %+v", st)
	}
}

// TestWalkMalformed: a length under 4 or over 1 GB is malformed, and the
// stream stays lost (flagged again) whatever follows.
func TestWalkMalformed(t *testing.T) {
	objs := loadObjs(t)
	for i, bad := range [][]byte{
		{'Q', 0, 0, 0, 3},
		{'Q', 0, 0, 0, 0},
		{'D', 0x40, 0, 0, 1},
		{'D', 0xff, 0xff, 0xff, 0xff},
	} {
		w := serverWalker(t, objs, uint16(43000+i))
		good := enc(t, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		r := w.chunk(append(append([]byte{}, good...), bad...))
		if r.Malformed != 1 || r.Msgs != 1 {
			t.Fatalf("%x after a good message: want malformed with 1 message counted, got %+v", bad, r)
		}
		if r = w.chunk(good); r.Malformed != 1 || r.Msgs != 0 {
			t.Fatalf("%x: the stream should stay lost, got %+v", bad, r)
		}
		if st := w.state(); st.Walk.Flags&WalkBroken == 0 || st.Malformed != 1 {
			t.Fatalf("%x: state not marked broken: %+v", bad, st)
		}
	}
	// The largest length allowed is not malformed: the walker waits for
	// its body.
	w := serverWalker(t, objs, 43100)
	if r := w.chunk([]byte{'D', 0x40, 0, 0, 0, 1, 2, 3}); r.Malformed != 0 || r.Msgs != 1 {
		t.Fatalf("length 1 GB: %+v", r)
	}
	if st := w.state(); st.Walk.Remain != MaxMessageLen-4-3 {
		t.Fatalf("remain after a 1 GB header and 3 body bytes: %d", st.Walk.Remain)
	}
}

// TestWalkNotPostgres: segments of other ports are left alone.
func TestWalkNotPostgres(t *testing.T) {
	objs := loadObjs(t)
	ret, err := objs.TcPgWalk.Run(&ebpf.RunOptions{Data: tcpFrame(t, 1234, 80, []byte("GET / HTTP/1.0\r\n\r\n"))})
	if err != nil {
		t.Fatal(err)
	}
	if int32(ret) != -1 {
		t.Fatalf("a segment to port 80: want TC_ACT_UNSPEC (-1), got %d", int32(ret))
	}
}
