// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"strings"
	"testing"
	"time"
)

// The checkers on histories made by hand: a serializable (or
// linearizable) history passes, and each known anomaly is found, named
// and described. No kernel involved.

// hb builds a history by hand: transactions numbered in order, each given
// the next txid and a slot of time, and a log of the commits asked for.
type hb struct {
	h   History
	seq uint64
}

func newHB() *hb { return &hb{h: History{Final: map[string]string{}, Log: []LogRecord{}}} }

func get(k, v string) HistOp    { return HistOp{Op: OpGet, Key: k, Value: v, Found: true} }
func getNone(k string) HistOp   { return HistOp{Op: OpGet, Key: k} }
func set(k, v string) HistOp    { return HistOp{Op: OpSet, Key: k, Value: v} }
func at(ms int) time.Duration   { return time.Duration(ms) * time.Millisecond }
func (b *hb) final(k, v string) { b.h.Final[k] = v }

// txn adds a transaction with outcome o (Aborted ones by CONFLICT).
func (b *hb) txn(kind string, o Outcome, ops ...HistOp) *Txn {
	n := len(b.h.Txns) + 1
	t := &Txn{N: n, TxID: uint64(100 + n), Kind: kind, Ops: ops, Outcome: o, Start: at(10 * n), End: at(10*n + 5)}
	if o == Aborted {
		t.Reason = "CONFLICT"
	}
	b.h.Txns = append(b.h.Txns, t)
	return t
}

// auto adds a lone request answered between from and to ms (to < 0: never
// answered).
func (b *hb) auto(client int, op HistOp, from, to int) *Txn {
	t := &Txn{N: len(b.h.Txns) + 1, Client: client, Kind: "op", Auto: true, Ops: []HistOp{op}, Outcome: Committed, Start: at(from), End: at(to)}
	if to < 0 {
		t.Outcome, t.End = Unknown, at(from+1000)
	}
	b.h.Txns = append(b.h.Txns, t)
	return t
}

// log appends t's commit to the log, with the next seq.
func (b *hb) log(t *Txn) {
	b.seq++
	r := LogRecord{Seq: b.seq, TxID: t.TxID}
	if t.Auto {
		r.TxID = 0
	}
	for _, w := range t.Writes() {
		r.Writes = append(r.Writes, LogWrite{Op: WriteSet, Key: []byte(w.Key), Value: []byte(w.Value)})
	}
	b.h.Log = append(b.h.Log, r)
}

// want checks that v holds exactly the kinds given (in any order) and
// that each text says every word of says.
func want(t *testing.T, v []Violation, kinds []string, says ...string) {
	t.Helper()
	got := map[string]int{}
	for _, x := range v {
		got[x.Kind]++
		t.Logf("%s", x)
	}
	wantN := map[string]int{}
	for _, k := range kinds {
		wantN[k]++
	}
	for k, n := range wantN {
		if got[k] != n {
			t.Errorf("%d %s violations, want %d", got[k], k, n)
		}
	}
	for k, n := range got {
		if wantN[k] == 0 {
			t.Errorf("%d unexpected %s violations", n, k)
		}
	}
	all := ""
	for _, x := range v {
		all += x.Text + "\n"
	}
	for _, s := range says {
		if !strings.Contains(all, s) {
			t.Errorf("no violation says %q", s)
		}
	}
}

// check runs the log check and then the workload's, as Check does.
func check(w checkWorkload, h *History) []Violation {
	v := checkLog(h)
	wv, _ := w.check(h)
	return append(v, wv...)
}

// bankInit writes the ten accounts on their own, logged.
func bankInit(b *hb) {
	for i := range bankAccounts {
		b.log(b.auto(0, set(bankAccount(i), "1000"), 0, 1))
	}
}

func bankFinal(b *hb, vals map[string]string) {
	for i := range bankAccounts {
		b.final(bankAccount(i), "1000")
	}
	for k, v := range vals {
		b.final(k, v)
	}
}

func bankAuditOps(vals map[string]string) []HistOp {
	var ops []HistOp
	for i := range bankAccounts {
		v, ok := vals[bankAccount(i)]
		if !ok {
			v = "1000"
		}
		ops = append(ops, get(bankAccount(i), v))
	}
	return ops
}

func TestCheckBankSerializable(t *testing.T) {
	b := newHB()
	bankInit(b)
	b.log(b.txn("transfer", Committed, get("acct0", "1000"), get("acct1", "1000"), set("acct0", "990"), set("acct1", "1010")))
	b.txn("transfer", Aborted, get("acct0", "1000"), get("acct2", "1000"), set("acct0", "900"), set("acct2", "1100"))
	b.log(b.txn("transfer", Committed, get("acct1", "1010"), get("acct2", "1000"), set("acct1", "1005"), set("acct2", "1005")))
	b.txn("audit", Committed, bankAuditOps(map[string]string{"acct0": "990", "acct1": "1005", "acct2": "1005"})...)
	// An audit of the state between the two transfers is a snapshot too.
	b.txn("audit", Committed, bankAuditOps(map[string]string{"acct0": "990", "acct1": "1010"})...)
	// An aborted audit may have seen anything.
	b.txn("audit", Aborted, bankAuditOps(map[string]string{"acct0": "990"})...)
	bankFinal(b, map[string]string{"acct0": "990", "acct1": "1005", "acct2": "1005"})
	want(t, check(&bankWorkload{}, &b.h), nil)
}

// Two transfers read acct0 as 1000 and both commit: the second's read was
// overwritten by the first (the log shows which came first), and money
// appeared.
func TestCheckBankLostUpdate(t *testing.T) {
	b := newHB()
	bankInit(b)
	b.log(b.txn("transfer", Committed, get("acct0", "1000"), get("acct1", "1000"), set("acct0", "900"), set("acct1", "1100")))
	b.log(b.txn("transfer", Committed, get("acct0", "1000"), get("acct2", "1000"), set("acct0", "950"), set("acct2", "1050")))
	// This audit read what the store held: the lost update is to blame.
	b.txn("audit", Committed, bankAuditOps(map[string]string{"acct0": "950", "acct1": "1100", "acct2": "1050"})...)
	// This one read acct1 after T11 and acct0 before it: a state that
	// never was, and its own fault.
	b.txn("audit", Committed, bankAuditOps(map[string]string{"acct1": "1100"})...)
	bankFinal(b, map[string]string{"acct0": "950", "acct1": "1100", "acct2": "1050"})
	want(t, check(&bankWorkload{}, &b.h), []string{"lost-update", "bank-total-store", "bank-total", "bank-final"},
		`T12 (txid 112) committed at seq 12 having read acct0="1000", but the commits before it left acct0="900" (T11 (txid 111) at seq 11)`,
		"audit T13 (txid 113) committed having read a total of 10100, not 10000",
		"the store held that after seq 12: an earlier commit made or lost money",
		"audit T14 (txid 114) committed having read a total of 10100, not 10000: acct0=1000 acct1=1100",
		"after the run the accounts hold a total of 10100")
}

// An audit whose total is right but that saw acct0 and acct1 before a
// transfer between them and acct2 and acct3 after one between those: no
// state of the store held all four.
func TestCheckBankReadSkew(t *testing.T) {
	b := newHB()
	bankInit(b)
	b.log(b.txn("transfer", Committed, get("acct0", "1000"), get("acct1", "1000"), set("acct0", "900"), set("acct1", "1100")))
	b.log(b.txn("transfer", Committed, get("acct2", "1000"), get("acct3", "1000"), set("acct2", "900"), set("acct3", "1100")))
	b.txn("audit", Committed, bankAuditOps(map[string]string{"acct2": "900", "acct3": "1100"})...)
	bankFinal(b, map[string]string{"acct0": "900", "acct1": "1100", "acct2": "900", "acct3": "1100"})
	want(t, check(&bankWorkload{}, &b.h), []string{"read-skew"}, "no state of the store after any commit holds all of these")
}

func TestCheckCounter(t *testing.T) {
	serial := func() *hb {
		b := newHB()
		b.log(b.auto(0, set(counterKey, "0"), 0, 1))
		b.log(b.txn("incr", Committed, get(counterKey, "0"), set(counterKey, "1")))
		b.txn("incr", Aborted, get(counterKey, "0"), set(counterKey, "1"))
		b.log(b.txn("incr", Committed, get(counterKey, "1"), set(counterKey, "2")))
		return b
	}
	t.Run("serializable", func(t *testing.T) {
		b := serial()
		b.final(counterKey, "2")
		want(t, check(&counterWorkload{}, &b.h), nil)
	})
	// A lost reply: the third increment may or may not have committed;
	// both 2 and 3 are possible ends, 4 is not.
	t.Run("unknown", func(t *testing.T) {
		for _, c := range []struct {
			final  string
			logged bool
			kinds  []string
		}{{"2", false, nil}, {"3", true, nil}, {"4", true, []string{"counter-total", "store-differs"}}} {
			b := serial()
			u := b.txn("incr", Unknown, get(counterKey, "2"), set(counterKey, "3"))
			if c.logged {
				b.log(u)
			}
			b.final(counterKey, c.final)
			want(t, check(&counterWorkload{}, &b.h), c.kinds)
		}
	})
	t.Run("lost update", func(t *testing.T) {
		b := serial()
		b.log(b.txn("incr", Committed, get(counterKey, "2"), set(counterKey, "3")))
		b.log(b.txn("incr", Committed, get(counterKey, "2"), set(counterKey, "3")))
		b.final(counterKey, "3")
		want(t, check(&counterWorkload{}, &b.h), []string{"lost-update", "counter-total"},
			"ctr ended at 3, but 4 increments were answered OK (and 0 unknown): at least 1 committed increment lost",
			`T6 (txid 106) committed at seq 5 having read ctr="2", but the commits before it left ctr="3" (T5 (txid 105) at seq 4)`)
	})
}

// The log against the clients: an aborted transaction's commit, an OK
// that left no record, an id handed out twice.
func TestCheckLog(t *testing.T) {
	b := newHB()
	a := b.txn("incr", Aborted, get(counterKey, "0"), set(counterKey, "1"))
	b.log(a)
	b.txn("incr", Committed, get(counterKey, "1"), set(counterKey, "2"))
	twice := b.txn("incr", Aborted)
	twice.TxID = a.TxID
	want(t, checkLog(&b.h), []string{"G1a", "commit-not-logged", "txid-reused"},
		"T1 (txid 101) was aborted (CONFLICT), yet the log holds its commit at seq 1",
		`T2 (txid 102) was answered OK to COMMIT with ctr="2", but the log has no commit of txid 102`,
		"BEGIN handed txid 101 to both")
}

// appendTxn is a list-append transaction: reads of keys (key, the list it
// read) and appends (key, the list it wrote).
func appendHistory() *hb { b := newHB(); b.h.Log = nil; return b }

func TestCheckAppendSerializable(t *testing.T) {
	b := appendHistory()
	b.txn("txn", Committed, getNone("x"), set("x", "1"), getNone("y"))
	b.txn("txn", Committed, get("x", "1"), set("x", "1,2"), getNone("y"), set("y", "1"))
	b.txn("txn", Aborted, get("x", "1,2"), set("x", "1,2,3"))
	b.txn("txn", Committed, get("x", "1,2"), get("y", "1"), set("y", "1,2"), set("y", "1,2,3"), get("y", "1,2,3"))
	b.final("x", "1,2")
	b.final("y", "1,2,3")
	want(t, check(newAppendWorkload(), &b.h), nil)
}

func TestCheckAppendAnomalies(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(b *hb)
		kinds []string
		says  []string
	}{
		{"G-single read skew", func(b *hb) {
			b.txn("txn", Committed, getNone("x"), set("x", "1"), getNone("y"), set("y", "1"))
			b.txn("txn", Committed, get("x", "1"), set("x", "1,2"), get("y", "1"), set("y", "1,2"))
			b.txn("txn", Committed, get("x", "1"), get("y", "1,2")) // x before T2, y after it
			b.final("x", "1,2")
			b.final("y", "1,2")
		}, []string{"G-single"}, []string{"T3 (txid 103) read x=[1] and T2 (txid 102) appended the next element, 2 (rw)", "T2 (txid 102)'s 2 (wr)"}},
		{"G2 write skew", func(b *hb) {
			b.txn("txn", Committed, getNone("x"), getNone("y"), set("x", "1"))
			b.txn("txn", Committed, getNone("x"), getNone("y"), set("y", "1"))
			b.final("x", "1")
			b.final("y", "1")
		}, []string{"G2"}, []string{"anti-dependency cycle", "T1 (txid 101) read y=[] and T2 (txid 102) appended the next element, 1 (rw)"}},
		{"G1c circular information flow", func(b *hb) {
			b.txn("txn", Committed, getNone("x"), set("x", "1"), get("y", "1"))
			b.txn("txn", Committed, getNone("y"), set("y", "1"), get("x", "1"))
			b.final("x", "1")
			b.final("y", "1")
		}, []string{"G1c"}, []string{"circular information flow"}},
		{"lost update", func(b *hb) {
			b.txn("txn", Committed, getNone("x"), set("x", "1"))
			b.txn("txn", Committed, getNone("x"), set("x", "2"))
			b.final("x", "2")
		}, []string{"lost-append"}, []string{"T1 (txid 101) committed appending 1 to x, but x's final list [2] lacks it"}},
		{"G1a aborted read", func(b *hb) {
			b.txn("txn", Aborted, getNone("x"), set("x", "1"))
			b.txn("txn", Committed, get("x", "1"))
		}, []string{"G1a"}, []string{"T2 (txid 102) read x=[1], but 1 was appended by T1 (txid 101), which aborted (CONFLICT)"}},
		{"G1b intermediate read", func(b *hb) {
			b.txn("txn", Committed, getNone("x"), set("x", "1"), set("x", "1,2"))
			b.txn("txn", Committed, get("x", "1"))
			b.final("x", "1,2")
		}, []string{"G1b"}, []string{"an intermediate state of T1 (txid 101)"}},
		{"incompatible orders and duplicates", func(b *hb) {
			b.txn("txn", Committed, getNone("x"), set("x", "1"))
			b.txn("txn", Committed, get("x", "1"), set("x", "1,2"))
			b.txn("txn", Committed, get("x", "1"), set("x", "1,3"))
			b.txn("txn", Committed, get("x", "1,2"))
			b.txn("txn", Committed, get("y", "5"))
			b.final("x", "1,3")
			b.final("z", "1,1")
		}, []string{"incompatible-order", "garbage-read", "duplicate"}, []string{
			"T4 (txid 104) read x=[1 2] and the store after the run holds x=[1 3]",
			"T5 (txid 105) read y=[5], but no transaction appended 5 to y",
			"the store after the run holds z=[1 1]: element 1 twice"}},
		{"internal", func(b *hb) {
			b.txn("txn", Committed, get("x", "1"), get("x", "1,2"))
			b.txn("txn", Committed, getNone("x"), set("x", "1"))
			b.txn("txn", Committed, get("x", "1"), set("x", "1,2"))
			b.final("x", "1,2")
		}, []string{"internal"}, []string{"T1 (txid 101) committed, yet it read x=[1 2] after it had read x=[1]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := appendHistory()
			c.build(b)
			want(t, check(newAppendWorkload(), &b.h), c.kinds, c.says...)
		})
	}
}

func TestCheckRegister(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(b *hb)
		kinds []string
		says  []string
	}{
		{"linearizable", func(b *hb) {
			b.auto(0, set("reg0", "a"), 0, 10)
			b.auto(1, get("reg0", "a"), 5, 6) // concurrent with the SET: it may come first
			b.auto(1, getNone("reg1"), 5, 6)
			b.auto(0, set("reg0", "b"), 20, 30)
			b.auto(1, get("reg0", "a"), 21, 22)
			b.auto(2, get("reg0", "b"), 23, 24)
			b.auto(2, set("reg0", "c"), 40, -1) // never answered: it may never take effect
			b.auto(1, get("reg0", "b"), 50, 51)
			b.auto(1, get("reg0", "c"), 60, 61) // or take effect late
		}, nil, nil},
		{"stale read", func(b *hb) {
			b.auto(0, set("reg0", "a"), 0, 10)
			b.auto(0, set("reg0", "b"), 20, 30)
			b.auto(1, get("reg0", "a"), 40, 41)
		}, []string{"not-linearizable"}, []string{`stale read: T3 (client 1, get "a", sent at 40ms, answered at 41ms)`, `which T2 (client 0, set "b", sent at 20ms, answered at 30ms) had overwritten`}},
		{"read from the future", func(b *hb) {
			b.auto(1, get("reg0", "a"), 0, 1)
			b.auto(0, set("reg0", "a"), 5, 10)
		}, []string{"not-linearizable"}, []string{"was sent only after the read was answered"}},
		{"another key's value", func(b *hb) {
			b.auto(0, set("reg1", "reg1/c0.1"), 0, 1)
			b.auto(1, get("reg0", "reg1/c0.1"), 5, 6)
		}, []string{"wrong-key"}, []string{"the value of another key, reg1"}},
		{"reads disagree on the order", func(b *hb) {
			// Concurrent SETs of a and b; one reader sees b then a, the
			// other a then b: no single order of the SETs fits both.
			b.auto(0, set("reg0", "a"), 0, 10)
			b.auto(1, set("reg0", "b"), 0, 10)
			b.auto(2, get("reg0", "b"), 11, 12)
			b.auto(2, get("reg0", "a"), 13, 14)
			b.auto(3, get("reg0", "a"), 11, 12)
			b.auto(3, get("reg0", "b"), 13, 14)
		}, []string{"not-linearizable"}, []string{"reg0: no order of its 6 operations", "the earliest operation that cannot follow is"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newHB()
			b.h.Log = nil
			c.build(b)
			want(t, check(&registerWorkload{}, &b.h), c.kinds, c.says...)
		})
	}
}

func TestFirstOfEach(t *testing.T) {
	var v []Violation
	for range 30 {
		v = append(v, Violation{Kind: "bank-total"})
	}
	v = append(v, Violation{Kind: "lost-update"}, Violation{Kind: "lost-update"})
	got := firstOfEach(v, 5)
	kinds := []string{}
	for _, x := range got {
		kinds = append(kinds, x.Kind)
	}
	if strings.Join(kinds, " ") != "bank-total lost-update bank-total lost-update bank-total" {
		t.Errorf("firstOfEach picked %v", kinds)
	}
}

// The verdict: the property broken, or only kv's protocol promises.
func TestCheckVerdict(t *testing.T) {
	b := newHB()
	b.txn("incr", Committed)
	b.txn("incr", Aborted)
	b.txn("incr", Unknown).Seq = 7
	for _, c := range []struct {
		v    []Violation
		want string
	}{
		{nil, "serializable: no violation found"},
		{[]Violation{{Kind: "expired-live"}}, "serializable as far as seen, but kv broke other promises: 1 violation"},
		{[]Violation{{Kind: "expired-live"}, {Kind: "G2"}}, "NOT serializable: 2 violations"},
	} {
		r := &CheckResult{Property: "serializable"}
		r.judge(&b.h, c.v, nil)
		if r.Verdict != c.want || r.Violations != len(c.v) {
			t.Errorf("verdict %q with %d violations, want %q", r.Verdict, r.Violations, c.want)
		}
		if r.Transactions != 3 || r.Committed != 1 || r.Aborted != 1 || r.AbortedBy["CONFLICT"] != 1 || r.Unknown != 1 || r.UnknownLogged != 1 {
			t.Errorf("counts: %+v", r)
		}
	}
}
