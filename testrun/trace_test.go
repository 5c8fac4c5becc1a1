// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
)

func TestParseTraceLine(t *testing.T) {
	cases := []struct {
		in   string
		want TraceLine
	}{
		{"        exp.test-26655   [000] b..11   926.354018: bpf_trace_printk: xdp_count proto=0 len=64",
			TraceLine{Task: "exp.test", PID: 26655, CPU: 0, Time: "926.354018", Event: "bpf_trace_printk", Text: "xdp_count proto=0 len=64"}},
		{" kworker/u4:1-a-123 (    123) [001] d.h2. 5.000001: bpf_trace_printk: x: y",
			TraceLine{Task: "kworker/u4:1-a", PID: 123, CPU: 1, Time: "5.000001", Event: "bpf_trace_printk", Text: "x: y"}},
		{"           <...>-30165 [000] b..11  2075.549665: bpf_trace_printk: tc_mark mark=7",
			TraceLine{Task: "<...>", PID: 30165, CPU: 0, Time: "2075.549665", Event: "bpf_trace_printk", Text: "tc_mark mark=7"}},
		{"<idle>-0 [003] 12.5: sched_switch: prev=a", TraceLine{Task: "<idle>", PID: 0, CPU: 3, Time: "12.5", Event: "sched_switch", Text: "prev=a"}},
	}
	for _, c := range cases {
		got, ok := parseTraceLine(c.in)
		if !ok || got != c.want {
			t.Errorf("parse %q = %+v, %v; want %+v", c.in, got, ok, c.want)
		}
		if pid := linePID([]byte(c.in)); pid != c.want.PID {
			t.Errorf("linePID(%q) = %d, want %d", c.in, pid, c.want.PID)
		}
	}
	if _, ok := parseTraceLine("CPU:1 [LOST 12 EVENTS]"); ok {
		t.Error("a LOST line parsed as an event")
	}
}

// Two goroutines run two printing programs at the same time; each run
// gets exactly its own lines.
func TestTraceAttributedToTheRun(t *testing.T) {
	p := progs(t)
	const runs = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*runs)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range runs {
			o, err := Run(Options{Program: p.XdpCount, Data: udpFrame(strings.Repeat("x", i)), NoMaps: true})
			if err != nil {
				errs <- err
				return
			}
			want := fmt.Sprintf("xdp_count proto=17 len=%d", 42+i)
			if len(o.Trace) != 1 || o.Trace[0].Text != want || o.Trace[0].Event != "bpf_trace_printk" {
				errs <- fmt.Errorf("xdp run %d: trace %v, want just %q", i, o.Trace, want)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range runs {
			o, err := Run(Options{Program: p.TcMark, Data: udpFrame("tc"), Ctx: []string{fmt.Sprintf("{mark: %d}", 1000+i)}, NoMaps: true})
			if err != nil {
				errs <- err
				return
			}
			want := fmt.Sprintf("tc_mark mark=%d", 1000+i)
			if len(o.Trace) != 1 || o.Trace[0].Text != want {
				errs <- fmt.Errorf("tc run %d: trace %v, want just %q", i, o.Trace, want)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// NoTrace leaves the lines alone.
	if o := mustRun(t, Options{Program: p.XdpCount, Data: udpFrame("quiet"), NoTrace: true}); o.Trace != nil {
		t.Errorf("NoTrace: %v", o.Trace)
	}
}

// Another reader of the global trace_pipe takes nothing from a run.
func TestTraceWithAnotherReader(t *testing.T) {
	p := progs(t)
	if err := bpf.EnsureTraceFS(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	cat := exec.Command("cat", filepath.Join(bpf.TraceFSPath, "trace_pipe"))
	cat.Stdout = new(strings.Builder)
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cat.Process.Kill(); cat.Wait() }()
	deadline := time.Now().Add(2 * time.Second)
	for {
		found := false
		for _, r := range TracePipeReaders() {
			found = found || r.PID == cat.Process.Pid
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TracePipeReaders does not list a cat of trace_pipe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 20 {
		o := mustRun(t, Options{Program: p.XdpCount, Data: udpFrame("r"), NoMaps: true})
		if len(o.Trace) != 1 {
			t.Fatalf("run %d with another reader: trace %v", i, o.Trace)
		}
	}
}

// Every bpf_printk on the machine reaches a trace stream (other tests run
// at the same time), so the lines looked for carry a mark unique to this
// process.
func TestTraceStream(t *testing.T) {
	p := progs(t)
	mark := fmt.Sprint(2_000_000 + os.Getpid())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			Run(Options{Program: p.XdpCount, Data: udpFrame("stream"), NoMaps: true, NoTrace: true})
			Run(Options{Program: p.TcMark, Data: udpFrame("stream"), Ctx: []string{"{mark: " + mark + "}"}, NoMaps: true, NoTrace: true})
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	var lines []TraceLine
	start := time.Now()
	err := Trace(context.Background(), TraceOptions{Grep: regexp.MustCompile(`tc_mark mark=` + mark + `$`), For: time.Second}, func(l TraceLine) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("for 1s took %v", took)
	}
	if len(lines) == 0 {
		t.Fatal("no lines in a second of printing")
	}
	for _, l := range lines {
		if l.Text != "tc_mark mark="+mark {
			t.Errorf("line %+v does not match the filter", l)
		}
	}
	// The private instance is gone afterwards.
	if m, _ := filepath.Glob(filepath.Join(bpf.TraceFSPath, "instances", fmt.Sprintf("bpfsh-%d-trace-*", os.Getpid()))); len(m) != 0 {
		t.Errorf("instances left behind: %v", m)
	}

	// Cancelling ends the stream promptly, without an error.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start = time.Now()
	if err := Trace(ctx, TraceOptions{}, func(TraceLine) error { return nil }); err != nil {
		t.Errorf("cancelled trace: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cancel took %v", took)
	}
	// An error from emit ends it with that error.
	boom := fmt.Errorf("boom")
	if err := Trace(context.Background(), TraceOptions{For: 5 * time.Second}, func(TraceLine) error { return boom }); err != boom {
		t.Errorf("emit error: %v", err)
	}
}

func TestGlobalTraceStream(t *testing.T) {
	p := progs(t)
	mark := fmt.Sprint(4_000_000 + os.Getpid())
	if readers := TracePipeReaders(); len(readers) > 0 {
		t.Skipf("skipped: %v read the global trace_pipe and would take lines from this test", readers)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			time.Sleep(20 * time.Millisecond)
			Run(Options{Program: p.TcMark, Data: udpFrame("global"), Ctx: []string{"{mark: " + mark + "}"}, NoMaps: true, NoTrace: true})
		}
	}()
	var n int
	err := Trace(context.Background(), TraceOptions{Global: true, Grep: regexp.MustCompile(`tc_mark mark=` + mark + `$`), For: 500 * time.Millisecond}, func(l TraceLine) error {
		n++
		return nil
	})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skip("skipped: another reader of the global trace_pipe took every line")
	}
}

// The parser without the regular expression reads every line as the
// regular expression does, or leaves it to it.
func TestParseTraceLineFastSameAsRE(t *testing.T) {
	lines := []string{
		"        exp.test-26655   [000] b..11   926.354018: bpf_trace_printk: xdp_count proto=0 len=64",
		" kworker/u4:1-a-123 (    123) [001] d.h2. 5.000001: bpf_trace_printk: x: y",
		"           <...>-30165 [000] b..11  2075.549665: bpf_trace_printk: tc_mark mark=7",
		"<idle>-0 [003] 12.5: sched_switch: prev=a",
		"  a b-7 (-------) [002] .... 1.2: ev:  two spaces",
		"  x-1 [000] .... 1.2: ev:",
		"  x-1 [000] .... 1.2: a:b:c d",
		"  x-1 [000] .... 1.2: ev:text",
		"  x [y]-1 [000] .... 1.2: ev: t",
		"  x-1 [000] f1 f2 1.2: ev: t",
		"  x-1 [000]1.2: ev: t",
		"  x-1 [000] 1.2:ev: t",
		"  x-1 [0a0] 1.2: ev: t",
		"  x-1 [000] .... 1.: ev: t",
		"  x-1 [000] ....\t1.2: ev: t",
		"CPU:1 [LOST 12 EVENTS]",
		"  x-1 [000] .... 1.2: : t",
		"  x-1 [000] .... 1.2: ev: t\n",
		"x-1 (12) [000] 1.2: ev: t",
		"x-1(12) [000] 1.2: ev: t",
		"  -1 [000] .... 1.2: ev: t",
	}
	for _, s := range lines[:4] {
		if _, ok := parseTraceLineFast(s); !ok {
			t.Errorf("%q: the kernel's usual line left to the regular expression", s)
		}
	}
	for _, s := range lines {
		re := func() (TraceLine, bool) {
			m := traceLineRE.FindStringSubmatch(strings.TrimRight(s, "\n"))
			if m == nil {
				return TraceLine{Text: strings.TrimSpace(s)}, false
			}
			pid, _ := strconv.Atoi(m[2])
			cpu, _ := strconv.Atoi(m[3])
			return TraceLine{Task: strings.TrimSpace(m[1]), PID: pid, CPU: cpu, Time: m[4], Event: m[5], Text: m[6]}, true
		}
		want, wok := re()
		if got, ok := parseTraceLineFast(strings.TrimRight(s, "\n")); ok && (!wok || got != want) {
			t.Errorf("%q: fast %+v, regular expression %+v (%v)", s, got, want, wok)
		}
		if got, ok := parseTraceLine(s); ok != wok || got != want {
			t.Errorf("%q: %+v %v, want %+v %v", s, got, ok, want, wok)
		}
	}
}
