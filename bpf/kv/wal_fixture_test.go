// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv/internal/walfixture"
	"github.com/cilium/ebpf"
)

// kvFixture is a stand-in kv store in the kernel: the walfixture maps,
// pinned under a private pin root as <root>/kv/{store,meta,log}, its
// commit program, and a model of every commit made through it.
type kvFixture struct {
	objs    walfixture.WalfixtureObjects
	pinRoot string
	pinDir  string
	hash    [8]byte
	wal     string
	commits []LogRecord // as committed: Seq filled in, DEL values dropped
	logFull int         // commits refused with LOG_FULL (and retried)
}

func newKVFixture(t testing.TB) *kvFixture { return newKVFixtureStore(t, 0) }

// newKVFixtureStore is newKVFixture with a store of storeSize keys (0:
// as PROTOCOL.md says).
func newKVFixtureStore(t testing.TB, storeSize uint32) *kvFixture {
	t.Helper()
	root := bpftest.PinRoot(t)
	f := &kvFixture{pinRoot: root, pinDir: filepath.Join(root, "kv"), hash: PinRootHash(root)}
	f.wal = WALPath(t.TempDir(), root, "kv")
	spec, err := walfixture.LoadWalfixture()
	if err != nil {
		t.Fatal(err)
	}
	if storeSize > 0 {
		spec.Maps["store"].MaxEntries = storeSize
	}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		t.Fatalf("load walfixture: %v", err)
	}
	t.Cleanup(func() { f.objs.Close() })
	if err := os.Mkdir(f.pinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*ebpf.Map{"store": f.objs.Store, "meta": f.objs.Meta, "log": f.objs.Log} {
		if err := m.Pin(filepath.Join(f.pinDir, name)); err != nil {
			t.Fatalf("pin %s: %v", name, err)
		}
	}
	return f
}

// freshMaps loads another instance of the fixture: empty store and meta,
// as a new "load kv" would have.
func freshMaps(t testing.TB) (store, meta *ebpf.Map) {
	t.Helper()
	var objs walfixture.WalfixtureObjects
	if err := walfixture.LoadWalfixtureObjects(&objs, nil); err != nil {
		t.Fatalf("load walfixture: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	return objs.Store, objs.Meta
}

// tryCommit runs the commit program with r and returns its status; on
// success the record (with its seq) joins the model.
func (f *kvFixture) tryCommit(t testing.TB, r LogRecord) uint32 {
	t.Helper()
	st, err := f.tryCommitErr(r)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tryCommitErr is tryCommit for goroutines other than the test's.
func (f *kvFixture) tryCommitErr(r LogRecord) (uint32, error) {
	st, seq, err := walfixture.Commit(f.objs.Commit, r.AppendRing(nil))
	if err != nil {
		return 0, err
	}
	if st == uint32(StatusOK) {
		r.Seq = seq
		for i := range r.Writes {
			if r.Writes[i].Op == WriteDel {
				r.Writes[i].Value = nil
			}
		}
		f.commits = append(f.commits, r)
	}
	return st, nil
}

// commit commits r and fails the test unless it went through.
func (f *kvFixture) commit(t testing.TB, r LogRecord) uint64 {
	t.Helper()
	if st := f.tryCommit(t, r); st != uint32(StatusOK) {
		t.Fatalf("commit: status %s", Status(st))
	}
	return f.commits[len(f.commits)-1].Seq
}

// commitRetry commits r, waiting while the ring is full (LOG_FULL).
func (f *kvFixture) commitRetry(t testing.TB, r LogRecord) uint64 {
	t.Helper()
	for range 20000 {
		switch st := f.tryCommit(t, r); st {
		case uint32(StatusOK):
			return f.commits[len(f.commits)-1].Seq
		case uint32(StatusLogFull):
			f.logFull++
			time.Sleep(100 * time.Microsecond)
		default:
			t.Fatalf("commit: status %s", Status(st))
		}
	}
	t.Fatal("commit: the log ring stayed full")
	return 0
}

// randomRecord makes a write set over a small key space so that keys are
// overwritten and deleted often; sizes span the limits.
func randomRecord(rng *rand.Rand) LogRecord {
	r := LogRecord{Writes: make([]LogWrite, 1+rng.IntN(MaxWrites))}
	if rng.IntN(3) > 0 {
		r.TxID = 1 + rng.Uint64N(1000)
	}
	for i := range r.Writes {
		w := &r.Writes[i]
		n := rng.IntN(40)
		w.Key = fmt.Appendf(nil, "key-%d", n)
		if n == 0 {
			w.Key = bytes.Repeat([]byte{'K'}, MaxKey)
		}
		if rng.IntN(4) == 0 {
			w.Op = WriteDel
			continue
		}
		w.Op = WriteSet
		w.Value = make([]byte, rng.IntN(MaxValue+1))
		for j := range w.Value {
			w.Value[j] = byte(rng.Uint32())
		}
	}
	return r
}

// smallRecord is a one-write SET.
func smallRecord(i int) LogRecord {
	return LogRecord{Writes: []LogWrite{{Op: WriteSet, Key: fmt.Appendf(nil, "k%d", i%97), Value: fmt.Appendf(nil, "v%d", i)}}}
}

// storeEntry is one key of a store as the tests compare them.
type storeEntry struct {
	Version uint64
	Value   string
}

// modelAt is the store after the first k commits.
func (f *kvFixture) modelAt(k int) map[string]storeEntry {
	m := map[string]storeEntry{}
	for _, r := range f.commits[:k] {
		for _, w := range r.Writes {
			if w.Op == WriteSet {
				m[string(w.Key)] = storeEntry{r.Seq, string(w.Value)}
			} else {
				delete(m, string(w.Key))
			}
		}
	}
	return m
}

// dumpStore reads a store map for comparison, and checks that every
// entry is zero-padded as the kernel keeps them.
func dumpStore(t testing.TB, store *ebpf.Map) map[string]storeEntry {
	t.Helper()
	var k [StoreKeySize]byte
	var v [StoreValueSize]byte
	out := map[string]storeEntry{}
	it := store.Iterate()
	for it.Next(&k, &v) {
		key, err := DecodeStoreKey(k[:])
		if err != nil {
			t.Fatal(err)
		}
		sv, err := DecodeStoreValue(v[:])
		if err != nil {
			t.Fatal(err)
		}
		if !allZero(k[4+len(key):]) || !allZero(v[16+len(sv.Value):]) || !allZero(v[12:16]) {
			t.Errorf("store entry %q is not zero-padded", key)
		}
		out[string(key)] = storeEntry{sv.Version, string(sv.Value)}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sameStore fails t with the first differences between two stores.
func sameStore(t testing.TB, what string, got, want map[string]storeEntry) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q missing (want version %d)", k, w.Version))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%q is version %d, %d bytes; want version %d, %d bytes", k, g.Version, len(g.Value), w.Version, len(w.Value)))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q (version %d) should not be there", k, g.Version))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Fatalf("%s: %d keys differ (%d vs %d keys), e.g. %v", what, len(diffs), len(got), len(want), diffs[:min(len(diffs), 5)])
	}
}

// expectedWAL is the WAL the commits from..to (1-based, inclusive) make.
func (f *kvFixture) expectedWAL(from, to int) []byte {
	b := walHeader(f.hash)
	for _, r := range f.commits[from-1 : to] {
		b = AppendWALRecord(b, &r)
	}
	return b
}

func readMeta(t testing.TB, m *ebpf.Map) Meta {
	t.Helper()
	meta, err := ReadMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	return meta
}
