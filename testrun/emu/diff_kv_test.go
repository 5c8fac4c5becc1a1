// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/kv"
	"github.com/bpfsh/bpfsh/testrun"
)

// loadKV loads the kv object with a small store and transaction table (so
// that they fill), or skips when this kernel's verifier refuses it.
func loadKV(t *testing.T, storeCap, txnCap uint32) *kv.Handle {
	t.Helper()
	spec, err := kv.Spec()
	if err != nil {
		t.Fatal(err)
	}
	spec.Maps[kv.StoreMap].MaxEntries = storeCap
	spec.Maps[kv.TxnsMap].MaxEntries = txnCap
	if err := spec.Variables[kv.VarTxnTimeout].Set(uint64(time.Hour)); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Skipf("skipped: this kernel cannot load kv: %v", err)
	}
	t.Cleanup(coll.Close)
	h, err := kv.FromCollection(coll)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// kvRun sends one request through testrun (and so through the emulator)
// and returns the reply, nil when the program did not answer.
func kvRun(t *testing.T, h *kv.Handle, req *kv.Message) *kv.Message {
	t.Helper()
	o := run(t, testrun.Options{Program: h.Prog, Data: kv.DefaultAddressing().Frame(req.Marshal())})
	if o.Retval != 3 {
		return nil
	}
	_, payload, err := kv.ParseFrame(o.DataOut)
	if err != nil {
		t.Fatalf("reply frame: %v", err)
	}
	m, err := kv.Unmarshal(payload)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	return m
}

// TestDifferentialKV runs kv's request mix (GET, SET, DEL, SCAN on their
// own and in transactions that commit, abort, conflict and fill up)
// through the emulator and the kernel, as kv's own differential test
// drives it against its model.
func TestDifferentialKV(t *testing.T) {
	steps := 300
	if testing.Short() {
		steps = 80
	}
	d := differential(t)
	h := loadKV(t, 24, 4)
	rng := rand.New(rand.NewPCG(7, 11))
	var keys []string
	for _, p := range []string{"a", "ab", "b", "user:"} {
		for i := range 6 {
			keys = append(keys, fmt.Sprintf("%s%d", p, i))
		}
	}
	key := func() []byte { return []byte(keys[rng.IntN(len(keys))]) }
	value := func() []byte {
		switch rng.IntN(10) {
		case 0:
			return nil
		case 1:
			return bytes.Repeat([]byte{byte('A' + rng.IntN(26))}, 300+rng.IntN(kv.MaxValue-299))
		}
		return fmt.Appendf(nil, "v%d", rng.IntN(1000))
	}
	const clients = 4
	txOf := make([]uint64, clients)
	var stale []uint64
	reqid := uint32(0)
	for range steps {
		c := rng.IntN(clients)
		tx := txOf[c]
		req := &kv.Message{}
		switch r := rng.IntN(100); {
		case tx == 0 && r < 20:
			req.Op = kv.OpBegin
		case tx == 0 && r < 45:
			req.Op, req.Key = kv.OpGet, key()
		case tx == 0 && r < 70:
			req.Op, req.Key, req.Value = kv.OpSet, key(), value()
		case tx == 0 && r < 85:
			req.Op, req.Key = kv.OpDel, key()
		case tx == 0 && r < 92:
			req.Op, req.Key = kv.OpScan, []byte(keys[rng.IntN(len(keys))][:rng.IntN(3)])
		case tx == 0 && len(stale) > 0:
			req.Op, req.TxID, req.Key = kv.OpGet, stale[rng.IntN(len(stale))], key()
		case tx == 0:
			req.Op, req.TxID = kv.OpAbort, 1<<40
		case r < 40:
			req.Op, req.TxID, req.Key = kv.OpGet, tx, key()
		case r < 70:
			req.Op, req.TxID, req.Key, req.Value = kv.OpSet, tx, key(), value()
		case r < 80:
			req.Op, req.TxID, req.Key = kv.OpDel, tx, key()
		case r < 92:
			req.Op, req.TxID = kv.OpCommit, tx
		case r < 96:
			req.Op, req.TxID = kv.OpScan, tx
		default:
			req.Op, req.TxID = kv.OpAbort, tx
		}
		reqid++
		req.ReqID = reqid
		got := kvRun(t, h, req)
		if got == nil {
			continue
		}
		switch {
		case req.Op == kv.OpBegin && got.Status() == kv.StatusOK:
			txOf[c] = got.TxID
		case tx != 0 && (req.Op == kv.OpCommit || req.Op == kv.OpAbort || got.Status() == kv.StatusNoTxn):
			txOf[c] = 0
			stale = append(stale, tx)
		}
		if t.Failed() {
			break
		}
	}
	// Requests the program refuses or passes on.
	frames := [][]byte{
		kv.DefaultAddressing().Frame([]byte("not kv at all")),
		kv.DefaultAddressing().Frame((&kv.Message{Op: 99, Key: []byte("x")}).Marshal()),
		kv.DefaultAddressing().Frame((&kv.Message{Op: kv.OpGet, Key: bytes.Repeat([]byte("k"), kv.MaxKey+1)}).Marshal()),
		kv.DefaultAddressing().Frame((&kv.Message{Op: kv.OpSet, Key: []byte("a"), Value: bytes.Repeat([]byte("v"), kv.MaxValue+1)}).Marshal()),
	}
	for _, f := range frames {
		run(t, testrun.Options{Program: h.Prog, Data: f})
	}
	_ = d
}
