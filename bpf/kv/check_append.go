// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// List-append
//
// After Jepsen's Elle: each key holds a list, "1,2,3"; transactions read
// some keys and append to some (an append reads the key in the
// transaction and sets it to the old list + "," + a new element), and no
// element is appended twice to one key. Because lists only grow, every
// committed read of a key is a prefix of the key's final list, and the
// final list is the order in which the appends' writes took effect: the
// version order, recovered from the clients' reads alone. From it come the
// dependencies between committed transactions (write-write, write-read,
// read-write), and a serializable history has no cycle among them (see
// check_graph.go). Reads also show what no serial order can: an element
// nobody appended, an element twice, the write of an aborted transaction
// (G1a), an intermediate state of another transaction (G1b), and two reads
// that are not prefixes of one order.
//
// Over veth a GET reply may only grow its request frame to the next
// 64-byte boundary (MaxLiveValue), so a key is retired once the appends
// handed out for it could make its list longer than that, and a fresh key
// takes its place.

const (
	appendActiveKeys = 4 // keys in play at once
	appendMaxOps     = 4 // reads and appends per transaction, at most
)

func appendKey(i int) string { return fmt.Sprintf("list%03d", i) }

// appendWorkload hands out keys and elements to the clients.
type appendWorkload struct {
	mu      sync.Mutex
	active  []int       // key numbers in play
	nextKey int         // the next fresh key
	last    map[int]int // per key, the last element handed out
	length  map[int]int // per key, its list's length if every append commits
}

func newAppendWorkload() *appendWorkload {
	w := &appendWorkload{last: map[int]int{}, length: map[int]int{}}
	for range appendActiveKeys {
		w.active = append(w.active, w.nextKey)
		w.nextKey++
	}
	return w
}

func (*appendWorkload) property() string { return "serializable" }

// Keys start absent: the empty list.
func (*appendWorkload) setup(*checkClient) error { return nil }

// pick is a key in play.
func (w *appendWorkload) pick(rng *rand.Rand) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return appendKey(w.active[rng.IntN(len(w.active))])
}

// element hands out the next element of key, or "" when the key's list
// could outgrow a reply: the key is then retired for a fresh one.
func (w *appendWorkload) element(key string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, _ := strconv.Atoi(strings.TrimPrefix(key, "list"))
	e := strconv.Itoa(w.last[n] + 1)
	grow := len(e)
	if w.length[n] > 0 {
		grow++ // the comma
	}
	if w.length[n]+grow > MaxLiveValue {
		if i := slices.Index(w.active, n); i >= 0 {
			w.active[i] = w.nextKey
			w.nextKey++
		}
		return ""
	}
	w.last[n]++
	w.length[n] += grow
	return e
}

func (w *appendWorkload) client(ctx context.Context, c *checkClient, rng *rand.Rand) {
	for c.running(ctx) {
		r := c.begin("txn")
		if r == nil {
			continue
		}
		ok := true
		for range 1 + rng.IntN(appendMaxOps) {
			k := w.pick(rng)
			if rng.IntN(2) == 0 {
				if _, _, err := r.get(k); err != nil {
					ok = false
					break
				}
				continue
			}
			e := w.element(k)
			if e == "" {
				continue
			}
			cur, known := r.own[k]
			if !known {
				var err error
				if cur, _, err = r.get(k); err != nil {
					ok = false
					break
				}
			}
			if cur != "" {
				e = cur + "," + e
			}
			if r.set(k, e) != nil {
				ok = false
				break
			}
		}
		if ok {
			r.commit()
		}
	}
}

// parseList reads a list value: "" is the empty list.
func parseList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func showList(l []string) string { return "[" + strings.Join(l, " ") + "]" }

// appendOp is one element appended by a transaction.
type appendOp struct {
	t    *Txn
	key  string
	elem string
	prev string // the element before it in the value it wrote ("" first)
	last bool   // t's last append to key: what t installed
}

// listRead is one observation of a key's list: a committed transaction's
// read, or the store after the run (t nil).
type listRead struct {
	t    *Txn
	key  string
	list []string
}

// saw is "T5 read" or "the store after the run holds".
func (r listRead) saw() string {
	if r.t == nil {
		return "the store after the run holds"
	}
	return r.t.Name() + " read"
}

// appendAnalysis is what the reads tell.
type appendAnalysis struct {
	writers   map[string]map[string]*appendOp // key -> element -> its append
	reads     []listRead
	order     map[string][]string // key -> its version order (longest read)
	broken    map[string]bool     // keys whose reads fit no one order
	committed map[*Txn]bool       // committed, or seen to have (read by others)
	unsound   map[int]bool        // reads (by index) that showed an anomaly of their own
	v         []Violation
}

func (w *appendWorkload) check(h *History) ([]Violation, []string) {
	a := analyzeAppends(h)
	g := a.graph()
	return append(a.v, g.cycles()...), nil
}

// analyzeAppends finds the appends, the reads, each key's order, and
// every anomaly a read shows on its own.
func analyzeAppends(h *History) *appendAnalysis {
	a := &appendAnalysis{writers: map[string]map[string]*appendOp{}, order: map[string][]string{},
		broken: map[string]bool{}, committed: map[*Txn]bool{}, unsound: map[int]bool{}}
	for _, t := range h.Txns {
		if t.Outcome == Committed {
			a.committed[t] = true
		}
		a.appendsOf(t)
	}
	for _, t := range h.Txns {
		if t.Outcome != Committed {
			continue
		}
		a.internal(t)
		for _, rd := range t.ExternalReads() {
			a.reads = append(a.reads, listRead{t: t, key: rd.Key, list: parseList(rd.Value)})
		}
	}
	for k, v := range h.Final {
		a.reads = append(a.reads, listRead{key: k, list: parseList(v)})
	}
	for i, r := range a.reads {
		if !a.checkRead(r) {
			a.unsound[i] = true
		}
	}
	a.orders()
	a.lost()
	return a
}

// appendsOf records t's appends: each SET's new last element.
func (a *appendAnalysis) appendsOf(t *Txn) {
	lastSet := map[string]int{}
	for i, o := range t.Ops {
		if o.Op == OpSet {
			lastSet[o.Key] = i
		}
	}
	for i, o := range t.Ops {
		if o.Op != OpSet {
			continue
		}
		l := parseList(o.Value)
		if len(l) == 0 {
			continue
		}
		op := &appendOp{t: t, key: o.Key, elem: l[len(l)-1], last: lastSet[o.Key] == i}
		if len(l) > 1 {
			op.prev = l[len(l)-2]
		}
		if a.writers[o.Key] == nil {
			a.writers[o.Key] = map[string]*appendOp{}
		}
		a.writers[o.Key][op.elem] = op
	}
}

// internal checks that t's later GETs of a key read what t itself last
// read or wrote of it: a committed transaction sees one state.
func (a *appendAnalysis) internal(t *Txn) {
	known := map[string]HistOp{}
	for _, o := range t.Ops {
		prev, ok := known[o.Key]
		if o.Op == OpGet && ok && (prev.Found != o.Found || prev.Value != o.Value) {
			had := "read"
			if prev.Op == OpSet {
				had = "written"
			}
			a.v = append(a.v, violation("internal", []*Txn{t}, "%s committed, yet it read %s=%s after it had %s %s=%s",
				t.Name(), o.Key, showList(parseList(o.Value)), had, o.Key, showList(parseList(prev.Value))))
		}
		if o.Op == OpSet {
			o.Found = true
		}
		known[o.Key] = o
	}
}

// checkRead reports what one read shows on its own, and whether it is
// sound: a read that showed an anomaly gives no dependencies (they would
// report it again as a cycle).
func (a *appendAnalysis) checkRead(r listRead) bool {
	seen := map[string]bool{}
	for _, e := range r.list {
		if seen[e] {
			a.v = append(a.v, violation("duplicate", []*Txn{r.t}, "%s %s=%s: element %s twice", r.saw(), r.key, showList(r.list), e))
			return false
		}
		seen[e] = true
	}
	for _, e := range r.list {
		w := a.writers[r.key][e]
		switch {
		case w == nil:
			a.v = append(a.v, violation("garbage-read", []*Txn{r.t}, "%s %s=%s, but no transaction appended %s to %s",
				r.saw(), r.key, showList(r.list), e, r.key))
			return false
		case w.t.Outcome == Aborted:
			a.v = append(a.v, violation("G1a", []*Txn{r.t, w.t}, "%s %s=%s, but %s was appended by %s, which aborted (%s): an aborted write was read",
				r.saw(), r.key, showList(r.list), e, w.t.Name(), w.t.Reason))
			return false
		case w.t != r.t:
			a.committed[w.t] = true // read by another: it committed
		}
	}
	if len(r.list) == 0 {
		return true
	}
	e := r.list[len(r.list)-1]
	if w := a.writers[r.key][e]; !w.last && w.t != r.t {
		a.v = append(a.v, violation("G1b", []*Txn{r.t, w.t}, "%s %s=%s, ending in %s, an intermediate state of %s, which went on to append more to %s",
			r.saw(), r.key, showList(r.list), e, w.t.Name(), r.key))
		return false
	}
	return true
}

// orders takes each key's longest read as its order and reports reads
// that are not prefixes of it.
func (a *appendAnalysis) orders() {
	longest := map[string]listRead{}
	for _, r := range a.reads {
		// The store after the run, when it is as long, is the witness
		// that names the order best.
		cur, ok := longest[r.key]
		if !ok || len(r.list) > len(cur.list) || len(r.list) == len(cur.list) && r.t == nil {
			longest[r.key] = r
		}
	}
	for k, l := range longest {
		a.order[k] = l.list
	}
	for _, r := range a.reads {
		l := longest[r.key]
		if len(r.list) > len(l.list) || !slices.Equal(r.list, l.list[:len(r.list)]) {
			a.broken[r.key] = true
			a.v = append(a.v, violation("incompatible-order", []*Txn{r.t, l.t}, "%s %s=%s and %s %s=%s: no one order of appends has both as prefixes",
				r.saw(), r.key, showList(r.list), l.saw(), r.key, showList(l.list)))
		}
	}
}

// lost reports appends that committed but are missing from their key's
// final list: a lost update.
func (a *appendAnalysis) lost() {
	for k, ws := range a.writers {
		if a.broken[k] {
			continue
		}
		in := map[string]bool{}
		for _, e := range a.order[k] {
			in[e] = true
		}
		for _, w := range sortedAppends(ws) {
			if w.last && w.t.Outcome == Committed && !in[w.elem] {
				a.v = append(a.v, violation("lost-append", []*Txn{w.t}, "%s committed appending %s to %s, but %s's final list %s lacks it: the write was lost",
					w.t.Name(), w.elem, k, k, showList(a.order[k])))
			}
		}
	}
}

// sortedAppends is a key's appends in the order of their transactions.
func sortedAppends(ws map[string]*appendOp) []*appendOp {
	out := make([]*appendOp, 0, len(ws))
	for _, w := range ws {
		out = append(out, w)
	}
	slices.SortFunc(out, func(x, y *appendOp) int {
		if x.t.N != y.t.N {
			return x.t.N - y.t.N
		}
		return strings.Compare(x.elem, y.elem)
	})
	return out
}
