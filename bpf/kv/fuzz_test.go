// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
)

// FuzzKVRequest sends arbitrary UDP payloads (after valid Ethernet, IPv4
// and UDP headers to kv's port) through xdp_kv with BPF_PROG_TEST_RUN. An
// input is a short sequence of payloads, each preceded by its length (two
// bytes, little-endian), run from an empty store so that every input
// reproduces on its own while still reaching transactions (BEGIN gives
// id 1, then 2, ...). For every payload it checks:
//
//   - the verdict is XDP_PASS with the frame untouched exactly when the
//     payload is not kv's (under 2 bytes, or magic or version wrong), and
//     XDP_TX otherwise, with a reply frame that is right (addresses and
//     ports swapped, lengths and checksums correct);
//   - the reply is the model's (status, op, request id, transaction id,
//     key, value; SCANs up to order);
//   - a payload answered BAD_REQUEST or TOO_BIG, or passed, leaves the
//     store, the open transactions (read and write sets included) and meta
//     exactly as they were, and logs nothing;
//   - afterwards the program's state, counters and log are the model's.
func FuzzKVRequest(f *testing.F) {
	seq := func(ms ...[]byte) []byte {
		var b []byte
		for _, m := range ms {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(m)))
			b = append(b, m...)
		}
		return b
	}
	msg := func(m *Message) []byte { return m.Marshal() }
	f.Add(seq(msg(&Message{Op: OpSet, ReqID: 1, Key: []byte("a"), Value: []byte("1")}), msg(&Message{Op: OpGet, ReqID: 2, Key: []byte("a")}),
		msg(&Message{Op: OpDel, ReqID: 3, Key: []byte("a")}), msg(&Message{Op: OpScan, Key: []byte("a")})))
	f.Add(seq(msg(&Message{Op: OpBegin}), msg(&Message{Op: OpGet, TxID: 1, Key: []byte("a")}),
		msg(&Message{Op: OpSet, TxID: 1, Key: []byte("b"), Value: []byte("2")}), msg(&Message{Op: OpCommit, TxID: 1})))
	f.Add(seq(msg(&Message{Op: OpBegin}), msg(&Message{Op: OpBegin}), msg(&Message{Op: OpGet, TxID: 1, Key: []byte("a")}),
		msg(&Message{Op: OpGet, TxID: 2, Key: []byte("a")}), msg(&Message{Op: OpSet, TxID: 1, Key: []byte("a"), Value: []byte("1")}),
		msg(&Message{Op: OpSet, TxID: 2, Key: []byte("a"), Value: []byte("2")}), msg(&Message{Op: OpCommit, TxID: 1}), msg(&Message{Op: OpCommit, TxID: 2})))
	f.Add(seq(msg(&Message{Op: OpBegin}), msg(&Message{Op: OpDel, TxID: 1, Key: []byte("x")}), msg(&Message{Op: OpAbort, TxID: 1})))
	f.Add(seq(msg(&Message{Op: OpSet, Key: bytes.Repeat([]byte("k"), MaxKey+1), Value: []byte("v")})))
	f.Add(seq(msg(&Message{Op: OpSet, Key: []byte("k"), Value: bytes.Repeat([]byte("v"), MaxValue+1)})))
	f.Add(seq(msg(&Message{Op: 9, Key: []byte("k")}), []byte{}, []byte{magic}, []byte{magic, version, byte(OpGet)}))
	f.Add(seq(raw(OpGet, 0, 0, 5, 0, "a"), raw(OpSet, 0, 0, 1, 3, "abc"), raw(OpBegin, 1, 0, 0, 0, "")))

	// Small tables, so that they fill (STORE_FULL, BUSY) within one input.
	const storeCap, txnCap, maxRequests = 8, 2, 12
	k := load(f, func(spec *ebpf.CollectionSpec) {
		spec.Maps[StoreMap].MaxEntries = storeCap
		spec.Maps[TxnsMap].MaxEntries = txnCap
		longTimeout(f)(spec)
	})
	f.Fuzz(func(t *testing.T, input []byte) {
		k.t = t
		k.reset()
		m := newModel(storeCap, txnCap)
		logged := 0
		for n := 0; len(input) >= 2 && n < maxRequests; n++ {
			l := min(int(binary.LittleEndian.Uint16(input)), len(input)-2)
			payload := input[2 : 2+l]
			input = input[2+l:]
			// A frame past the 3520 bytes of linear data an XDP test run
			// offers becomes a multi-buffer frame, whose datagram the
			// program cannot see whole and passes; kv messages are at
			// most 596 bytes.
			payload = payload[:min(len(payload), 1400)]

			before := k.state()
			frame := k.c.Addr.Frame(payload)
			ret, out, err := k.c.Exchange(frame)
			if err != nil {
				t.Fatal(err)
			}
			want := m.apply(payload)
			recs := k.drain()
			if want == nil {
				if ret != xdpPass || !bytes.Equal(out, frame) {
					t.Fatalf("payload %x is not kv's: retval %d, want XDP_PASS and the frame untouched", payload, ret)
				}
			} else {
				if ret != xdpTX {
					t.Fatalf("payload %x: retval %d, want XDP_TX", payload, ret)
				}
				got, err := CheckReply(k.c.Addr, out)
				if err != nil {
					t.Fatalf("payload %x: %v", payload, err)
				}
				if err := sameReply(got, want); err != nil {
					t.Fatalf("payload %x: %v", payload, err)
				}
			}
			if want == nil || want.Status() == StatusBadRequest || want.Status() == StatusTooBig {
				if after := k.state(); !reflect.DeepEqual(before, after) || len(recs) != 0 {
					t.Fatalf("payload %x (%v) changed the state or logged %d records", payload, want, len(recs))
				}
			}
			wantRecs := m.log[logged:]
			logged = len(m.log)
			if len(recs) != len(wantRecs) {
				t.Fatalf("payload %x logged %d records, the model %d", payload, len(recs), len(wantRecs))
			}
			for i := range recs {
				recs[i].KtimeNS = 0
				if !reflect.DeepEqual(recs[i], wantRecs[i]) {
					t.Fatalf("payload %x: log record %+v, model %+v", payload, recs[i], wantRecs[i])
				}
			}
			compareState(t, k, m)
		}
	})
}

// reset empties the store, the transactions, meta, the counters and the
// log ring, as if the program had just been loaded.
func (k *kvt) reset() {
	k.t.Helper()
	var (
		key  KvKvKey
		val  KvKvValue
		keys []KvKvKey
		id   uint64
		txn  KvKvTxn
		ids  []uint64
	)
	for it := k.h.Store.Iterate(); it.Next(&key, &val); {
		keys = append(keys, key)
	}
	for _, key := range keys {
		if err := k.h.Store.Delete(&key); err != nil {
			k.t.Fatal(err)
		}
	}
	for it := k.h.Txns.Iterate(); it.Next(&id, &txn); {
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := k.h.Txns.Delete(id); err != nil {
			k.t.Fatal(err)
		}
	}
	if err := k.h.Meta.Update(uint32(0), KvKvMeta{}, ebpf.UpdateExist); err != nil {
		k.t.Fatal(err)
	}
	zeros := make([]uint64, ebpf.MustPossibleCPU())
	for i := range StatNames {
		if err := k.h.Stats.Update(uint32(i), zeros, ebpf.UpdateExist); err != nil {
			k.t.Fatal(err)
		}
	}
	k.drain()
}
