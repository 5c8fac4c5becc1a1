// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"fmt"
	"math"
	"strings"
)

// Replaying the log
//
// kv promises that commits happen one at a time in seq order and that a
// transaction commits only if every key it read is still as it read it.
// So replaying the log's commits in seq order from the empty store, each
// committed transaction must have read exactly what the commits before it
// left, and the store after the run must be the replay's last state. A
// read-only transaction has no seq, but what it read must be the state
// after some seq: a snapshot that existed.

// keyVersion is one value a key had, from seq on (until the next version).
type keyVersion struct {
	from    uint64
	value   string
	present bool
	writer  *Txn // nil: an auto-commit or the empty store
}

// replayed is the store's history as the log tells it.
type replayed struct {
	versions map[string][]keyVersion // per key, in seq order
	byTxID   map[uint64]*Txn
	index    map[string][]span // stateID -> when the store held it (see spans)
}

// current is key's version after the last commit replayed so far.
func (r *replayed) current(key string) keyVersion {
	vs := r.versions[key]
	if len(vs) == 0 {
		return keyVersion{}
	}
	return vs[len(vs)-1]
}

// replayLog replays h's log, checking that each logged transaction read what
// the commits before it left and that the store ends as the log does.
func replayLog(h *History) (*replayed, []Violation) {
	r := &replayed{versions: map[string][]keyVersion{}, byTxID: map[uint64]*Txn{}}
	var v []Violation
	for _, t := range h.Txns {
		if t.TxID != 0 {
			r.byTxID[t.TxID] = t
		}
	}
	for i := range h.Log {
		rec := &h.Log[i]
		t := r.byTxID[rec.TxID]
		if rec.TxID != 0 && t != nil {
			for _, rd := range t.ExternalReads() {
				cur := r.current(rd.Key)
				if cur.present == rd.Found && (!rd.Found || cur.value == rd.Value) {
					continue
				}
				kind := "stale-read"
				if _, wrote := t.writeOf(rd.Key); wrote {
					kind = "lost-update"
				}
				v = append(v, violation(kind, []*Txn{t, cur.writer},
					"%s committed at seq %d having read %s, but the commits before it left %s=%s (%s at seq %d)",
					t.Name(), rec.Seq, rd.read(), rd.Key, showVersion(cur), cur.writer.Name(), cur.from))
			}
		}
		for _, w := range rec.Writes {
			r.versions[string(w.Key)] = append(r.versions[string(w.Key)],
				keyVersion{from: rec.Seq, value: string(w.Value), present: w.Op == WriteSet, writer: t})
		}
	}
	keys := map[string]bool{}
	for k := range r.versions {
		keys[k] = true
	}
	for k := range h.Final {
		keys[k] = true
	}
	for k := range keys {
		cur := r.current(k)
		got, ok := h.Final[k]
		if ok != cur.present || got != cur.value {
			store := "absent"
			if ok {
				store = fmt.Sprintf("%q", got)
			}
			v = append(v, Violation{Kind: "store-differs", Text: fmt.Sprintf("after the run the store holds %s=%s, but replaying the log leaves %s=%s",
				k, store, k, showVersion(cur))})
		}
	}
	return r, v
}

// writeOf is t's last SET of key.
func (t *Txn) writeOf(key string) (string, bool) {
	val, ok := "", false
	for _, o := range t.Ops {
		if o.Op == OpSet && o.Key == key {
			val, ok = o.Value, true
		}
	}
	return val, ok
}

func showVersion(v keyVersion) string {
	if !v.present {
		return "absent"
	}
	return fmt.Sprintf("%q", v.value)
}

// span is the seqs [from, to) during which a state held.
type span struct{ from, to uint64 }

// spans is when key held the state rd read: the seqs [from, to) of each
// version equal to it. The index is built on first use.
func (r *replayed) spans(rd HistOp) []span {
	if r.index == nil {
		r.index = map[string][]span{}
		for k, vs := range r.versions {
			// The empty store, before the key's first version.
			vs = append([]keyVersion{{}}, vs...)
			for i, ver := range vs {
				s := span{ver.from, math.MaxUint64}
				if i+1 < len(vs) {
					s.to = vs[i+1].from
				}
				id := stateID(k, ver.present, ver.value)
				r.index[id] = append(r.index[id], s)
			}
		}
	}
	if _, ok := r.versions[rd.Key]; !ok && !rd.Found {
		return []span{{0, math.MaxUint64}} // never written: always absent
	}
	return r.index[stateID(rd.Key, rd.Found, rd.Value)]
}

func stateID(key string, present bool, value string) string {
	if !present {
		return key + "\x00"
	}
	return key + "\x01" + value
}

// snapshotAt is the first seq after which the store held everything t
// read; ok is false when no state of it did.
func (r *replayed) snapshotAt(t *Txn) (seq uint64, ok bool) {
	spans := []span{{0, math.MaxUint64}}
	for _, rd := range t.ExternalReads() {
		if spans = intersect(spans, r.spans(rd)); len(spans) == 0 {
			return 0, false
		}
	}
	return spans[0].from, true
}

// snapshot checks that what t read is the store's state after one seq: it
// returns nil when some seq explains every read, else a violation.
func (r *replayed) snapshot(t *Txn) *Violation {
	if _, ok := r.snapshotAt(t); ok {
		return nil
	}
	x := violation("read-skew", []*Txn{t}, "%s committed having read %s: no state of the store after any commit holds all of these",
		t.Name(), readsOf(t))
	return &x
}

// intersect is the seqs in both a and b, both sorted and disjoint.
func intersect(a, b []span) []span {
	var out []span
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].from, b[j].from), min(a[i].to, b[j].to)
		if lo < hi {
			out = append(out, span{lo, hi})
		}
		if a[i].to < b[j].to {
			i++
		} else {
			j++
		}
	}
	return out
}

// readsOf is what t read, in words.
func readsOf(t *Txn) string {
	var parts []string
	for _, rd := range t.ExternalReads() {
		parts = append(parts, rd.read())
	}
	return strings.Join(parts, ", ")
}
