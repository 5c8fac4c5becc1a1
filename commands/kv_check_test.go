// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// kv check, as a user runs it: a short counter run on a private kv,
// shown as text and as JSON. The command fails (exit 1, one error line)
// exactly when it reports violations; whether kv has any is
// TestCheckLive's question (bpf/kv), this one is about the command.
func TestKVCheckCommand(t *testing.T) {
	bpftest.RequireRoot(t)
	root := bpftest.PinRoot(t)

	code, out, errb := bpfsh(t, root, "-c", "kv check counter clients 2 for 500ms")
	for _, want := range []string{"workload:", "counter: 2 clients", "transactions:", "committed", "operations:", "violations:", "verdict:"} {
		if !strings.Contains(out, want) {
			t.Errorf("kv check output lacks %q:\n%s", want, out)
		}
	}
	switch {
	case code == 0 && strings.Contains(out, "verdict:       serializable: no violation found") && errb == "":
	case code == 1 && strings.Contains(out, "violation") && strings.HasPrefix(errb, "error: -c:1: kv check counter: ") &&
		strings.Contains(errb, "violation") && strings.Count(strings.TrimRight(errb, "\n"), "\n") == 0:
		t.Logf("kv found violations (the command's failure is right):\n%s", out)
	default:
		t.Errorf("kv check: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}

	code, out, errb = bpfsh(t, root, "-j", "-c", "kv check list-append clients 2 for 1s")
	res := decodeJSON[struct {
		Workload     string         `json:"workload"`
		Property     string         `json:"property"`
		Transactions int            `json:"transactions"`
		Committed    int            `json:"committed"`
		AbortedBy    map[string]int `json:"aborted_by"`
		Violations   int            `json:"violations"`
		First        []struct {
			Kind, Text string
		} `json:"first_violations"`
		Verdict string `json:"verdict"`
	}](t, out)
	if res.Workload != "list-append" || res.Property != "serializable" || res.Committed == 0 || res.Transactions < res.Committed || res.Verdict == "" {
		t.Errorf("kv check -j: %+v", res)
	}
	if (code == 1) != (res.Violations > 0) || errb != "" || len(res.First) != min(res.Violations, 20) {
		t.Errorf("kv check -j: exit %d with %d violations (%d listed); stderr %q", code, res.Violations, len(res.First), errb)
	}
	if ns := ourNamespaces(t); len(ns) != 0 {
		t.Errorf("namespaces left: %v", ns)
	}

	bpfshFails(t, root, "kv check", 2, "needs a WORKLOAD", "bank, counter, register, list-append")
	bpfshFails(t, root, "kv check ledger", 2, `no workload "ledger"`)
	bpfshFails(t, root, "kv check bank clients 0", 2, "1 to 64")
	bpfshFails(t, root, "kv check bank for 1h", 2, "100ms to 10m")
	bpfshFails(t, root, "kv check bank clients", 2, "clients needs a value")
	bpfshFails(t, root, "kv check bank fast", 2, `unexpected "fast"`)
}
