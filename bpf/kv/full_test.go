// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// TestLogFull fills a small log ring by not draining it: the commit that
// finds no room answers LOG_FULL and changes nothing; a transaction stays
// open and commits once the ring has been drained.
func TestLogFull(t *testing.T) {
	k := load(t, func(spec *ebpf.CollectionSpec) {
		// 32 KiB: three 9320-byte records (the sample and its header).
		spec.Maps[LogMap].MaxEntries = 32 << 10
		longTimeout(t)(spec)
	})
	for i := range 3 {
		k.want(StatusOK, &Message{Op: OpSet, Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})
	}
	tx := k.begin()
	k.set(tx, "t", "1")
	before := k.state()
	k.want(StatusLogFull, &Message{Op: OpSet, Key: []byte("k3"), Value: []byte("v")})
	k.want(StatusLogFull, &Message{Op: OpDel, Key: []byte("k0")})
	k.want(StatusLogFull, &Message{Op: OpCommit, TxID: tx})
	if after := k.state(); !reflect.DeepEqual(before, after) {
		t.Fatalf("LOG_FULL changed the state:\n%+v\n%+v", before, after)
	}
	// Reads and transactions go on while the log is full.
	k.want(StatusOK, &Message{Op: OpGet, Key: []byte("k0")})
	if recs := k.drain(); len(recs) != 3 || recs[2].Seq != 3 {
		t.Fatalf("drained %d records, want seq 1-3", len(recs))
	}
	k.want(StatusOK, &Message{Op: OpCommit, TxID: tx})
	if recs := k.drain(); len(recs) != 1 || recs[0].Seq != 4 || recs[0].TxID != tx {
		t.Fatalf("after the retried COMMIT: %+v, want seq 4 of txn %d", recs, tx)
	}
	if got := k.stat(StatStatusBase + int(StatusLogFull)); got != 3 {
		t.Errorf("log_full = %d, want 3", got)
	}
}

// TestStoreFull shrinks the store to four keys: a commit that needs a
// fifth answers STORE_FULL and installs none of its writes, not even the
// new keys that would have fitted; replacing and deleting keys still work.
func TestStoreFull(t *testing.T) {
	k := load(t, func(spec *ebpf.CollectionSpec) {
		spec.Maps[StoreMap].MaxEntries = 4
		longTimeout(t)(spec)
	})
	for i := range 3 {
		k.set(0, fmt.Sprintf("k%d", i), "v")
	}
	tx := k.begin()
	k.set(tx, "k0", "replaced")
	k.set(tx, "new1", "fits")
	k.set(tx, "new2", "does not")
	k.do(&Message{Op: OpDel, TxID: tx, Key: []byte("k1")})
	k.drain()
	before := k.state()
	k.want(StatusStoreFull, &Message{Op: OpCommit, TxID: tx})
	if after := k.state(); !reflect.DeepEqual(before, after) {
		t.Fatalf("STORE_FULL changed the state:\n%+v\n%+v", before, after)
	}
	if len(k.drain()) != 0 {
		t.Fatal("STORE_FULL logged a record")
	}
	k.want(StatusOK, &Message{Op: OpSet, Key: []byte("k3"), Value: []byte("the fourth")})
	k.want(StatusStoreFull, &Message{Op: OpSet, Key: []byte("k4"), Value: []byte("a fifth")})
	k.want(StatusOK, &Message{Op: OpSet, Key: []byte("k3"), Value: []byte("replacing fits")})
	// The transaction stayed open: once a key is deleted it fits...
	k.want(StatusOK, &Message{Op: OpDel, Key: []byte("k2")})
	k.want(StatusStoreFull, &Message{Op: OpCommit, TxID: tx}) // new1 and new2 need two
	k.want(StatusOK, &Message{Op: OpDel, Key: []byte("k3")})
	k.want(StatusOK, &Message{Op: OpCommit, TxID: tx})
	s := k.state()
	want := map[string]string{"k0": "replaced", "new1": "fits", "new2": "does not"}
	if len(s.store) != len(want) {
		t.Fatalf("store %+v, want %v", s.store, want)
	}
	for key, v := range want {
		if string(s.store[key].Value) != v || s.store[key].Pending {
			t.Errorf("%s = %+v, want %q", key, s.store[key], v)
		}
	}
}

// TestBusy covers the three ways to get BUSY: the commit lock held past
// the spin limit, the transaction table full, a transaction in use.
func TestBusy(t *testing.T) {
	k := load(t, func(spec *ebpf.CollectionSpec) {
		spec.Maps[TxnsMap].MaxEntries = 2
		longTimeout(t)(spec)
	})
	setLock := func(v uint32) {
		var m KvKvMeta
		if err := k.h.Meta.Lookup(uint32(0), &m); err != nil {
			t.Fatal(err)
		}
		m.CommitLock = v
		if err := k.h.Meta.Update(uint32(0), &m, ebpf.UpdateExist); err != nil {
			t.Fatal(err)
		}
	}
	tx := k.begin()
	k.set(tx, "a", "1")
	setLock(1) // as if a commit on another CPU never let go
	before := k.state()
	k.want(StatusBusy, &Message{Op: OpSet, Key: []byte("a"), Value: []byte("2")})
	k.want(StatusBusy, &Message{Op: OpDel, Key: []byte("a")})
	k.want(StatusBusy, &Message{Op: OpCommit, TxID: tx})
	if after := k.state(); !reflect.DeepEqual(before, after) {
		t.Fatalf("BUSY changed the state")
	}
	setLock(0)
	k.want(StatusOK, &Message{Op: OpCommit, TxID: tx})

	t1, t2 := k.begin(), k.begin()
	before = k.state()
	r := k.want(StatusBusy, &Message{Op: OpBegin})
	if r.TxID != 0 {
		t.Errorf("BUSY BEGIN gave transaction id %d", r.TxID)
	}
	after := k.state()
	before.meta.LastTxID++ // the id was taken before the table refused it
	if !reflect.DeepEqual(before, after) {
		t.Errorf("a refused BEGIN changed the state:\n%+v\n%+v", before, after)
	}

	// A transaction in use by a request on another CPU.
	var txn KvKvTxn
	if err := k.h.Txns.Lookup(t1, &txn); err != nil {
		t.Fatal(err)
	}
	txn.Busy = 1
	if err := k.h.Txns.Update(t1, &txn, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	k.want(StatusBusy, &Message{Op: OpGet, TxID: t1, Key: []byte("a")})
	k.want(StatusBusy, &Message{Op: OpCommit, TxID: t1})
	txn.Busy = 0
	if err := k.h.Txns.Update(t1, &txn, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	k.want(StatusOK, &Message{Op: OpAbort, TxID: t1})
	k.want(StatusOK, &Message{Op: OpAbort, TxID: t2})
	k.begin()
}

// TestTxnExpiry runs with a 300 ms idle timeout: a transaction used every
// 50 ms outlives it, one left alone is removed by its timer, and its id is
// then unknown.
func TestTxnExpiry(t *testing.T) {
	k := load(t, func(spec *ebpf.CollectionSpec) {
		setVar(t, spec, VarTxnTimeout, uint64(300*time.Millisecond))
	})
	tx := k.begin()
	idle := k.begin()
	k.set(tx, "a", "1")
	for range 12 { // 600 ms of use
		time.Sleep(50 * time.Millisecond)
		k.want(StatusOK, &Message{Op: OpGet, TxID: tx, Key: []byte("a")})
	}
	k.want(StatusOK, &Message{Op: OpCommit, TxID: tx})
	waitGone(t, k, idle)
	k.want(StatusNoTxn, &Message{Op: OpGet, TxID: idle, Key: []byte("a")})
	if got := k.stat(StatAbortExpired); got != 1 {
		t.Errorf("abort_expired = %d, want 1", got)
	}
	// A shorter timeout set at load, with a write set: nothing of it stays.
	k2 := load(t, func(spec *ebpf.CollectionSpec) {
		setVar(t, spec, VarTxnTimeout, uint64(50*time.Millisecond))
	})
	tx = k2.begin()
	k2.set(tx, "x", "never")
	waitGone(t, k2, tx)
	k2.want(StatusNoTxn, &Message{Op: OpCommit, TxID: tx})
	k2.want(StatusNotFound, &Message{Op: OpGet, Key: []byte("x")})
}

// waitGone waits (up to 10 s, for a loaded machine) for transaction id to
// leave the txns map.
func waitGone(t *testing.T, k *kvt, id uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := k.h.Txn(id); errors.Is(err, ebpf.ErrKeyNotExist) {
			return
		}
	}
	t.Fatalf("transaction %d still open 10 s later", id)
}

// TestStoreFullRollback is the differential test's first find: a commit
// that fails on its first new key must not undo what an earlier commit
// inserted at the same positions of its write set.
func TestStoreFullRollback(t *testing.T) {
	k := load(t, func(spec *ebpf.CollectionSpec) {
		spec.Maps[StoreMap].MaxEntries = 4
		longTimeout(t)(spec)
	})
	k.set(0, "k0", "v")
	k.set(0, "k1", "v")
	tx := k.begin()
	k.set(tx, "n0", "new")
	k.set(tx, "n1", "new")
	k.want(StatusOK, &Message{Op: OpCommit, TxID: tx}) // inserted n0, n1 at positions 0, 1
	tx = k.begin()
	k.set(tx, "x", "does not fit")
	k.set(tx, "k0", "replaced")
	before := k.state()
	k.want(StatusStoreFull, &Message{Op: OpCommit, TxID: tx})
	if after := k.state(); !reflect.DeepEqual(before, after) {
		t.Fatalf("STORE_FULL changed the state:\n%+v\n%+v", before.store, after.store)
	}
}

// TestManyTransactions runs thousands of BEGINs and ABORTs back to back
// with room for two transactions: none may be refused. (Per-transaction
// bpf_timers failed this: bpf_timer_init from XDP runs out of memory after
// a few hundred quick cycles on Linux 6.18, so kv expires transactions by
// timestamp and one sweeper timer instead.)
func TestManyTransactions(t *testing.T) {
	k := load(t, func(spec *ebpf.CollectionSpec) {
		spec.Maps[TxnsMap].MaxEntries = 2
		longTimeout(t)(spec)
	})
	for i := range 5000 {
		tx := k.begin()
		if i%2 == 0 {
			k.set(tx, "k", "v")
			k.want(StatusOK, &Message{Op: OpAbort, TxID: tx})
		} else {
			k.want(StatusOK, &Message{Op: OpCommit, TxID: tx})
		}
		if i%500 == 0 {
			k.drain()
		}
	}
}
