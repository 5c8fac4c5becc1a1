// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// TestCheckLive runs each workload of kv check for 5 seconds against the
// real kernel: xdp_kv in driver mode on a veth pair, clients on UDP from
// the namespace. kv promises serializable transactions and
// linearizable single-key requests, so every workload must find no
// violation; each one found is logged in words.
func TestCheckLive(t *testing.T) {
	bpftest.RequireRoot(t)
	for _, w := range Workloads {
		t.Run(w, func(t *testing.T) {
			before := bpftest.TakeLeftovers(t, "")
			res, err := Check(context.Background(), CheckOptions{Workload: w, Clients: 4, Duration: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			bpftest.WantNoneLeft(t, before, bpftest.TakeLeftovers(t, ""))
			t.Logf("%s in %s: %d transactions, %d committed, %d aborted %v, %d unknown (%d in the log), %d ops, %d log commits; kv counters %v",
				w, res.Elapsed.Round(time.Millisecond), res.Transactions, res.Committed, res.Aborted, res.AbortedBy,
				res.Unknown, res.UnknownLogged, res.Ops, res.Commits, res.Counters)
			if res.Committed == 0 {
				t.Errorf("%s: nothing committed", w)
			}
			for _, n := range res.Notes {
				t.Logf("note: %s", n)
			}
			if res.Violations != 0 {
				for _, v := range res.First {
					t.Logf("%s", v)
				}
				t.Errorf("%s: %s (%v)", w, res.Verdict, res.ByKind)
			}
		})
	}
}
