// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// The bank
//
// Ten accounts start with 1000 each. Clients move money between two of
// them in transactions (read both, write both, commit; a CONFLICT is
// retried) and audit all ten in one read-only transaction, which must
// validate like any other. Money is neither made nor lost: every committed
// audit sees the total, the store ends with the total, and replaying the
// log each transfer read what the commits before it left.

const (
	bankAccounts = 10
	bankInitial  = 1000
	bankTotal    = bankAccounts * bankInitial
	// bankRetries bounds the tries of one transfer.
	bankRetries = 10
)

func bankAccount(i int) string { return "acct" + strconv.Itoa(i) }

type bankWorkload struct{}

func (*bankWorkload) property() string { return "serializable" }

func (*bankWorkload) setup(c *checkClient) error {
	for i := range bankAccounts {
		if err := setupWrite(c, bankAccount(i), strconv.Itoa(bankInitial)); err != nil {
			return err
		}
	}
	return nil
}

func (*bankWorkload) client(ctx context.Context, c *checkClient, rng *rand.Rand) {
	for c.running(ctx) {
		if rng.IntN(5) == 0 {
			bankAudit(c)
			continue
		}
		a := rng.IntN(bankAccounts)
		b := (a + 1 + rng.IntN(bankAccounts-1)) % bankAccounts
		x := 1 + rng.IntN(100)
		for try := 0; try < bankRetries && ctx.Err() == nil; try++ {
			if !bankTransfer(c, bankAccount(a), bankAccount(b), x) {
				break
			}
		}
	}
}

// bankTransfer moves x from a to b unless a has less than x (then the
// client aborts). A value that is not a number aborts too: the checker
// reports it from the history. again says kv ended the transfer before
// it committed: try it again.
func bankTransfer(c *checkClient, a, b string, x int) (again bool) {
	r := c.begin("transfer")
	if r == nil {
		return true
	}
	va, _, err := r.get(a)
	if err != nil {
		return true
	}
	vb, _, err := r.get(b)
	if err != nil {
		return true
	}
	na, erra := strconv.Atoi(va)
	nb, errb := strconv.Atoi(vb)
	if erra != nil || errb != nil || na < x {
		r.cancel()
		return false
	}
	if r.set(a, strconv.Itoa(na-x)) != nil || r.set(b, strconv.Itoa(nb+x)) != nil {
		return true
	}
	return r.commit() == Aborted
}

// bankAudit reads every account in one transaction and commits it.
func bankAudit(c *checkClient) {
	r := c.begin("audit")
	if r == nil {
		return
	}
	for i := range bankAccounts {
		if _, _, err := r.get(bankAccount(i)); err != nil {
			return
		}
	}
	r.commit()
}

func (*bankWorkload) check(h *History) ([]Violation, []string) {
	var v []Violation
	var rp *replayed
	if h.Log != nil {
		rp, v = replayLog(h)
	}
	for _, t := range h.Txns {
		if t.Kind != "audit" || t.Outcome != Committed {
			continue
		}
		if sum, vals, ok := bankSum(func(k string) (string, bool) {
			for _, o := range t.Ops {
				if o.Op == OpGet && o.Key == k {
					return o.Value, o.Found
				}
			}
			return "", false
		}); !ok || sum != bankTotal {
			// Did the audit read a state the store held (an earlier
			// commit broke the total), or one that never was?
			if rp != nil {
				if seq, held := rp.snapshotAt(t); held {
					v = append(v, violation("bank-total-store", []*Txn{t}, "audit %s committed having read a total of %s, not %d: %s; the store held that after seq %d: an earlier commit made or lost money",
						t.Name(), sumText(sum, ok), bankTotal, vals, seq))
					continue
				}
			}
			v = append(v, violation("bank-total", []*Txn{t}, "audit %s committed having read a total of %s, not %d: %s",
				t.Name(), sumText(sum, ok), bankTotal, vals))
		} else if rp != nil {
			if x := rp.snapshot(t); x != nil {
				v = append(v, *x)
			}
		}
	}
	if sum, vals, ok := bankSum(func(k string) (string, bool) { v, ok := h.Final[k]; return v, ok }); !ok || sum != bankTotal {
		v = append(v, Violation{Kind: "bank-final", Text: fmt.Sprintf("after the run the accounts hold a total of %s, not %d: %s", sumText(sum, ok), bankTotal, vals)})
	}
	return v, nil
}

// bankSum adds the accounts as get reads them; ok is false when one is
// missing or not a number. vals lists them.
func bankSum(get func(string) (string, bool)) (sum int, vals string, ok bool) {
	ok = true
	parts := make([]string, bankAccounts)
	for i := range bankAccounts {
		k := bankAccount(i)
		s, found := get(k)
		n, err := strconv.Atoi(s)
		switch {
		case !found:
			parts[i], ok = k+" absent", false
		case err != nil:
			parts[i], ok = fmt.Sprintf("%s=%q", k, s), false
		default:
			parts[i] = fmt.Sprintf("%s=%d", k, n)
			sum += n
		}
	}
	return sum, strings.Join(parts, " "), ok
}

func sumText(sum int, ok bool) string {
	if !ok {
		return "none (not every account read as a number)"
	}
	return strconv.Itoa(sum)
}
