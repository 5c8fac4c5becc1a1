// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"fmt"
	"slices"
	"strings"
)

// The log as a witness
//
// COMMIT's reply carries no seq: the commit order is in the log. Every
// commit that writes leaves one record (seq, txid, writes), so the WAL
// read after the run says which transactions committed, in which order,
// and with what writes. checkLog matches it against what the clients saw:
// a record of a transaction its client saw abort, a commit answered OK
// with no record, a record whose writes are not the ones the client made,
// or an id BEGIN handed out twice are violations. Records of commits whose
// reply was lost settle them: those committed (their Seq is set).

// checkLog sets each logged transaction's Seq and returns the
// disagreements between the log and the clients. A history without a log
// (Log nil) is not checked.
func checkLog(h *History) []Violation {
	if h.Log == nil {
		return nil
	}
	var v []Violation
	byTxID := map[uint64]*Txn{}
	autos := map[string][]*Txn{} // key=value of an auto-committed SET -> its txns, oldest first
	for _, t := range h.Txns {
		switch {
		case t.Auto && len(t.Ops) == 1 && t.Ops[0].Op == OpSet:
			k := writeKey(t.Ops[0].Key, t.Ops[0].Value)
			autos[k] = append(autos[k], t)
		case t.TxID == 0:
		case byTxID[t.TxID] != nil:
			o := byTxID[t.TxID]
			v = append(v, violation("txid-reused", []*Txn{o, t}, "BEGIN handed txid %d to both %s (client %d) and %s (client %d)",
				t.TxID, o.Name(), o.Client, t.Name(), t.Client))
		default:
			byTxID[t.TxID] = t
		}
	}
	for i := range h.Log {
		r := &h.Log[i]
		if r.TxID == 0 {
			v = append(v, matchAuto(r, autos)...)
			continue
		}
		t := byTxID[r.TxID]
		if t == nil {
			v = append(v, Violation{Kind: "log-unknown-txn", Text: fmt.Sprintf("the log holds a commit at seq %d of txid %d, which no client began (%s)", r.Seq, r.TxID, recordWrites(r))})
			continue
		}
		t.Seq = r.Seq
		if t.Outcome == Aborted {
			v = append(v, violation("G1a", []*Txn{t}, "%s was aborted (%s), yet the log holds its commit at seq %d (%s): an aborted transaction's writes were installed",
				t.Name(), t.Reason, r.Seq, recordWrites(r)))
		}
		if got, want := recordWrites(r), opsWrites(t.Writes()); got != want {
			v = append(v, violation("log-mismatch", []*Txn{t}, "%s wrote %s, but its commit at seq %d installed %s", t.Name(), want, r.Seq, got))
		}
	}
	for _, t := range h.Txns {
		if t.Outcome == Committed && t.Seq == 0 && len(t.Writes()) > 0 {
			v = append(v, violation("commit-not-logged", []*Txn{t}, "%s was answered OK to COMMIT with %s, but the log has no commit of txid %d",
				t.Name(), opsWrites(t.Writes()), t.TxID))
		}
	}
	return v
}

// matchAuto finds the auto-committed SET a record of txid 0 logs.
func matchAuto(r *LogRecord, autos map[string][]*Txn) []Violation {
	if len(r.Writes) != 1 || r.Writes[0].Op != WriteSet {
		return []Violation{{Kind: "log-unknown-write", Text: fmt.Sprintf("the log holds an auto-commit at seq %d that no client sent: %s", r.Seq, recordWrites(r))}}
	}
	k := writeKey(string(r.Writes[0].Key), string(r.Writes[0].Value))
	ts := autos[k]
	for i, t := range ts {
		if t.Outcome != Aborted {
			t.Seq = r.Seq
			autos[k] = append(ts[:i:i], ts[i+1:]...)
			return nil
		}
	}
	if len(ts) > 0 {
		t := ts[0]
		autos[k] = ts[1:]
		return []Violation{violation("G1a", []*Txn{t}, "%s (%s) was answered %s, yet the log holds it at seq %d", t.Name(), t.Ops[0], t.Reason, r.Seq)}
	}
	return []Violation{{Kind: "log-unknown-write", Text: fmt.Sprintf("the log holds an auto-commit at seq %d that no client sent: %s", r.Seq, recordWrites(r))}}
}

func writeKey(k, v string) string { return k + "\x00" + v }

// recordWrites is a log record's writes in words: acct1="980", acct2="1020".
func recordWrites(r *LogRecord) string {
	parts := make([]string, len(r.Writes))
	for i, w := range r.Writes {
		if w.Op == WriteDel {
			parts[i] = "del " + string(w.Key)
		} else {
			parts[i] = fmt.Sprintf("%s=%q", w.Key, w.Value)
		}
	}
	// The kernel keeps a write set in its own order; compare sets.
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// opsWrites is a client's writes, spelled as recordWrites spells a record.
func opsWrites(ops []HistOp) string {
	parts := make([]string, len(ops))
	for i, o := range ops {
		parts[i] = fmt.Sprintf("%s=%q", o.Key, o.Value)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
