// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Checking kv
//
// A check serves a private kv (ServePrivate: never the user's store) on a
// veth pair, runs a workload's clients against it over UDP from inside
// the namespace for a while, records what every client saw (History),
// reads the store and the log of commits afterwards, and judges the
// history: does some serial order of the committed transactions explain
// every answer (or, for register, some linearization of the requests)?
// Each workload knows what its history must satisfy; violations are
// described in words, naming transactions, keys and values.

// Workloads kv check runs.
var Workloads = []string{"bank", "counter", "register", "list-append"}

// CheckOptions configures a check run. Zero fields take the defaults.
type CheckOptions struct {
	Workload string        // one of Workloads
	Clients  int           // concurrent clients (default 4, at most 64)
	Duration time.Duration // how long the clients run (default 5s, 100ms to 10m)
	Port     uint16        // kv's UDP port (default 6390)
	// Timeout is how long a client waits for each reply (default 1s).
	Timeout time.Duration
	// Seed makes the clients' choices repeatable (0: a fixed seed).
	Seed uint64
}

func (o *CheckOptions) defaults() error {
	if o.Clients == 0 {
		o.Clients = 4
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Port == 0 {
		o.Port = Port
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Seed == 0 {
		o.Seed = 0x6b76636b
	}
	switch {
	case !slices.Contains(Workloads, o.Workload):
		return fmt.Errorf("kv check: no workload %q; one of %s", o.Workload, strings.Join(Workloads, ", "))
	case o.Clients < 1 || o.Clients > 64:
		return fmt.Errorf("kv check: %d clients; 1 to 64", o.Clients)
	case o.Duration < 100*time.Millisecond || o.Duration > 10*time.Minute:
		return fmt.Errorf("kv check: duration %s; 100ms to 10m", o.Duration)
	}
	return nil
}

// CheckResult is what a check run found.
type CheckResult struct {
	Workload string `json:"workload"`
	Clients  int    `json:"clients"`
	// Property is what the history was checked for: serializable, or
	// linearizable (register).
	Property  string        `json:"property"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Namespace string        `json:"namespace"`
	Addr      string        `json:"addr"`
	// Transactions counts every transaction (and lone request) recorded;
	// Committed, Aborted and Unknown split them by outcome.
	Transactions int            `json:"transactions"`
	Committed    int            `json:"committed"`
	Aborted      int            `json:"aborted"`
	AbortedBy    map[string]int `json:"aborted_by"`
	// Unknown are commits whose reply never came; UnknownLogged of them
	// are in the log (they did commit).
	Unknown       int `json:"unknown"`
	UnknownLogged int `json:"unknown_logged"`
	// Ops counts GETs and SETs answered; Commits the log's records.
	Ops     int `json:"ops"`
	Commits int `json:"log_commits"`
	// Violations is how many were found; First lists the first ones
	// (at most 20), ByKind counts them by kind.
	Violations int            `json:"violations"`
	ByKind     map[string]int `json:"violations_by_kind,omitempty"`
	First      []Violation    `json:"first_violations,omitempty"`
	Verdict    string         `json:"verdict"`
	// Notes say what the checker could not decide (e.g. porcupine timed out).
	Notes []string `json:"notes,omitempty"`
	// Counters are xdp_kv's counters that moved during the run.
	Counters map[string]uint64 `json:"kv_counters"`
	Late     uint64            `json:"late_replies"`
}

// checkWorkload is one workload: what its clients do and what their
// history must satisfy.
type checkWorkload interface {
	// property is what the check proves or disproves.
	property() string
	// setup writes the initial state with client c before the run.
	setup(c *checkClient) error
	// client runs one client until ctx ends.
	client(ctx context.Context, c *checkClient, rng *rand.Rand)
	// check judges the history; notes say what it could not decide.
	check(h *History) (v []Violation, notes []string)
}

func newWorkload(name string) checkWorkload {
	switch name {
	case "bank":
		return &bankWorkload{}
	case "counter":
		return &counterWorkload{}
	case "register":
		return &registerWorkload{}
	}
	return newAppendWorkload()
}

// Check runs the workload o asks for against a private kv and checks its
// history. It returns an error only when the check could not run; what it
// found, violations included, is in the result.
func Check(ctx context.Context, o CheckOptions) (*CheckResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	w := newWorkload(o.Workload)
	p, err := ServePrivate(o.Port, "check")
	if err != nil {
		return nil, fmt.Errorf("kv check: %w", err)
	}
	defer p.Close()
	res := &CheckResult{Workload: o.Workload, Clients: o.Clients, Property: w.property(),
		Namespace: p.Server.Namespace, Addr: p.Server.Addr().String()}

	conns := make([]*net.UDPConn, 0, o.Clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range o.Clients {
		c, err := p.Server.DialUDP()
		if err != nil {
			return nil, fmt.Errorf("kv check: %w", err)
		}
		conns = append(conns, c)
	}
	before, err := p.H.ReadStats()
	if err != nil {
		return nil, fmt.Errorf("kv check: %w", err)
	}
	epoch := time.Now()
	var n counter
	clients := make([]*checkClient, len(conns))
	for i, conn := range conns {
		clients[i] = newCheckClient(i, conn, o.Timeout, epoch, &n)
	}
	if err := w.setup(clients[0]); err != nil {
		return nil, fmt.Errorf("kv check %s: setting up: %w", o.Workload, err)
	}
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	var wg sync.WaitGroup
	for i, c := range clients {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
		wg.Go(func() { w.client(runCtx, c, rng) })
	}
	wg.Wait()
	cancel()
	res.Elapsed = time.Since(epoch)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	h, err := witness(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("kv check: %w", err)
	}
	var wrong []Violation
	for _, c := range clients {
		h.Txns = append(h.Txns, c.txns...)
		wrong = append(wrong, c.wrong...)
		res.Late += c.late
	}
	sort.Slice(h.Txns, func(i, j int) bool { return h.Txns[i].N < h.Txns[j].N })
	after, err := p.H.ReadStats()
	if err != nil {
		return nil, fmt.Errorf("kv check: %w", err)
	}
	res.Counters = map[string]uint64{}
	for i := range after {
		if d := after[i].Value - before[i].Value; d != 0 {
			res.Counters[after[i].Name] = d
		}
	}
	logV := checkLog(h) // first: it sets the Seq of logged transactions
	wv, notes := w.check(h)
	v := append(append(wv, logV...), wrong...)
	if n.count() >= maxHistory {
		notes = append(notes, fmt.Sprintf("the clients stopped after %s, when the history reached %d transactions", res.Elapsed.Round(time.Millisecond), maxHistory))
	}
	res.judge(h, v, notes)
	return res, nil
}

// witness reads what the run left: the log, once the WAL writer has
// written every commit, and the store.
func witness(ctx context.Context, p *Private) (*History, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.Writer.Sync(sctx); err != nil {
		return nil, err
	}
	h := &History{Final: map[string]string{}, Log: []LogRecord{}}
	info, err := ReadWAL(p.WALPath, p.WALHash, func(r *LogRecord) error {
		c := LogRecord{Seq: r.Seq, TxID: r.TxID, Writes: make([]LogWrite, len(r.Writes))}
		for i, w := range r.Writes {
			c.Writes[i] = LogWrite{Op: w.Op, Key: slices.Clone(w.Key), Value: slices.Clone(w.Value)}
		}
		h.Log = append(h.Log, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if info.Torn != nil {
		return nil, fmt.Errorf("the check's WAL has a %s", info.Torn)
	}
	entries, err := p.H.Dump()
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.Pending {
			h.Final[string(e.Key)] = string(e.Value)
		}
	}
	return h, nil
}

// otherPromises are the kinds of violation that break a promise of kv's
// protocol but not, by themselves, the property checked: a transaction
// removed while in use (it aborts: safe, but kv says it keeps live ones),
// a reply that answers another request.
var otherPromises = map[string]bool{"expired-live": true, "wrong-reply": true}

// maxListed is how many violations a result lists.
const maxListed = 20

// judge fills in the counts and the verdict.
func (r *CheckResult) judge(h *History, v []Violation, notes []string) {
	r.AbortedBy = map[string]int{}
	for _, t := range h.Txns {
		r.Transactions++
		switch t.Outcome {
		case Committed:
			r.Committed++
		case Aborted:
			r.Aborted++
			r.AbortedBy[t.Reason]++
		case Unknown:
			r.Unknown++
			if t.Seq != 0 {
				r.UnknownLogged++
			}
		}
		r.Ops += len(t.Ops)
	}
	r.Commits = len(h.Log)
	r.Violations = len(v)
	r.Notes = notes
	if len(v) > 0 {
		r.ByKind = map[string]int{}
		for _, x := range v {
			r.ByKind[x.Kind]++
		}
		r.First = firstOfEach(v, maxListed)
		other := 0
		for _, x := range v {
			if otherPromises[x.Kind] {
				other++
			}
		}
		if other < len(v) {
			r.Verdict = "NOT " + r.Property + ": " + plural(len(v), "violation")
		} else {
			r.Verdict = r.Property + " as far as seen, but kv broke other promises: " + plural(len(v), "violation")
		}
		return
	}
	if r.Committed == 0 {
		// A history without one committed transaction promises nothing.
		r.Verdict = "nothing checked: no transaction committed in " + r.Elapsed.Round(time.Millisecond).String() + "; give it longer (for 5s) or fewer clients"
		return
	}
	r.Verdict = r.Property + ": no violation found"
}

// firstOfEach picks up to n violations, taking the kinds in turn (in the
// order each first appears) so that one kind's many cannot hide another's
// few: a lost update is listed beside the thousand audits it spoiled.
func firstOfEach(v []Violation, n int) []Violation {
	var kinds []string
	byKind := map[string][]Violation{}
	for _, x := range v {
		if _, ok := byKind[x.Kind]; !ok {
			kinds = append(kinds, x.Kind)
		}
		byKind[x.Kind] = append(byKind[x.Kind], x)
	}
	var out []Violation
	for i := 0; len(out) < min(n, len(v)); i++ {
		for _, k := range kinds {
			if i < len(byKind[k]) && len(out) < n {
				out = append(out, byKind[k][i])
			}
		}
	}
	return out
}

// plural is "1 violation" or "2 violations".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// errSetup is a setup step that did not commit.
var errSetup = errors.New("the initial write did not commit")

// setupWrite writes key=value on its own, retrying until it is answered
// OK (a lost reply is retried too: the value is the same).
func setupWrite(c *checkClient, key, value string) error {
	for range 10 {
		t := c.auto("init", HistOp{Op: OpSet, Key: key, Value: value})
		if t.Outcome == Committed {
			return nil
		}
	}
	return fmt.Errorf("SET %s=%s: %w", key, value, errSetup)
}
