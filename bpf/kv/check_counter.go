// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// The counter
//
// One key, ctr, starts at 0; clients increment it in transactions (get,
// set n+1, commit). Afterwards it must hold the number of increments that
// committed. A commit whose reply was lost may or may not have: with C
// increments answered OK and U unknown, the final value must lie in
// [C, C+U]; outside it no resolution of the unknowns explains it. The log
// settles the unknowns and orders the commits: replayed, each increment
// must have read the value the one before it wrote (else an update was
// lost).

const counterKey = "ctr"

type counterWorkload struct{}

func (*counterWorkload) property() string { return "serializable" }

func (*counterWorkload) setup(c *checkClient) error { return setupWrite(c, counterKey, "0") }

func (*counterWorkload) client(ctx context.Context, c *checkClient, _ *rand.Rand) {
	for c.running(ctx) {
		r := c.begin("incr")
		if r == nil {
			continue
		}
		v, _, err := r.get(counterKey)
		if err != nil {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			r.cancel()
			continue
		}
		if r.set(counterKey, strconv.Itoa(n+1)) != nil {
			continue
		}
		r.commit()
	}
}

func (*counterWorkload) check(h *History) ([]Violation, []string) {
	var v []Violation
	if h.Log != nil {
		_, v = replayLog(h)
	}
	committed, unknown := 0, 0
	for _, t := range h.Txns {
		if t.Kind != "incr" {
			continue
		}
		switch t.Outcome {
		case Committed:
			committed++
		case Unknown:
			unknown++
		}
	}
	final, ok := h.Final[counterKey]
	n, err := strconv.Atoi(final)
	switch {
	case !ok:
		v = append(v, Violation{Kind: "counter-total", Text: fmt.Sprintf("after the run %s is absent; %d increments committed", counterKey, committed)})
	case err != nil:
		v = append(v, Violation{Kind: "counter-total", Text: fmt.Sprintf("after the run %s=%q is not a number; %d increments committed", counterKey, final, committed)})
	case n < committed:
		v = append(v, Violation{Kind: "counter-total", Text: fmt.Sprintf("%s ended at %d, but %d increments were answered OK (and %d unknown): at least %s lost",
			counterKey, n, committed, unknown, plural(committed-n, "committed increment"))})
	case n > committed+unknown:
		v = append(v, Violation{Kind: "counter-total", Text: fmt.Sprintf("%s ended at %d, but only %d increments were answered OK and %d more may have committed: %s from nowhere",
			counterKey, n, committed, unknown, plural(n-committed-unknown, "increment"))})
	}
	return v, nil
}
