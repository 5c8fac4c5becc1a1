// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Timing the path the user asked for
//
// With repeat N the kernel runs the program N times on one buffer without
// resetting it, and reports the average. A program that rewrites its
// packet (an XDP_TX reply swaps addresses) sees its own output from the
// second run on: the figure, and the verdict of the last run, belong to a
// path nobody asked about. bpfsh times N separate runs instead, each a
// bpf(2) call of its own into which the kernel copies the input afresh,
// and reports the kernel's own duration of each (min, median, p99: the
// spread shows what an average hides) with the verdicts they returned.
//
// A single timed run includes the kernel timer's own cost (reading the
// clock twice, disabling migration), which repeat N spreads over N runs.
// bpfsh measures that cost once per program type on an empty program of
// the type (median of single runs less its repeat-N average) and reports
// it, so that Median - Overhead compares with what bpftool prints for a
// program that leaves its input alone. Bench also runs the kernel's own
// repeat N, which is exactly what `bpftool prog run ... repeat N` reports.

// Timing is the timing of repeated runs.
type Timing struct {
	// Runs is how many separate runs were timed, each on a fresh copy.
	Runs int
	// Clock is "kernel" (the kernel's duration of each run) or "wall"
	// (time around each bpf(2) call, for types the kernel does not time).
	Clock string
	// Min, Median and P99 are per-run times.
	Min, Median, P99 time.Duration
	// Overhead is the kernel timer's own cost in a single timed run,
	// measured on an empty program of the same type (0: not measured).
	Overhead time.Duration
	// Retvals is how often each return value came back, most frequent first.
	Retvals []RetvalCount
	// Rewrote says the program changed its input (packet, metadata or
	// context): the kernel's repeat would time the rewritten path.
	Rewrote bool
	// KernelRepeat, KernelAvg and KernelRetval are the kernel's own repeat
	// over one buffer (Bench): what bpftool reports.
	KernelRepeat uint32
	KernelAvg    time.Duration
	KernelRetval string
	// Warnings explain figures that would mislead.
	Warnings []string
}

// RetvalCount is one return value and how often it came back.
type RetvalCount struct {
	Retval uint32 `json:"retval_code"`
	Name   string `json:"retval"`
	Count  int    `json:"count"`
}

// PerRun is the best figure for one run of the path asked for: the
// kernel's repeat average when the program leaves its input alone (it is
// then the same path, and bpftool's figure), otherwise the median of
// fresh runs less the timer's overhead.
func (tm *Timing) PerRun() time.Duration {
	if tm.KernelRepeat > 0 && !tm.Rewrote {
		return tm.KernelAvg
	}
	return max(tm.Median-tm.Overhead, 0)
}

// defaultBenchRepeat is the kernel repeat of Bench when no repeat is given.
const defaultBenchRepeat = 100000

// timeRuns times opts.Repeat fresh runs of r (and the kernel's repeat when
// Bench). first is the outcome of the first run, which says whether the
// program rewrote its input.
func timeRuns(t ebpf.ProgramType, opts Options, r *rawRun, first *Outcome) (*Timing, error) {
	n := opts.Repeat
	if n < 1 {
		n = 1
	}
	tm := &Timing{Runs: n, Clock: "kernel"}
	if !first.Timed {
		tm.Clock = "wall"
	}
	// sk_lookup's context changes are its output (the cookie of the
	// socket it picked); the kernel resets them between repeats.
	tm.Rewrote = first.PacketChanged || len(first.Meta) > 0 || (len(first.Ctx) > 0 && t != ebpf.SkLookup)
	durations := make([]time.Duration, 0, n)
	counts := map[uint32]int{}
	// One copy of r per run: the kernel copies data_in and ctx_in itself,
	// but a syscall program writes its context back in place.
	run := *r
	ctxIn := slices.Clone(r.ctxIn)
	for range n {
		if t == ebpf.Syscall {
			copy(run.ctxIn, ctxIn)
		}
		start := time.Now()
		res, err := progTestRun(&run)
		wall := time.Since(start)
		if err != nil {
			return nil, err
		}
		if first.Timed {
			durations = append(durations, time.Duration(res.duration))
		} else {
			durations = append(durations, wall)
		}
		counts[res.retval]++
	}
	slices.Sort(durations)
	tm.Min = durations[0]
	tm.Median = durations[len(durations)/2]
	tm.P99 = durations[min(len(durations)-1, len(durations)*99/100)]
	for v, c := range counts {
		tm.Retvals = append(tm.Retvals, RetvalCount{Retval: v, Name: RetvalName(t, v), Count: c})
	}
	slices.SortFunc(tm.Retvals, func(a, b RetvalCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return int(a.Retval) - int(b.Retval)
	})
	if first.Timed {
		tm.Overhead = timerOverhead(t, r)
	}

	if opts.Bench {
		rep := uint32(defaultBenchRepeat)
		if opts.Repeat > 1 {
			rep = uint32(opts.Repeat)
		}
		bench := *r
		bench.repeat = rep
		res, err := progTestRun(&bench)
		if err != nil {
			return nil, err
		}
		tm.KernelRepeat, tm.KernelAvg = rep, time.Duration(res.duration)
		tm.KernelRetval = RetvalName(t, res.retval)
		if tm.Rewrote && res.retval != first.Retval {
			tm.Warnings = append(tm.Warnings, fmt.Sprintf("the program changed its input; bpftool's repeat %d timed the rewritten path: its last run returned %s, not %s", rep, tm.KernelRetval, first.RetvalName))
		}
	}
	if tm.Rewrote {
		tm.Warnings = append(tm.Warnings, fmt.Sprintf("the program changed its packet; bpftool's repeat %d would time the rewritten path; these figures come from %d fresh copies of the input", max(n, int(tm.KernelRepeat)), n))
	}
	if len(tm.Retvals) > 1 {
		tm.Warnings = append(tm.Warnings, "the same input gave different return values: the program depends on state (maps, time, CPU)")
	}
	return tm, nil
}

var (
	overheadMu sync.Mutex
	overheads  = map[ebpf.ProgramType]time.Duration{}
)

// timerOverhead measures, once per program type, what a single timed run
// adds to a program's own time: the median of single runs of an empty
// program less the kernel's average over many. 0 when it cannot tell.
func timerOverhead(t ebpf.ProgramType, like *rawRun) time.Duration {
	overheadMu.Lock()
	defer overheadMu.Unlock()
	if d, ok := overheads[t]; ok {
		return d
	}
	d := measureOverhead(t, like)
	overheads[t] = d
	return d
}

func measureOverhead(t ebpf.ProgramType, like *rawRun) time.Duration {
	spec := &ebpf.ProgramSpec{
		Type:         t,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, emptyVerdict(t)), asm.Return()},
	}
	if t == ebpf.SkLookup {
		spec.AttachType = ebpf.AttachSkLookup
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return 0
	}
	defer p.Close()
	r := *like
	r.fd = p.FD()
	r.ctxIn = slices.Clone(like.ctxIn)
	if like.dataOut != nil {
		r.dataOut = make([]byte, len(like.dataOut))
	}
	if like.ctxOut != nil {
		r.ctxOut = make([]byte, len(like.ctxOut))
	}
	const singles = 301
	ds := make([]time.Duration, 0, singles)
	for range singles {
		res, err := progTestRun(&r)
		if err != nil {
			return 0
		}
		ds = append(ds, time.Duration(res.duration))
	}
	slices.Sort(ds)
	r.repeat = 10000
	res, err := progTestRun(&r)
	if err != nil {
		return 0
	}
	return max(ds[len(ds)/2]-time.Duration(res.duration), 0)
}

// emptyVerdict is a harmless return value for an empty program of type t.
func emptyVerdict(t ebpf.ProgramType) int32 {
	switch t {
	case ebpf.XDP:
		return 2 // XDP_PASS
	case ebpf.CGroupSKB, ebpf.SkLookup:
		return 1 // allow, SK_PASS
	}
	return 0
}
