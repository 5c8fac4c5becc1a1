// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestDifferential runs random interleavings of several simulated clients,
// each beginning, using and committing or aborting transactions or sending
// auto-committed requests, through the program and through the model. The
// replies must agree exactly (SCANs up to their order, see checkScan), the
// log must hold every committed write set in seq order and nothing else,
// and the program's store, open transactions and meta must end as the
// model's, checked after every request. The store (24 keys) and the
// transaction table (4) are small so that commits conflict and both fill;
// keys share prefixes so that SCANs match some of them.
func TestDifferential(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { differential(t, seed, 3000) })
	}
}

func differential(t *testing.T, seed uint64, steps int) {
	const (
		storeCap = 24
		txnCap   = 4
		clients  = 5
	)
	k := load(t, func(spec *ebpf.CollectionSpec) {
		spec.Maps[StoreMap].MaxEntries = storeCap
		spec.Maps[TxnsMap].MaxEntries = txnCap
		longTimeout(t)(spec)
	})
	m := newModel(storeCap, txnCap)
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	keys := make([]string, 0, 32)
	for _, p := range []string{"a", "ab", "b", "user:"} {
		for i := range 8 {
			keys = append(keys, fmt.Sprintf("%s%d", p, i))
		}
	}
	key := func() []byte { return []byte(keys[rng.IntN(len(keys))]) }
	value := func() []byte {
		switch rng.IntN(10) {
		case 0:
			return nil
		case 1:
			return bytes.Repeat([]byte{byte('A' + rng.IntN(26))}, 300+rng.IntN(MaxValue-299))
		}
		return fmt.Appendf(nil, "v%d", rng.IntN(1000))
	}
	txOf := make([]uint64, clients) // each client's open transaction, 0: none
	var stale []uint64              // ids of transactions that ended
	var logged int
	reqid := uint32(0)
	statuses := map[Status]int{}

	for step := range steps {
		c := rng.IntN(clients)
		tx := txOf[c]
		req := &Message{}
		// Client 0 keeps its transactions open long enough to fill
		// their read and write sets.
		commit, abort := 96, 96
		if c == 0 {
			commit, abort = 81, 100
		}
		switch r := rng.IntN(100); {
		case tx == 0 && r < 20:
			req.Op = OpBegin
		case tx == 0 && r < 45:
			req.Op, req.Key = OpGet, key()
		case tx == 0 && r < 70:
			req.Op, req.Key, req.Value = OpSet, key(), value()
		case tx == 0 && r < 85:
			req.Op, req.Key = OpDel, key()
		case tx == 0 && r < 92:
			req.Op, req.Key = OpScan, []byte(keys[rng.IntN(len(keys))][:rng.IntN(3)])
		case tx == 0 && len(stale) > 0:
			req.Op, req.TxID, req.Key = OpGet, stale[rng.IntN(len(stale))], key()
		case tx == 0:
			req.Op = OpAbort
			req.TxID = 1 << 40
		case r < 40:
			req.Op, req.TxID, req.Key = OpGet, tx, key()
		case r < 70:
			req.Op, req.TxID, req.Key, req.Value = OpSet, tx, key(), value()
		case r < 80:
			req.Op, req.TxID, req.Key = OpDel, tx, key()
		case r < commit:
			req.Op, req.TxID = OpCommit, tx
		case r >= abort:
			req.Op, req.TxID = OpAbort, tx
		default:
			req.Op, req.TxID, req.Key = OpGet, tx, key()
		}
		reqid++
		req.ReqID = reqid
		payload := req.Marshal()
		got, err := k.c.Do(req)
		if err != nil {
			t.Fatalf("step %d, client %d: %s: %v", step, c, msgString(req), err)
		}
		want := m.apply(payload)
		if err := sameReply(got, want); err != nil {
			t.Fatalf("step %d, client %d: %s: %v", step, c, msgString(req), err)
		}
		statuses[got.Status()]++
		compareState(t, k, m)
		if t.Failed() {
			t.Fatalf("step %d: after %s -> %s", step, msgString(req), msgString(got))
		}
		// Follow the client's transaction as the reply says.
		switch {
		case req.Op == OpBegin && got.Status() == StatusOK:
			txOf[c] = got.TxID
		case tx != 0 && m.txns[tx] == nil:
			txOf[c] = 0
			stale = append(stale, tx)
		}
		// The log: exactly the model's new commits, in order.
		recs := k.drain()
		wantRecs := m.log[logged:]
		logged = len(m.log)
		if len(recs) != len(wantRecs) {
			t.Fatalf("step %d: %s logged %d records, the model %d", step, msgString(req), len(recs), len(wantRecs))
		}
		for i := range recs {
			recs[i].KtimeNS = 0
			if !reflect.DeepEqual(recs[i], wantRecs[i]) {
				t.Fatalf("step %d: log record %+v, model %+v", step, recs[i], wantRecs[i])
			}
		}
	}
	compareState(t, k, m)
	t.Logf("%d steps: %d commits, %d auto-commits, %d keys, %d open transactions; replies %v",
		steps, m.commits, m.autos, len(m.store), len(m.txns), statuses)
	for _, st := range []Status{StatusOK, StatusNotFound, StatusConflict, StatusNoTxn, StatusTxnFull, StatusBusy, StatusStoreFull} {
		if statuses[st] == 0 {
			t.Errorf("the run never answered %s", st)
		}
	}
}

// compareState checks the program's store, transactions and meta against
// the model's.
func compareState(t *testing.T, k *kvt, m *model) {
	t.Helper()
	s := k.state()
	if len(s.store) != len(m.store) {
		t.Errorf("store has %d keys, the model %d", len(s.store), len(m.store))
	}
	for key, v := range m.store {
		e, ok := s.store[key]
		if !ok || !bytes.Equal(e.Value, v.value) || e.Version != v.version || e.Pending {
			t.Errorf("store[%q] = %+v, model %q at version %d", key, e, v.value, v.version)
		}
	}
	if len(s.txns) != len(m.txns) {
		t.Errorf("%d open transactions, the model %d", len(s.txns), len(m.txns))
	}
	for id, mt := range m.txns {
		st, ok := s.txns[id]
		if !ok {
			t.Errorf("transaction %d is open in the model only", id)
			continue
		}
		var reads, wreads []string
		for _, r := range st.Reads {
			reads = append(reads, fmt.Sprintf("%s@%d", r.Key, r.Version))
		}
		for _, r := range mt.reads {
			wreads = append(wreads, fmt.Sprintf("%s@%d", r.key, r.version))
		}
		if strings.Join(reads, " ") != strings.Join(wreads, " ") {
			t.Errorf("transaction %d read set %v, model %v", id, reads, wreads)
		}
		if len(st.Writes) != len(mt.writes) {
			t.Errorf("transaction %d has %d writes, model %d", id, len(st.Writes), len(mt.writes))
			continue
		}
		for i, w := range st.Writes {
			mw := mt.writes[i]
			if w.Op != mw.Op || !bytes.Equal(w.Key, mw.Key) || !bytes.Equal(w.Value, mw.Value) {
				t.Errorf("transaction %d write %d: %+v, model %+v", id, i, w, mw)
			}
		}
	}
	if s.meta.CommitSeq != m.seq || s.meta.LastTxID != m.lastTxID || s.meta.CommitLock != 0 {
		t.Errorf("meta %+v, model commit_seq %d, last txid %d", s.meta, m.seq, m.lastTxID)
	}
	if got := k.stat(StatCommits); got != uint64(m.commits) {
		t.Errorf("stats commits = %d, model %d", got, m.commits)
	}
	if got := k.stat(StatAutocommits); got != uint64(m.autos) {
		t.Errorf("stats autocommits = %d, model %d", got, m.autos)
	}
	if got := k.stat(StatAbortConflict); got != uint64(m.conflict) {
		t.Errorf("stats abort_conflict = %d, model %d", got, m.conflict)
	}
}
