// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"fmt"
	"strings"
	"time"
)

// Histories
//
// A check records what its clients saw, nothing else: every transaction
// (or lone auto-committed request) with the requests it made, what each
// answered, when it was invoked and when its outcome came back. The
// checkers judge kv from this record alone, plus two witnesses read after
// the run: the store as the map holds it, and the log of commits (the WAL)
// with the seq of each.

// Outcome is how a transaction ended, as its client knows it.
type Outcome uint8

// The outcomes.
const (
	// Committed: COMMIT (or the auto-committed request) answered OK.
	Committed Outcome = iota + 1
	// Aborted: it cannot have taken effect: a status said so (CONFLICT,
	// NO_TXN, TXN_FULL, or BUSY/LOG_FULL for an auto-committed write), the
	// client aborted it, or it gave up before sending COMMIT.
	Aborted
	// Unknown: COMMIT (or an auto-committed write) was sent and no reply
	// came: it may or may not have taken effect.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Committed:
		return "committed"
	case Aborted:
		return "aborted"
	case Unknown:
		return "unknown"
	}
	return "open"
}

// HistOp is one GET or SET of a transaction, as answered.
type HistOp struct {
	Op    Op     // OpGet or OpSet
	Key   string // the key asked for
	Value string // SET: the value written; GET: the value read (when Found)
	Found bool   // GET: the key was there (OK, not NOT_FOUND)
}

func (o HistOp) String() string {
	switch {
	case o.Op == OpSet:
		return fmt.Sprintf("set %s=%q", o.Key, o.Value)
	case o.Found:
		return fmt.Sprintf("get %s=%q", o.Key, o.Value)
	}
	return fmt.Sprintf("get %s (absent)", o.Key)
}

// read is what a GET read, as a key's state: acct1="990" or acct1 absent.
func (o HistOp) read() string {
	if !o.Found {
		return o.Key + " absent"
	}
	return fmt.Sprintf("%s=%q", o.Key, o.Value)
}

// Txn is one transaction of a history: begin .. commit or abort, or one
// auto-committed request (Auto).
type Txn struct {
	// N numbers the history's transactions from 1 (T1, T2, ...) in the
	// order they were invoked.
	N      int    `json:"n"`
	Client int    `json:"client"`
	Kind   string `json:"kind"` // the workload's name for it: transfer, audit, incr, read, write, append...
	// TxID is kv's transaction id (from BEGIN); 0 for an auto-committed
	// request.
	TxID    uint64   `json:"txid,omitempty"`
	Auto    bool     `json:"auto,omitempty"`
	Ops     []HistOp `json:"-"`
	Outcome Outcome  `json:"-"`
	// Reason says why it aborted: a status name (CONFLICT, NO_TXN, ...),
	// "client-abort" (the client aborted it), or "timeout" (a request before
	// COMMIT went unanswered and the client gave up).
	Reason string `json:"reason,omitempty"`
	// Start is when its first request was sent, End when its outcome
	// came back (for Unknown: when the client stopped waiting); both from
	// the start of the run.
	Start, End time.Duration `json:"-"`
	// Seq is the commit's seq in the log (set from the WAL after the run;
	// 0 when it wrote nothing or is not in the log).
	Seq uint64 `json:"seq,omitempty"`
}

// Name is how violations name t: T12 (txid 317).
func (t *Txn) Name() string {
	if t == nil {
		return "the initial state"
	}
	if t.TxID != 0 {
		return fmt.Sprintf("T%d (txid %d)", t.N, t.TxID)
	}
	return fmt.Sprintf("T%d", t.N)
}

// Writes is t's SETs, the last per key in order of first write (what a
// COMMIT installs).
func (t *Txn) Writes() []HistOp {
	var out []HistOp
	at := map[string]int{}
	for _, o := range t.Ops {
		if o.Op != OpSet {
			continue
		}
		if i, ok := at[o.Key]; ok {
			out[i] = o
			continue
		}
		at[o.Key] = len(out)
		out = append(out, o)
	}
	return out
}

// ExternalReads is what t read of the store: each key's first GET that
// came before t wrote the key (later GETs read t's own write).
func (t *Txn) ExternalReads() []HistOp {
	var out []HistOp
	seen := map[string]bool{}
	for _, o := range t.Ops {
		if seen[o.Key] {
			continue
		}
		seen[o.Key] = true
		if o.Op == OpGet {
			out = append(out, o)
		}
	}
	return out
}

// ops is t's operations in words: get acct1="990", set acct1="980".
func (t *Txn) ops() string {
	parts := make([]string, len(t.Ops))
	for i, o := range t.Ops {
		parts[i] = o.String()
	}
	return strings.Join(parts, ", ")
}

// History is a check's record: its transactions, and the witnesses read
// after the run.
type History struct {
	Txns []*Txn
	// Final is the store after the run, read from its map: key -> value.
	Final map[string]string
	// Log is the commits in the WAL, in seq order. Nil when the check
	// has none (hand-made histories): the checks that need it are skipped.
	Log []LogRecord
}

// Violation is one way a history breaks kv's promises.
type Violation struct {
	// Kind names the anomaly: lost-update, G1a, G1b, G1c, G-single, G2,
	// bank-total, not-linearizable, ...
	Kind string `json:"kind"`
	// Text says it in words: which transactions, keys and values.
	Text string `json:"text"`
	// Txns are the transactions involved (their N).
	Txns []int `json:"txns,omitempty"`
}

func (v Violation) String() string { return v.Kind + ": " + v.Text }

// violation builds a Violation naming txns.
func violation(kind string, txns []*Txn, format string, args ...any) Violation {
	v := Violation{Kind: kind, Text: fmt.Sprintf(format, args...)}
	for _, t := range txns {
		if t != nil {
			v.Txns = append(v.Txns, t.N)
		}
	}
	return v
}
