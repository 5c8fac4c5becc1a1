// SPDX-License-Identifier: Apache-2.0

// Package testrun runs BPF programs on crafted input and reports what they
// did: BPF_PROG_TEST_RUN for every program type the kernel can test-run,
// with the return value named for the type, the output packet and context,
// the map entries the run changed, the bpf_printk lines it wrote and, on
// request, timings that measure the path asked for; and a live harness for
// the socket-map program types the kernel cannot test-run.
package testrun

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// Options says what to run and how.
type Options struct {
	// Program is the program to run. Run does not close it.
	Program *ebpf.Program
	// ProgramID, when not 0, is Program's id as the caller knows it (a
	// program it holds open): Run then does not ask the kernel.
	ProgramID ebpf.ProgramID
	// Held, when set, keeps the fds of the maps the run reads open for
	// the next run of the same program (bpf.Held; the caller releases
	// them). Set it only for a program the caller holds open itself.
	Held *bpf.Held
	// Data is the input packet: a whole frame from the Ethernet header on
	// for packet programs, the TCP payload for sk_skb/sk_msg programs, and
	// nothing for context-only types (sk_lookup, raw_tracepoint, syscall).
	Data []byte
	// Ctx is the context as the user typed it: "{mark: 5, ingress_ifindex: 1}"
	// (fields by name, laid out from the kernel's BTF or, for syscall
	// programs, the program's), "hex 05 00 00 00", or for raw tracepoints
	// a list of u64 arguments "[1, 2]". CtxRaw, when set, is sent as is.
	Ctx    []string
	CtxRaw []byte
	// Repeat > 1 times Repeat further runs, each on a fresh copy of the
	// input (see Timing). With LiveFrames it is the number of frames sent.
	Repeat int
	// Bench also runs the kernel's own repeat over the same buffer, as
	// `bpftool prog run ... repeat N` does, for comparison.
	Bench bool
	// OnCPU runs a raw tracepoint program on CPU (BPF_F_TEST_RUN_ON_CPU).
	OnCPU bool
	CPU   uint32
	// Flags are further BPF_F_TEST_* flags (e.g. 4, checksum_complete).
	Flags uint32
	// LiveFrames runs an XDP program in live-frame mode
	// (BPF_F_TEST_XDP_LIVE_FRAMES): frames it passes go up the stack and
	// XDP_TX really transmits; the kernel then reports no verdict. Use it
	// inside a network namespace. BatchSize is the frames per batch (the
	// kernel's default 64, at most 256).
	LiveFrames bool
	BatchSize  uint32
	// NoTrace skips capturing bpf_printk lines; NoMaps skips the map diff.
	NoTrace bool
	NoMaps  bool
	// WriteCheck, when set, names the maps the program may write; the
	// others are not read for the diff (see readonly.go). AllMaps reads
	// every map all the same.
	WriteCheck WriteCheck
	AllMaps    bool
	// StreamCheck, when set, says whether the program may write to its
	// BPF streams (see streamcheck.go); when it says no, they are not
	// read after the run.
	StreamCheck StreamCheck
	// Harness configures the live harness that runs sk_skb and sk_msg
	// programs, which the kernel cannot test-run.
	Harness HarnessOptions
	// Context, when set, stops repeated runs (repeat, bench, live frames)
	// when it is done: the outcome then says how many were made.
	Context context.Context
	// Learner, when set, names the keys a run touches in hash maps too
	// large to copy cheaply, by running the program first elsewhere (the
	// emulator: emu.Learner); see learn.go.
	Learner KeyLearner
}

// Outcome is everything a run showed.
type Outcome struct {
	Program   string           // the program's name
	ProgramID ebpf.ProgramID   // its id
	Type      ebpf.ProgramType // its type
	TypeName  string           // the type as bpftool spells it ("xdp")

	// Retval is the program's return value and RetvalName its name for
	// the type (XDP_TX, TC_ACT_SHOT, "keep 20 bytes").
	Retval     uint32
	RetvalName string
	// Duration is the kernel's time for the run; Timed is false for types
	// the kernel does not time (raw_tracepoint, syscall).
	Duration time.Duration
	Timed    bool

	// DataIn is the packet sent; DataOut the packet afterwards (nil for
	// types without a packet). Meta is the XDP metadata the program put
	// before the packet. PacketChanged says whether DataOut differs.
	DataIn        []byte
	DataOut       []byte
	Meta          []byte
	PacketChanged bool
	// LayersIn and LayersOut are DataIn and DataOut decoded layer by
	// layer, from the layer the program's type sees first.
	LayersIn  []packet.Layer
	LayersOut []packet.Layer

	// CtxIn and CtxOut are the context as sent and as handed back; Ctx
	// lists the fields the program changed (e.g. mark 5 -> 42).
	CtxName string
	CtxIn   []byte
	CtxOut  []byte
	Ctx     []FieldChange
	// RawDataOut and RawCtxOut are data_out and ctx_out as the kernel
	// handed them back, before bpfsh split off XDP metadata or put an L3
	// program's Ethernet header back (the emulator's check compares
	// these).
	RawDataOut []byte `json:"-"`
	RawCtxOut  []byte `json:"-"`
	// FlowKeys are a flow dissector's results (the non-zero fields of
	// struct bpf_flow_keys).
	FlowKeys []FieldChange

	// Maps are the map entries the runs added, removed or changed: the
	// maps as they were before the first run against how they are after
	// the last (MapRuns runs: the one shown, the timed ones, the kernel's
	// repeat). A before/after comparison sees every writer: a change in a
	// map that was seen changing again without bpfsh right after the runs
	// is marked Others. MapNotes says which maps were not diffed and why,
	// and which had other writers.
	Maps     []MapChange
	MapNotes []string
	MapRuns  int
	// MapMethods say, for each large hash map, how it was diffed: by the
	// keys the emulator saw the run touch, or copied whole in the kernel
	// (and why).
	MapMethods []string
	// MapsNotRead say, map by map, which maps were not read for the diff
	// because the program cannot write them (Options.WriteCheck).
	MapsNotRead []string
	// Trace are the bpf_printk lines the run wrote; Streams what it wrote
	// to its own BPF streams (Linux 6.17+).
	Trace   []TraceLine
	Streams []StreamLine

	// Timing is set when Options.Repeat > 1 or Bench.
	Timing *Timing
	// Live is set for program types run through the live harness.
	Live *LiveOutcome
	// Notes are things the user should know about this run.
	Notes []string
}

// Run runs opts.Program once on the input and reports what it did; with
// Repeat or Bench it also times it. Errors are one line saying what the
// kernel refused and what to do.
func Run(opts Options) (*Outcome, error) {
	if opts.Program == nil {
		return nil, fmt.Errorf("no program to run")
	}
	info, err := programInfo(opts.Program, opts.ProgramID)
	if err != nil {
		return nil, fmt.Errorf("read the program's info: %w", err)
	}
	t := info.Type
	o := &Outcome{Program: info.Name, Type: t, TypeName: typeName(t)}
	o.ProgramID, _ = info.ID()
	if t == ebpf.SkSKB || t == ebpf.SkMsg {
		return runHarness(opts, info, o)
	}
	if err := checkOptions(t, &opts); err != nil {
		return nil, &OptionsError{Err: err}
	}
	cs, err := buildCtx(t, info, opts.Ctx, opts.CtxRaw, len(opts.Data))
	if err != nil {
		return nil, err
	}
	r := newRawRun(t, opts, cs)
	defer r.release()

	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	var learn *learning
	if !opts.NoMaps {
		learn = &learning{prog: o.ProgramID, learner: opts.Learner, run: &ObservedRun{Program: opts.Program, Type: t, DataIn: opts.Data, Flags: r.flags, CPU: r.cpu}}
		if cs != nil {
			learn.run.CtxIn = slices.Clone(cs.In)
		}
		switch {
		case opts.Learner == nil:
			learn.why = "no emulator was given to learn them"
		case opts.Repeat > 1 || opts.Bench || opts.LiveFrames:
			learn.why = "the emulator stands in for a single run, not repeated ones"
		}
	}
	snaps := startMapDiff(info, opts, learn)
	defer snaps.close()
	var (
		res   rawResult
		lines []TraceLine
		note  string
		sent  int
	)
	began := time.Now()
	if opts.LiveFrames && !cs.Set["ingress_ifindex"] {
		// Live frames really go up the stack (and XDP_TX really sends) on
		// the loopback of the calling thread's namespace: without an
		// interface named in the ctx, keep them in a private one.
		err = inNewNetns(func() error {
			var err error
			res, lines, note, sent, err = runLive(ctx, r, !opts.NoTrace)
			return err
		})
		o.Notes = append(o.Notes, "live frames were sent in a private network namespace; name an interface with ctx {ingress_ifindex: N} to send them there")
	} else if opts.LiveFrames {
		res, lines, note, sent, err = runLive(ctx, r, !opts.NoTrace)
	} else {
		obs := currentObserver()
		var or *ObservedRun
		if obs != nil {
			// Locked for the observer: it may pin the run to a CPU.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			or = &ObservedRun{Program: opts.Program, Type: t, DataIn: opts.Data, Flags: r.flags, CPU: r.cpu, Trace: !opts.NoTrace}
			if cs != nil {
				or.CtxIn = slices.Clone(cs.In)
			}
			obs.Before(or)
		}
		res, lines, note, err = runCaptured(r, !opts.NoTrace)
		if err == nil && learn != nil {
			var out []byte
			if r.dataOut != nil {
				out = r.dataOut[:min(int(res.dataOutLen), len(r.dataOut))]
			}
			learn.check(res.retval, out)
		}
		if obs != nil {
			or.observe(r, res, lines, err)
			obs.After(or)
		}
	}
	if err != nil {
		return nil, explainRunError(t, opts, cs, err)
	}
	// The runs' own span, the bpf(2) calls that ran the program: how long
	// markOthers watches the maps afterwards. (Not the whole run: for one
	// run the reading, tracing and decoding around it take ten times as
	// long, and a script of runs would spend most of its time watching.)
	ran := res.took
	if opts.LiveFrames {
		ran = time.Since(began)
	}
	o.collect(opts.Program, note, lines, mayWriteStreams(info, opts))
	o.fill(t, opts, cs, r, res)

	o.MapRuns = 1
	if opts.LiveFrames {
		o.MapRuns = sent
		msg := fmt.Sprintf("live frames: %d frame(s) went through the stack; the kernel reports no verdict in this mode", sent)
		if asked := max(opts.Repeat, 1); sent < asked {
			msg = fmt.Sprintf("live frames: stopped by Ctrl-C after %d of %d frames; the kernel reports no verdict in this mode", sent, asked)
		}
		o.Notes = append(o.Notes, msg)
	} else if opts.Repeat > 1 || opts.Bench {
		timed := time.Now()
		tm, err := timeRuns(ctx, t, opts, r, o)
		ran += time.Since(timed)
		if err != nil {
			return nil, explainRunError(t, opts, cs, err)
		}
		o.Timing = tm
		o.MapRuns += tm.Total()
	}
	o.Maps, o.MapNotes = snaps.diff()
	o.MapMethods = snaps.Methods()
	o.MapsNotRead = snaps.NotRead()
	o.markOthers(snaps, ran)
	return o, nil
}

// liveChunk is how many live frames one call sends: Ctrl-C stops a long
// live run between two calls.
const liveChunk = 1 << 16

// runLive sends r.repeat live frames in calls of at most liveChunk, the
// first captured for its trace lines, until ctx is done; sent is how many
// went.
func runLive(ctx context.Context, r *rawRun, trace bool) (res rawResult, lines []TraceLine, note string, sent int, err error) {
	total := int(r.repeat)
	part := *r
	part.repeat = uint32(min(total, liveChunk))
	if res, lines, note, err = runCaptured(&part, trace); err != nil {
		return res, lines, note, 0, err
	}
	sent = int(part.repeat)
	for sent < total && ctx.Err() == nil {
		part.repeat = uint32(min(total-sent, liveChunk))
		if res, err = progTestRun(&part); err != nil {
			return res, lines, note, sent, err
		}
		sent += int(part.repeat)
	}
	return res, lines, note, sent, nil
}

// newRawRun lays out the one run's buffers: output room for whatever the
// program may grow the packet to, and a context handed back where the
// kernel hands one back.
func newRawRun(t ebpf.ProgramType, opts Options, cs *ctxState) *rawRun {
	r := &rawRun{fd: opts.Program.FD(), dataIn: opts.Data, flags: opts.Flags, batchSize: opts.BatchSize}
	if opts.OnCPU {
		r.cpu = opts.CPU
		r.flags |= flagTestRunOnCPU
	}
	if cs != nil {
		// A copy: a syscall program's context is written back in place,
		// and cs.In stays the "before".
		r.ctxIn = slices.Clone(cs.In)
	}
	switch {
	case opts.LiveFrames:
		r.flags |= flagXDPLiveFrames
		r.repeat = uint32(max(opts.Repeat, 1))
		return r // live frames take no output buffers
	case t == ebpf.RawTracepoint || t == ebpf.Syscall:
		return r // no repeat, no output: syscall writes back into ctxIn
	case t == ebpf.FlowDissector:
		r.dataOut = make([]byte, 256) // the output is struct bpf_flow_keys
	case t == ebpf.SkLookup:
	default:
		r.dataOut = outBuffer(len(opts.Data) + outputSlack)
		r.pooled = true
	}
	r.repeat = 1
	if cs != nil {
		r.ctxOut = make([]byte, len(cs.In))
	}
	return r
}

// runCaptured runs r once on a thread of its own, collecting the
// bpf_printk lines that thread wrote. note says why lines could not be
// captured.
func runCaptured(r *rawRun, trace bool) (rawResult, []TraceLine, string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var (
		c    *capture
		note string
	)
	if trace {
		var err error
		if c, err = startCapture(unix.Gettid()); err != nil {
			note = "bpf_printk lines not captured: " + err.Error()
		}
	}
	began := time.Now()
	res, err := progTestRun(r)
	res.took = time.Since(began)
	if c == nil {
		return res, nil, note, err
	}
	lines, cerr := c.finish()
	if cerr != nil && note == "" {
		note = "bpf_printk lines may be incomplete: " + cerr.Error()
	}
	return res, lines, note, err
}

// collect adds what a run leaves besides the kernel's answer, the same for
// test runs and live harness runs: the trace capture's note and lines and,
// when streams is set, what the program wrote to its BPF streams. (The map
// changes come last, after every run.)
func (o *Outcome) collect(prog *ebpf.Program, note string, lines []TraceLine, streams bool) {
	if note != "" {
		o.Notes = append(o.Notes, note)
	}
	o.Trace = lines
	if streams {
		o.Streams, _ = ReadProgStreams(prog)
	}
}

// fill turns the kernel's answer into the outcome.
func (o *Outcome) fill(t ebpf.ProgramType, opts Options, cs *ctxState, r *rawRun, res rawResult) {
	o.Retval, o.RetvalName = res.retval, RetvalName(t, res.retval)
	o.Duration = time.Duration(res.duration)
	o.Timed = t != ebpf.RawTracepoint && t != ebpf.Syscall
	o.DataIn = opts.Data
	var ctxOut []byte
	switch {
	case t == ebpf.Syscall && cs != nil:
		ctxOut = r.ctxIn // the kernel writes a syscall program's context back in place
	case r.ctxOut != nil:
		ctxOut = r.ctxOut[:min(int(res.ctxOutLen), len(r.ctxOut))]
	}
	if cs != nil {
		o.CtxName, o.CtxIn, o.CtxOut = cs.Name, cs.In, ctxOut
		o.Ctx = cs.changes(ctxOut)
	}
	o.RawCtxOut = slices.Clone(ctxOut)
	if r.dataOut == nil {
		return
	}
	// A copy: the buffer goes back to outBuffers when Run returns.
	out := slices.Clone(r.dataOut[:min(int(res.dataOutLen), len(r.dataOut))])
	o.RawDataOut = slices.Clone(out)
	switch {
	case t == ebpf.FlowDissector:
		if st, err := kernelStruct("bpf_flow_keys"); err == nil {
			o.FlowKeys = nonZeroFields(st, out)
		}
		return
	case t == ebpf.XDP:
		// data_out starts at data_meta; xdp_md.data in the context handed
		// back is how many bytes of metadata come first.
		if f, ok := cs.field("data"); ok && len(ctxOut) >= f.Offset+4 {
			meta, _ := getInt(ctxOut[f.Offset:f.Offset+4], false, false)
			if int(meta) <= len(out) {
				o.Meta, out = out[:meta], out[meta:]
			}
		}
	case isSKBType(t) && !isL2Type(t) && len(out) >= ethHeaderLen && len(opts.Data) >= ethHeaderLen:
		// These programs never see the Ethernet header; the kernel hands
		// the packet back with it zeroed. Put the input's back so that the
		// output compares with the input.
		out = slices.Concat(opts.Data[:ethHeaderLen], out[ethHeaderLen:])
	}
	o.DataOut = out
	o.PacketChanged = !bytes.Equal(out, opts.Data)
	first := FirstLayer(o.Type, opts.Data)
	o.LayersIn = decodeInput(opts.Data, first)
	o.LayersOut = o.LayersIn // most runs hand the packet back as it came: decode it once
	if o.PacketChanged {
		o.LayersOut = packet.Decode(out, first)
	}
}

// inputLayers keeps the decoded layers of the last inputs: a suite or a
// script of runs sends the same few frames again and again, and decoding
// one costs more than running it. Decoded layers are only read.
var inputLayers struct {
	sync.Mutex
	m map[string][]packet.Layer
}

// decodeInput is packet.Decode(data, first), once per input.
func decodeInput(data []byte, first string) []packet.Layer {
	key := first + "\x00" + string(data)
	inputLayers.Lock()
	l, ok := inputLayers.m[key]
	inputLayers.Unlock()
	if ok {
		return l
	}
	l = packet.Decode(data, first)
	inputLayers.Lock()
	if inputLayers.m == nil || len(inputLayers.m) >= 64 {
		inputLayers.m = map[string][]packet.Layer{}
	}
	inputLayers.m[key] = l
	inputLayers.Unlock()
	return l
}

// outBuffers keeps output buffers between runs: a run's output room is the
// input plus outputSlack, ~8 KiB to allocate and clear for a 46-byte
// packet, and a script of runs needs one at a time. What the kernel wrote
// is copied out of it (fill); bytes past that are never read.
var outBuffers sync.Pool

// outBuffer is an output buffer of n bytes, from outBuffers when one is
// large enough.
func outBuffer(n int) []byte {
	if b, ok := outBuffers.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

// release gives r's output buffer back to outBuffers; r must not be used
// after.
func (r *rawRun) release() {
	if r.pooled && r.dataOut != nil {
		b := r.dataOut[:0]
		outBuffers.Put(&b)
	}
	r.dataOut = nil
}
