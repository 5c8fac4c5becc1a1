// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// Registers
//
// A few keys, each a register: clients GET and SET them with lone requests
// (each commits on its own), every SET with a value no other SET writes.
// Each request is recorded with when it was sent and when its reply came;
// kv must be linearizable: some order of the requests, each placed between
// its send and its reply, explains every GET. porcupine searches for one,
// key by key. A SET whose reply was lost may have taken effect at any time
// after it was sent, so it is given no end; a GET whose reply was lost told
// nothing and is left out.
//
// The search is exponential in the worst case and kv answers some hundred
// thousand requests a second, so no key gets more than registerKeyOps of
// them: the clients move on to fresh keys (absent to begin with), as
// Jepsen's register tests do, and each key's history stays small enough to
// search whole.

const (
	registerKeys   = 3    // keys in play at once
	registerKeyOps = 1000 // requests per key, about
)

// registerTimeout bounds porcupine's search per key; past it the key's
// verdict is unknown, and said so. registerBudget bounds all the keys'.
const (
	registerTimeout = 10 * time.Second
	registerBudget  = 60 * time.Second
)

type registerWorkload struct {
	ops atomic.Uint64 // requests handed out
}

func (*registerWorkload) property() string { return "linearizable" }

// Keys start absent.
func (*registerWorkload) setup(*checkClient) error { return nil }

func (w *registerWorkload) client(ctx context.Context, c *checkClient, rng *rand.Rand) {
	for c.running(ctx) {
		gen := (w.ops.Add(1) - 1) / (registerKeys * registerKeyOps)
		k := "reg" + strconv.FormatUint(gen*registerKeys+uint64(rng.IntN(registerKeys)), 10)
		if rng.IntN(2) == 0 {
			c.auto("read", HistOp{Op: OpGet, Key: k})
		} else {
			// The key in the value shows a GET answered with another key's.
			c.auto("write", HistOp{Op: OpSet, Key: k, Value: fmt.Sprintf("%s/c%d.%d", k, c.id, len(c.txns))})
		}
	}
}

// regState is a register's value; regOutput a GET's answer.
type (
	regState struct {
		value   string
		present bool
	}
	regInput struct {
		set   bool
		value string
	}
	regOutput = regState
)

var registerModel = porcupine.Model{
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.set {
			return true, regState{value: in.value, present: true}
		}
		return output.(regOutput) == state.(regState), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.set {
			return fmt.Sprintf("set %q", in.value)
		}
		return "get " + showReg(output.(regOutput))
	},
	DescribeState: func(state any) string { return showReg(state.(regState)) },
}

func showReg(s regState) string {
	if !s.present {
		return "absent"
	}
	return strconv.Quote(s.value)
}

// registerOps is the history of each key as porcupine takes it, with the
// transaction of each operation.
func registerOps(h *History) (keys []string, ops map[string][]porcupine.Operation, txns map[string][]*Txn) {
	ops, txns = map[string][]porcupine.Operation{}, map[string][]*Txn{}
	for _, t := range h.Txns {
		if !t.Auto || len(t.Ops) != 1 || t.Outcome == Aborted {
			continue
		}
		o := t.Ops[0]
		op := porcupine.Operation{ClientId: t.Client, Call: int64(t.Start), Return: int64(t.End)}
		if o.Op == OpSet {
			op.Input = regInput{set: true, value: o.Value}
			if t.Outcome == Unknown {
				op.Return = math.MaxInt64
			}
		} else {
			op.Input, op.Output = regInput{}, regOutput{value: o.Value, present: o.Found}
		}
		if _, ok := ops[o.Key]; !ok {
			keys = append(keys, o.Key)
		}
		ops[o.Key] = append(ops[o.Key], op)
		txns[o.Key] = append(txns[o.Key], t)
	}
	return keys, ops, txns
}

func (*registerWorkload) check(h *History) ([]Violation, []string) {
	var v []Violation
	var notes []string
	keys, ops, txns := registerOps(h)
	start := time.Now()
	for i, k := range keys {
		if time.Since(start) > registerBudget {
			notes = append(notes, fmt.Sprintf("%d of %d keys left unchecked: porcupine's %s were spent", len(keys)-i, len(keys), registerBudget))
			break
		}
		res, info := porcupine.CheckOperationsVerbose(registerModel, ops[k], registerTimeout)
		switch res {
		case porcupine.Unknown:
			notes = append(notes, fmt.Sprintf("%s: porcupine found no verdict on its %d operations within %s", k, len(ops[k]), registerTimeout))
		case porcupine.Illegal:
			v = append(v, registerViolation(k, ops[k], txns[k], info))
		}
	}
	return v, notes
}

// registerViolation describes a key's history that has no linearization:
// a read that shows it on its own (a value never written, written only
// after the read was answered, or overwritten before the read was sent),
// else the longest order porcupine found and the earliest operation that
// cannot come after it.
func registerViolation(key string, ops []porcupine.Operation, txns []*Txn, info porcupine.LinearizationInfo) Violation {
	if v, ok := registerStaleRead(key, ops, txns); ok {
		return v
	}
	var longest []int
	if parts := info.PartialLinearizations(); len(parts) > 0 {
		for _, l := range parts[0] {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	in := map[int]bool{}
	state := regState{}
	for _, id := range longest {
		in[id] = true
		_, next := registerModel.Step(state, ops[id].Input, ops[id].Output)
		state = next.(regState)
	}
	var left []int
	for id := range ops {
		if !in[id] {
			left = append(left, id)
		}
	}
	sort.Slice(left, func(a, b int) bool { return ops[left[a]].Call < ops[left[b]].Call })
	text := fmt.Sprintf("%s: no order of its %d operations, each between its send and its reply, explains every GET", key, len(ops))
	var involved []*Txn
	if len(longest) > 0 {
		last := longest[len(longest)-1]
		text += fmt.Sprintf("; the longest order found explains %d, ending with %s, after which %s holds %s",
			len(longest), describeRegOp(txns[last], ops[last]), key, showReg(state))
		involved = append(involved, txns[last])
	}
	if len(left) > 0 {
		first := left[0]
		text += fmt.Sprintf("; the earliest operation that cannot follow is %s", describeRegOp(txns[first], ops[first]))
		involved = append(involved, txns[first])
	}
	return violation("not-linearizable", involved, "%s", text)
}

// registerStaleRead looks for a GET that no order can place, seen from
// the real-time order alone.
func registerStaleRead(key string, ops []porcupine.Operation, txns []*Txn) (Violation, bool) {
	setOf := map[string]int{}
	for i, op := range ops {
		if in := op.Input.(regInput); in.set {
			setOf[in.value] = i
		}
	}
	for i, op := range ops {
		if op.Input.(regInput).set {
			continue
		}
		out := op.Output.(regOutput)
		if !out.present {
			continue
		}
		w, ok := setOf[out.value]
		if other, _, _ := strings.Cut(out.value, "/"); !ok && other != key {
			return violation("wrong-key", []*Txn{txns[i]}, "%s: %s: the value of another key, %s", key, describeRegOp(txns[i], op), other), true
		}
		if !ok {
			return violation("not-linearizable", []*Txn{txns[i]}, "%s: %s, a value no SET of %s wrote", key, describeRegOp(txns[i], op), key), true
		}
		if ops[w].Call > op.Return {
			return violation("not-linearizable", []*Txn{txns[i], txns[w]}, "%s: %s, but that value's SET, %s, was sent only after the read was answered",
				key, describeRegOp(txns[i], op), describeRegOp(txns[w], ops[w])), true
		}
		for j, o2 := range ops {
			if in := o2.Input.(regInput); in.set && j != w && ops[w].Return < o2.Call && o2.Return < op.Call {
				return violation("not-linearizable", []*Txn{txns[i], txns[w], txns[j]},
					"%s: stale read: %s, the value of %s, which %s had overwritten before the read was sent",
					key, describeRegOp(txns[i], op), describeRegOp(txns[w], ops[w]), describeRegOp(txns[j], o2)), true
			}
		}
	}
	return Violation{}, false
}

// describeRegOp is one register operation in words, with its times.
func describeRegOp(t *Txn, op porcupine.Operation) string {
	end := "no reply"
	if op.Return != math.MaxInt64 {
		end = time.Duration(op.Return).Round(time.Microsecond).String()
	}
	what := registerModel.DescribeOperation(op.Input, op.Output)
	return fmt.Sprintf("%s (client %d, %s, sent at %s, answered at %s)", t.Name(), t.Client, what,
		time.Duration(op.Call).Round(time.Microsecond), end)
}
