// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/proxy"
)

// Bad words and values are refused with one line each, before anything
// is started (exit 2: usage).
func TestProxyBenchRefusesBadArgs(t *testing.T) {
	cmd := proxyBenchCommand()
	for _, args := range [][]string{
		{"clients"}, {"clients", "0"}, {"clients", "1001"}, {"jobs", "0"}, {"jobs", "17"}, {"clients", "2", "jobs", "3"},
		{"for", "500ms"}, {"for", "1.5s"}, {"for", "2h"}, {"scale", "0"}, {"pool", "0"}, {"pool", "201"}, {"bogus"}, {"select-only", "x"},
	} {
		_, err := cmd.Run(&Session{}, args)
		var u *UsageError
		if err == nil || !errors.As(err, &u) || strings.Contains(err.Error(), "\n") {
			t.Errorf("proxy bench %v: %v, want one usage line", args, err)
		}
	}
}

// A short bench through the command: the three legs are
// measured with no failed transaction, the table and its JSON carry the
// figures, and bpfsh's leg runs and is compared with PgBouncer's.
func TestProxyBenchShort(t *testing.T) {
	bpftest.RequireRoot(t)
	if err := proxy.BenchMissing(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	res, err := proxyBenchCommand().Run(&Session{}, strings.Fields("clients 4 jobs 2 for 1s scale 1 pool 2 select-only"))
	if err != nil {
		t.Fatal(err)
	}
	tab, ok := res.(*Table)
	if !ok {
		t.Fatalf("result %T, want a table", res)
	}
	r := tab.JSON.(*proxy.BenchResult)
	for _, leg := range []string{proxy.LegDirect, proxy.LegPgBouncer, proxy.LegBpfsh} {
		run := r.Run(leg, proxy.ScriptSelectOnly)
		if run == nil {
			t.Fatalf("no %s run: %+v", leg, r)
		}
		p := run.Pgbench
		if p.Transactions == 0 || p.Failed != 0 || p.TPS <= 0 || p.P99 <= 0 || p.Logged != p.Transactions || run.CPU.Busy <= 0 || run.CPUPerTx <= 0 {
			t.Errorf("%s: %+v, CPU %+v", leg, *p, run.CPU)
		}
	}
	if r.Run(proxy.LegDirect, proxy.ScriptTPCB) != nil {
		t.Error("select-only ran the TPC-B script too")
	}
	if r.Run(proxy.LegPgBouncer, proxy.ScriptSelectOnly).ProxyCPU < 0 {
		t.Error("negative PgBouncer CPU")
	}
	if bpfsh := r.Run(proxy.LegBpfsh, proxy.ScriptSelectOnly); bpfsh == nil || bpfsh.Pgbench.Failed != 0 || bpfsh.Pgbench.Transactions == 0 || len(r.Ratios) != 1 || r.Ratios[0].TPS <= 0 {
		t.Errorf("bpfsh: %+v; ratios %+v", bpfsh, r.Ratios)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Error(err)
	}
	if last := tab.Rows[len(tab.Rows)-1]; last[0] != "setup" || !strings.Contains(last[8], "PgBouncer") {
		t.Errorf("last row: %v", last)
	}
}
