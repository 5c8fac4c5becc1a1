// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf/kv"
)

// kv check: does kv keep its promises under concurrency? (bpf/kv/check.go)

var kvCheckCmd = &Command{
	Name:  "check",
	Usage: "WORKLOAD [clients N] [for DURATION]",
	Short: "prove or disprove kv's serializability: run a workload on a private kv, record its history, check it",
	Long: "kv check loads a private kv (its own empty store: the one under the pin root is not touched), serves it on a " +
		"veth pair in a namespace it makes (as kv bench does), runs N concurrent UDP clients from the namespace for " +
		"DURATION, records what each request was answered and when, reads the store and the log of commits (the WAL) " +
		"afterwards, and checks the history; then it removes everything. It shows the transactions committed, aborted " +
		"(by reason) and unknown (COMMIT sent, no reply: they may have committed; the log settles them), the operations, " +
		"the violations (how many, by kind, the first few in words: which transactions, keys and values) and the " +
		"verdict. Violations make it fail (exit 1). Defaults: clients 4, for 5s; a run stops early at a million " +
		"transactions.\n\n" +
		"bank: ten accounts of 1000; transfers read two and write both, audits read all ten in one transaction. Every " +
		"committed audit must see 10000, and so must the store after the run; replaying the log in seq order, each " +
		"committed transaction must have read what the commits before it left (lost-update), and each audit a state " +
		"the store held (read-skew). An audit that read a state the store held, whose total an earlier commit had " +
		"already broken, is bank-total-store; one that read a state that never was, bank-total; a wrong total after the run, bank-final.\n\n" +
		"counter: transactions increment one key; it must end at the committed increments: between C and C+U, with U " +
		"the unknown commits.\n\n" +
		"register: lone GETs and SETs of unique values on a few keys (fresh keys every 1000 requests), checked for " +
		"linearizability with porcupine; an unanswered SET may take effect any time after it was sent.\n\n" +
		"list-append: after Jepsen's Elle: transactions read lists and append unique elements; the committed reads give " +
		"each key's order, and from it the write-write, write-read and read-write dependencies between transactions. " +
		"A cycle is G0, G1c, G-single or G2; reads show G1a (an aborted write), G1b (an intermediate one), " +
		"duplicates and incompatible orders.\n\n" +
		"Every workload also matches the log against the clients: an aborted transaction in the log (G1a), a commit " +
		"answered OK that is not in it, a live transaction answered NO_TXN (expired-live), a reply for another request " +
		"(wrong-reply). The last two break kv's protocol, not serializability: the verdict says so, and they fail the " +
		"command too.",
	Example: "kv check bank clients 4 for 5s",
	Run:     runKVCheck,
}

// kvCheckListed is how many violations the text shows (JSON has 20).
const kvCheckListed = 5

func runKVCheck(s *Session, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("kv check needs a WORKLOAD: %s", strings.Join(kv.Workloads, ", "))
	}
	o := kv.CheckOptions{Workload: args[0]}
	if !slices.Contains(kv.Workloads, o.Workload) {
		return nil, Usagef("kv check: no workload %q; one of %s", o.Workload, strings.Join(kv.Workloads, ", "))
	}
	err := benchArgs(args[1:], nil, []string{"clients", "for"}, "kv check bank clients 4 for 5s",
		"kv check takes a WORKLOAD, then clients N and for DURATION",
		func(w, v string) (err error) {
			switch w {
			case "clients":
				o.Clients, err = livePositive(w, v, 64)
			case "for":
				o.Duration, err = benchFor(v)
			}
			return err
		})
	if err != nil {
		return nil, err
	}
	res, err := kv.Check(s.Context(), o)
	if err != nil {
		return nil, benchFailed(s, "kv check", err)
	}
	view := kvCheckView(res)
	if res.Violations > 0 || res.Committed == 0 {
		return nil, &FailedResult{Result: view, Err: fmt.Errorf("kv check %s: %s", res.Workload, res.Verdict)}
	}
	return view, nil
}

// kvCheckView shows a check's result: counts, violations, verdict; in
// JSON, the whole result.
func kvCheckView(r *kv.CheckResult) *Text {
	var lines [][2]string
	add := func(name, value string) { lines = append(lines, [2]string{name, value}) }
	add("workload", fmt.Sprintf("%s: %d clients for %s against a private kv in namespace %s (%s)",
		r.Workload, r.Clients, r.Elapsed.Round(time.Millisecond), r.Namespace, r.Addr))
	add("transactions", fmt.Sprintf("%d: %d committed, %d aborted%s, %d unknown%s",
		r.Transactions, r.Committed, r.Aborted, kvCheckCounts(r.AbortedBy), r.Unknown, kvCheckUnknown(r)))
	add("operations", fmt.Sprintf("%d GETs and SETs answered; %d commits in the log; %d late replies", r.Ops, r.Commits, r.Late))
	add("violations", strconv.Itoa(r.Violations)+kvCheckCounts(r.ByKind))
	for i, v := range r.First {
		if i == kvCheckListed {
			add("", fmt.Sprintf("... and %d more (-j lists %d)", r.Violations-i, len(r.First)))
			break
		}
		add("", v.String())
	}
	for _, n := range r.Notes {
		add("note", n)
	}
	add("verdict", r.Verdict)
	return &Text{Body: kvLines(lines), JSON: r}
}

// kvCheckCounts is " (CONFLICT 12, client 3)", by count, or "".
func kvCheckCounts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// kvCheckUnknown says what the log settled of the unknown commits.
func kvCheckUnknown(r *kv.CheckResult) string {
	if r.Unknown == 0 {
		return ""
	}
	return fmt.Sprintf(" (the log shows %d of them committed)", r.UnknownLogged)
}
