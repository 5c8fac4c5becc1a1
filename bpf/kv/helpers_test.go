// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// kvt is one test's own kv: the embedded object loaded into the kernel,
// pinned under the test's private pin root, a client that test-runs it,
// and a reader of its log ring.
type kvt struct {
	t   testing.TB
	h   *Handle
	c   *Client
	log *ringbuf.Reader
	dir string
}

// load loads kv for t, after tweak (if any) changed the spec: constants,
// map sizes. Everything is closed and unpinned when t ends.
func load(t testing.TB, tweak func(*ebpf.CollectionSpec)) *kvt {
	t.Helper()
	dir := bpftest.PinRoot(t)
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(spec)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load kv: %v", err)
	}
	t.Cleanup(coll.Close)
	for name, p := range coll.Programs {
		if err := p.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for name, m := range coll.Maps {
		if err := m.Pin(filepath.Join(dir, strings.TrimPrefix(name, "."))); err != nil {
			t.Fatal(err)
		}
	}
	h, err := FromCollection(coll)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(h.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return &kvt{t: t, h: h, c: NewClient(h.Prog), log: rd, dir: dir}
}

// setVar sets a constant of spec; for load's tweak.
func setVar(t testing.TB, spec *ebpf.CollectionSpec, name string, v any) {
	t.Helper()
	if err := spec.Variables[name].Set(v); err != nil {
		t.Fatalf("set %s: %v", name, err)
	}
}

// longTimeout keeps transactions from expiring during a test.
func longTimeout(t testing.TB) func(*ebpf.CollectionSpec) {
	return func(spec *ebpf.CollectionSpec) { setVar(t, spec, VarTxnTimeout, uint64(time.Hour)) }
}

// do sends a request and fails the test when there is no proper reply.
func (k *kvt) do(m *Message) *Message {
	k.t.Helper()
	r, err := k.c.Do(m)
	if err != nil {
		k.t.Fatalf("%s %q: %v", m.Op, m.Key, err)
	}
	return r
}

// want sends a request and checks the reply's status.
func (k *kvt) want(st Status, m *Message) *Message {
	k.t.Helper()
	r := k.do(m)
	if r.Status() != st {
		k.t.Fatalf("%s key=%q txid=%d: %s, want %s", m.Op, m.Key, m.TxID, r.Status(), st)
	}
	return r
}

func (k *kvt) set(txid uint64, key, value string) *Message {
	return k.do(&Message{Op: OpSet, TxID: txid, Key: []byte(key), Value: []byte(value)})
}

func (k *kvt) get(txid uint64, key string) *Message {
	return k.do(&Message{Op: OpGet, TxID: txid, Key: []byte(key)})
}

func (k *kvt) begin() uint64 {
	k.t.Helper()
	r := k.want(StatusOK, &Message{Op: OpBegin})
	if r.TxID == 0 {
		k.t.Fatal("BEGIN OK with transaction id 0")
	}
	return r.TxID
}

// drain reads every record in the log ring now.
func (k *kvt) drain() []LogRecord {
	k.t.Helper()
	var out []LogRecord
	k.log.SetDeadline(time.Now())
	for {
		rec, err := k.log.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			k.t.Fatalf("read kv log: %v", err)
		}
		r, err := ParseLogRecord(rec.RawSample)
		if err != nil {
			k.t.Fatal(err)
		}
		if len(rec.RawSample) != LogRecordSize {
			k.t.Fatalf("log record of %d bytes, want %d", len(rec.RawSample), LogRecordSize)
		}
		out = append(out, r)
	}
}

// state is everything a request may change: the store, the open
// transactions (with their read and write sets) and meta.
type state struct {
	store map[string]Entry
	txns  map[uint64]TxnState
	meta  Meta
}

func (k *kvt) state() state {
	k.t.Helper()
	s := state{store: map[string]Entry{}, txns: map[uint64]TxnState{}}
	entries, err := k.h.Dump()
	if err != nil {
		k.t.Fatal(err)
	}
	for _, e := range entries {
		s.store[string(e.Key)] = e
	}
	ids, err := k.h.TxnIDs()
	if err != nil {
		k.t.Fatal(err)
	}
	for _, id := range ids {
		ts, err := k.h.Txn(id)
		if err != nil {
			k.t.Fatal(err)
		}
		s.txns[id] = *ts
	}
	if s.meta, err = k.h.ReadMeta(); err != nil {
		k.t.Fatal(err)
	}
	return s
}

// stat reads one summed counter.
func (k *kvt) stat(i int) uint64 {
	k.t.Helper()
	st, err := k.h.ReadStats()
	if err != nil {
		k.t.Fatal(err)
	}
	return st[i].Value
}
