// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// FuzzWalk feeds arbitrary bytes, cut into up to three segments at
// positions taken from the input, through tc_pg_walk as a client's and as
// a server's stream, and compares every chunk with the Go model: message
// and request counts, ReadyForQuery statuses, malformed flags and the
// carried state must agree. So a well-formed stream is never miscounted,
// a malformed one is always flagged, and the state is never garbled.
func FuzzWalk(f *testing.F) {
	objs := loadObjs(f)
	f.Add(uint16(3), uint16(9), clientStream(f))
	f.Add(uint16(1), uint16(40), serverStream(f))
	f.Add(uint16(0), uint16(0), []byte{'Q', 0, 0, 0, 3})
	f.Add(uint16(2), uint16(4), enc(f, &pgproto3.ReadyForQuery{TxStatus: 'E'}, &pgproto3.Terminate{}))
	f.Add(uint16(5), uint16(6), []byte{'D', 0x40, 0, 0, 0, 1, 2})
	port := uint16(20000)
	f.Fuzz(func(t *testing.T, a, b uint16, data []byte) {
		if len(data) > 3000 {
			data = data[:3000] // test-run's TC packet limit
		}
		i, j := int(a)%(len(data)+1), int(b)%(len(data)+1)
		if i > j {
			i, j = j, i
		}
		for _, server := range []bool{false, true} {
			port++
			if port < 20000 {
				port = 20000
			}
			w := clientWalker(t, objs, port)
			if server {
				w = serverWalker(t, objs, port)
			}
			m := &modelWalk{server: server}
			for _, seg := range [][]byte{data[:i], data[i:j], data[j:]} {
				if len(seg) == 0 {
					continue
				}
				got := w.chunk(seg)
				want := m.walk(seg)
				if got.BoundHit != 0 {
					t.Fatalf("bound hit on %d bytes", len(seg))
				}
				if got.Msgs != want.msgs || got.Queries != want.queries || got.Syncs != want.syncs || got.Calls != want.calls ||
					got.Ready != want.ready || (got.Terminate != 0) != want.terminate || got.Rfq != want.rfq || (got.Malformed != 0) != want.malformed ||
					(got.BadType != 0) != want.badType {
					t.Fatalf("server=%v cut %d,%d segment %x: kernel %+v, model %+v", server, i, j, seg, got, want)
				}
				st := w.state().Walk
				if st.Remain != m.remain || int(st.Held) != len(m.hdr) || (st.Flags&WalkBroken != 0) != m.broken || (st.Flags&WalkStatus != 0) != m.status {
					t.Fatalf("server=%v cut %d,%d: kernel state %+v, model %+v", server, i, j, st, m)
				}
			}
		}
	})
}
