// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"strings"
	"testing"
)

// A program that rewrites its packet: with the kernel's repeat it sees
// its own output and answers differently; fresh copies give every run the
// verdict a single run gives.
func TestTimingFreshCopiesOfARewritingProgram(t *testing.T) {
	p := progs(t)
	in := udpFrame("reflect me")
	o := mustRun(t, Options{Program: p.XdpReflect, Data: in, Repeat: 50, Bench: true})
	tm := o.Timing
	if tm == nil {
		t.Fatal("no timing for repeat 50")
	}
	if tm.Runs != 50 || len(tm.Retvals) != 1 || tm.Retvals[0].Name != o.RetvalName || tm.Retvals[0].Count != 50 {
		t.Errorf("retvals %+v over %d runs, want XDP_TX 50 times like the single run (%s)", tm.Retvals, tm.Runs, o.RetvalName)
	}
	if !tm.Rewrote || tm.Clock != "kernel" {
		t.Errorf("rewrote %v clock %q", tm.Rewrote, tm.Clock)
	}
	if tm.KernelRepeat != 50 || tm.KernelRetval != "XDP_DROP" {
		t.Errorf("kernel repeat %d returned %s; want the rewritten path's XDP_DROP", tm.KernelRepeat, tm.KernelRetval)
	}
	warned := strings.Join(tm.Warnings, "\n")
	if !strings.Contains(warned, "the program changed its packet; bpftool's repeat 50 would time the rewritten path") ||
		!strings.Contains(warned, "its last run returned XDP_DROP, not XDP_TX") {
		t.Errorf("warnings %q", warned)
	}
	if tm.Min > tm.Median || tm.Median > tm.P99 {
		t.Errorf("min %v median %v p99 %v out of order", tm.Min, tm.Median, tm.P99)
	}
	if tm.PerRun() != max(tm.Median-tm.Overhead, 0) {
		t.Errorf("per run %v: a rewriting program's figure is the fresh median less the overhead", tm.PerRun())
	}
}

func TestTimingOfAProgramThatLeavesItsInputAlone(t *testing.T) {
	p := progs(t)
	o := mustRun(t, Options{Program: p.XdpPass, Data: udpFrame("pass"), Repeat: 20, Bench: true})
	tm := o.Timing
	if tm.Rewrote || len(tm.Warnings) != 0 {
		t.Errorf("rewrote %v, warnings %q", tm.Rewrote, tm.Warnings)
	}
	if len(tm.Retvals) != 1 || tm.Retvals[0].Name != "XDP_PASS" || tm.Retvals[0].Count != 20 {
		t.Errorf("retvals %+v", tm.Retvals)
	}
	if tm.KernelRetval != "XDP_PASS" || tm.KernelRepeat != 20 || tm.PerRun() != tm.KernelAvg {
		t.Errorf("kernel repeat %d: %s, per run %v vs kernel average %v", tm.KernelRepeat, tm.KernelRetval, tm.PerRun(), tm.KernelAvg)
	}
	// Without repeat there is no timing, and bench alone uses the default repeat.
	if o := mustRun(t, Options{Program: p.XdpPass, Data: udpFrame("pass")}); o.Timing != nil {
		t.Error("timing without repeat")
	}
	if o := mustRun(t, Options{Program: p.XdpPass, Data: udpFrame("pass"), Bench: true}); o.Timing.KernelRepeat != defaultBenchRepeat {
		t.Errorf("bench repeat %d", o.Timing.KernelRepeat)
	}
}

func TestTimingContextRewrite(t *testing.T) {
	p := progs(t)
	// tc_mark turns mark 5 into 42: run again on its own context, it
	// would shoot the packet.
	o := mustRun(t, Options{Program: p.TcMark, Data: udpFrame("tc"), Ctx: []string{"{mark: 5}"}, Repeat: 10, Bench: true})
	if !o.Timing.Rewrote || o.Timing.Retvals[0].Name != "TC_ACT_OK" || o.Timing.Retvals[0].Count != 10 {
		t.Errorf("timing %+v", o.Timing)
	}
	if o.Timing.KernelRetval != "TC_ACT_SHOT" {
		t.Errorf("kernel repeat returned %s; want TC_ACT_SHOT (mark 42 on the second run)", o.Timing.KernelRetval)
	}
}
