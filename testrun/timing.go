// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"context"
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
	// Runs is how many separate runs were timed, each on a fresh copy
	// (bench alone times defaultBenchFresh); fewer than Asked when
	// Interrupted.
	Runs int
	// Asked is how many fresh runs were asked for.
	Asked int
	// Clock is "kernel" (the kernel's duration of each run) or "wall"
	// (time around each bpf(2) call, for types the kernel does not time).
	Clock string
	// Min, Median and P99 are per-run times, the quantiles from a
	// histogram of fixed size (within 1/64 of the exact values).
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
	// over one buffer (Bench): what bpftool reports. KernelAsked is the
	// repeat asked for; KernelRepeat the runs made (fewer when
	// Interrupted).
	KernelRepeat uint32
	KernelAsked  uint32
	KernelAvg    time.Duration
	KernelRetval string
	// Interrupted says Ctrl-C (the run's context) stopped the timing
	// before every run asked for was made; the figures are of the runs
	// made.
	Interrupted bool
	// Warnings explain figures that would mislead; at most one says
	// that the program rewrote its input.
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

// PerRunSource says where PerRun comes from, in a few words.
func (tm *Timing) PerRunSource() string {
	if tm.KernelRepeat > 0 && !tm.Rewrote {
		return "the kernel repeat's average (the program leaves its input alone, so it is the same path)"
	}
	if tm.Overhead > 0 {
		return fmt.Sprintf("the fresh runs' median less the kernel timer's own ~%d ns", tm.Overhead.Nanoseconds())
	}
	return "the fresh runs' median"
}

// Total is every run the timing made.
func (tm *Timing) Total() int {
	if tm == nil {
		return 0
	}
	return tm.Runs + int(tm.KernelRepeat)
}

// defaultBenchRepeat is the kernel repeat of Bench when no repeat is
// given, and defaultBenchFresh the fresh runs timed beside it.
const (
	defaultBenchRepeat = 100000
	defaultBenchFresh  = 1000
)

// checkEvery is how many fresh runs go by between looks at the context:
// a few milliseconds of runs.
const checkEvery = 256

// kernelChunk is how long one kernel repeat call may take: bench splits
// the kernel's repeat into calls of about this long, so that Ctrl-C stops
// it between two. Each call starts from a fresh copy of the input, which
// for a program that rewrites its packet makes one run in thousands take
// the path asked for; the average does not notice.
const kernelChunk = 100 * time.Millisecond

// timeRuns times opts.Repeat fresh runs of r (and the kernel's repeat when
// Bench). first is the outcome of the first run, which says whether the
// program rewrote its input. It stops early, marking the timing
// Interrupted, when ctx is done.
func timeRuns(ctx context.Context, t ebpf.ProgramType, opts Options, r *rawRun, first *Outcome) (*Timing, error) {
	n := opts.Repeat
	if n < 1 {
		n = 1
	}
	if opts.Bench && opts.Repeat <= 1 {
		n = defaultBenchFresh
	}
	tm := &Timing{Asked: n, Clock: "kernel"}
	if !first.Timed {
		tm.Clock = "wall"
	}
	// sk_lookup's context changes are its output (the cookie of the
	// socket it picked); the kernel resets them between repeats.
	tm.Rewrote = first.PacketChanged || len(first.Meta) > 0 || (len(first.Ctx) > 0 && t != ebpf.SkLookup)
	var hist histogram
	counts := map[uint32]int{}
	// One copy of r per run: the kernel copies data_in and ctx_in itself,
	// but a syscall program writes its context back in place.
	run := *r
	ctxIn := slices.Clone(r.ctxIn)
	for i := range n {
		if i%checkEvery == 0 && ctx.Err() != nil {
			tm.Interrupted = true
			break
		}
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
			hist.add(time.Duration(res.duration))
		} else {
			hist.add(wall)
		}
		counts[res.retval]++
		tm.Runs++
	}
	tm.Min = hist.min
	tm.Median = hist.quantile(0.5)
	tm.P99 = hist.quantile(0.99)
	for v, c := range counts {
		tm.Retvals = append(tm.Retvals, RetvalCount{Retval: v, Name: RetvalName(t, v), Count: c})
	}
	slices.SortFunc(tm.Retvals, func(a, b RetvalCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return int(a.Retval) - int(b.Retval)
	})
	if first.Timed && !tm.Interrupted {
		tm.Overhead = timerOverhead(t, r)
	}

	if opts.Bench && !tm.Interrupted {
		rep := uint32(defaultBenchRepeat)
		if opts.Repeat > 1 {
			rep = uint32(opts.Repeat)
		}
		tm.KernelAsked = rep
		if err := kernelRepeat(ctx, t, r, tm); err != nil {
			return nil, err
		}
	}
	if tm.Rewrote {
		caveat := fmt.Sprintf("the program changed its packet; bpftool's repeat %d would time the rewritten path", max(n, int(tm.KernelAsked)))
		if tm.KernelRepeat > 0 && tm.KernelRetval != first.RetvalName {
			caveat += fmt.Sprintf(": the kernel repeat above did, and its last run returned %s, not %s", tm.KernelRetval, first.RetvalName)
		}
		tm.Warnings = append(tm.Warnings, caveat+fmt.Sprintf("; per run comes from %d fresh copies of the input", tm.Runs))
	}
	if len(tm.Retvals) > 1 {
		tm.Warnings = append(tm.Warnings, "the same input gave different return values: the program depends on state (maps, time, CPU)")
	}
	return tm, nil
}

// kernelRepeat runs the kernel's own repeat of tm.KernelAsked over one
// buffer, as bpftool prog run does, in calls of about kernelChunk each,
// and records the runs made, their average and the last verdict.
func kernelRepeat(ctx context.Context, t ebpf.ProgramType, r *rawRun, tm *Timing) error {
	bench := *r
	left := tm.KernelAsked
	chunk := min(left, 1000)
	var total float64 // ns
	for left > 0 {
		if ctx.Err() != nil {
			tm.Interrupted = true
			break
		}
		bench.repeat = min(chunk, left)
		start := time.Now()
		res, err := progTestRun(&bench)
		if err != nil {
			return err
		}
		wall := time.Since(start)
		total += float64(res.duration) * float64(bench.repeat)
		tm.KernelRepeat += bench.repeat
		tm.KernelRetval = RetvalName(t, res.retval)
		left -= bench.repeat
		// Size the next call to take about kernelChunk.
		if wall > 0 {
			next := float64(bench.repeat) * float64(kernelChunk) / float64(wall)
			chunk = uint32(min(max(next, 1), float64(1<<30)))
		}
	}
	if tm.KernelRepeat > 0 {
		tm.KernelAvg = time.Duration(total / float64(tm.KernelRepeat))
	}
	return nil
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
