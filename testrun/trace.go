// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

// How bpfsh picks out the bpf_printk lines of one run
//
// bpf_printk writes through the bpf_trace/bpf_trace_printk trace event,
// stamped with the task that ran the program: for BPF_PROG_TEST_RUN, the
// thread that made the bpf(2) call. The global trace_pipe is a poor source:
// reading it consumes lines, so a second reader (another bpfsh, a `cat
// trace_pipe`, another test) steals some of them, and bpfsh would steal
// theirs. Instead each bpfsh process makes its own ftrace instance
// (/sys/kernel/tracing/instances/bpfsh-PID) with only that event enabled.
// The instance has its own buffer, which nobody else reads; the global
// buffer still gets every line, so other readers lose nothing.
//
// A run locks its goroutine to an OS thread, drains the instance (lines
// already there belong to earlier work), registers the thread id, runs,
// and drains again without blocking. The kernel commits the event before
// bpf(2) returns, so the second drain sees every line the run wrote; a
// line is kept when its pid is the run's thread id. Concurrent runs in one
// process share the instance: whoever drains hands each line to the run
// registered under its thread id, so each run gets exactly its own lines.
// Making an instance costs ~5 ms and removing one ~50 ms (the kernel waits
// for RCU grace periods), more than a script of a thousand runs takes. So
// runs use a shared instance, instances/bpfsh-shared-N: a process takes the
// first one whose directory it can flock (making it if there is none),
// keeps the lock while it lives, and on exit disables the event and leaves
// the instance for the next bpfsh; the kernel drops the lock if the
// process dies. `rmdir /sys/kernel/tracing/instances/bpfsh-shared-*`
// removes them. (Instances of older bpfsh versions, bpfsh-PID, are still
// removed once their process is gone.)

// TraceLine is one line of the trace buffer.
type TraceLine struct {
	Task  string `json:"task"`  // the comm of the task that wrote it
	PID   int    `json:"pid"`   // its thread id
	CPU   int    `json:"cpu"`   // the CPU it ran on
	Time  string `json:"time"`  // seconds since boot, as the kernel prints it
	Event string `json:"event"` // bpf_trace_printk for bpf_printk lines
	Text  string `json:"text"`  // what the program printed
}

// String is the line as trace_pipe shows it, shortened.
func (l TraceLine) String() string {
	return fmt.Sprintf("%s-%d [%03d] %s: %s", l.Task, l.PID, l.CPU, l.Time, l.Text)
}

// traceLineRE matches "  comm-123  [001] b..11  926.354018: event: text",
// with the optional "(tgid)" column and without the irq-info flags.
var traceLineRE = regexp.MustCompile(`^\s*(.*)-(\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(\d+)\]\s+(?:\S+\s+)?(\d+\.\d+):\s+([\w:]+):\s?(.*)$`)

// parseTraceLine parses one trace_pipe line; ok is false for lines that
// are not events (e.g. "CPU:1 [LOST 12 EVENTS]").
func parseTraceLine(s string) (TraceLine, bool) {
	s = strings.TrimRight(s, "\n")
	if l, ok := parseTraceLineFast(s); ok {
		return l, true
	}
	m := traceLineRE.FindStringSubmatch(s)
	if m == nil {
		return TraceLine{Text: strings.TrimSpace(s)}, false
	}
	pid, _ := strconv.Atoi(m[2])
	cpu, _ := strconv.Atoi(m[3])
	return TraceLine{Task: strings.TrimSpace(m[1]), PID: pid, CPU: cpu, Time: m[4], Event: m[5], Text: m[6]}, true
}

// parseTraceLineFast parses the lines the kernel writes as traceLineRE
// does, without the regular expression (whose backtracking cost more than
// the run it reports); ok is false for anything it is not sure of, which
// the regular expression then reads.
func parseTraceLineFast(s string) (TraceLine, bool) {
	digits := func(x string) bool {
		if x == "" {
			return false
		}
		for i := 0; i < len(x); i++ {
			if x[i] < '0' || x[i] > '9' {
				return false
			}
		}
		return true
	}
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == '\v' }
	// The CPU column is the first " [digits]"; what comes before it is
	// "comm-pid" and perhaps "(tgid)".
	i := strings.Index(s, " [")
	if i < 0 {
		return TraceLine{}, false
	}
	j := strings.IndexByte(s[i:], ']')
	if j < 0 || !digits(s[i+2:i+j]) {
		return TraceLine{}, false
	}
	cpu, _ := strconv.Atoi(s[i+2 : i+j])
	head := strings.TrimRight(s[:i], " \t")
	if strings.HasSuffix(head, ")") {
		k := strings.LastIndexByte(head, '(')
		if k < 0 {
			return TraceLine{}, false
		}
		tgid := strings.TrimSpace(head[k+1 : len(head)-1])
		if !digits(tgid) && strings.Trim(tgid, "-") != "" || tgid == "" || k == 0 || !space(head[k-1]) {
			return TraceLine{}, false
		}
		head = strings.TrimRight(head[:k], " \t")
	}
	d := strings.LastIndexByte(head, '-')
	if d < 0 || !digits(head[d+1:]) || strings.ContainsAny(head[d+1:], " \t") {
		return TraceLine{}, false
	}
	pid, _ := strconv.Atoi(head[d+1:])
	task := strings.TrimSpace(head[:d])
	// "] [flags] 926.354018: event: text"
	rest := s[i+j+1:]
	if rest == "" || !space(rest[0]) {
		return TraceLine{}, false
	}
	rest = strings.TrimLeft(rest, " \t")
	tok, after, _ := strings.Cut(rest, " ")
	if !strings.HasSuffix(tok, ":") {
		// A flags column first.
		rest = strings.TrimLeft(after, " \t")
		tok, after, _ = strings.Cut(rest, " ")
	}
	ts, ok := strings.CutSuffix(tok, ":")
	whole, frac, dot := strings.Cut(ts, ".")
	if !ok || !dot || !digits(whole) || !digits(frac) || after == "" {
		return TraceLine{}, false
	}
	rest = strings.TrimLeft(" "+after, " \t")
	// "event: text": the longest run of word characters and colons, up
	// to its last colon, is the event.
	n := 0
	for n < len(rest) {
		c := rest[n]
		if c == ':' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			n++
			continue
		}
		break
	}
	colon := strings.LastIndexByte(rest[:n], ':')
	if colon < 1 {
		return TraceLine{}, false
	}
	event, text := rest[:colon], rest[colon+1:]
	if text != "" && space(text[0]) {
		text = text[1:]
	}
	if strings.ContainsAny(s, "\t\r\f\v") {
		return TraceLine{}, false // whitespace the regular expression treats its own way
	}
	return TraceLine{Task: task, PID: pid, CPU: cpu, Time: ts, Event: event, Text: text}, true
}

// instance is a private ftrace instance with bpf_printk's event enabled.
type instance struct {
	dir string
	fd  int // its trace_pipe, non-blocking
	// lock, for a shared instance, is its directory, flocked while this
	// process uses it (-1 for a private one).
	lock int
}

const (
	instancePrefix = "bpfsh-"
	// sharedPrefix names the instances runs share across processes, one
	// process at a time ("shared" is no pid: removeStaleInstances leaves
	// them alone).
	sharedPrefix = instancePrefix + "shared-"
	maxShared    = 64
)

// newInstance makes instances/NAME, enables the bpf_trace_printk event in
// it and opens its trace_pipe without blocking.
func newInstance(name string) (*instance, error) {
	if err := bpf.EnsureTraceFS(); err != nil {
		return nil, err
	}
	removeStaleInstances()
	dir := filepath.Join(bpf.TraceFSPath, "instances", name)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("make ftrace instance %s: %w", dir, err)
	}
	in := &instance{dir: dir, fd: -1, lock: -1}
	// A modest buffer: it only holds lines between two drains.
	_ = os.WriteFile(filepath.Join(dir, "buffer_size_kb"), []byte("512"), 0)
	// No set_event_pid filter, though it would drop other processes'
	// lines in the kernel: it hooks sched_switch and sched_wakeup for
	// the whole machine while bpfsh runs, and a 6.12 guest of the kernel
	// matrix died of it (an int3 left in try_to_wake_up by the patching).
	// Other threads' lines are skipped by their pid before the parse.
	if err := in.enable(); err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

// linePID is the thread id of a trace_pipe line ("  comm-123  [001] ...")
// read without the regular expression, or -1: lines of threads nobody
// waits for are skipped before the full parse.
func linePID(line []byte) int {
	i := bytes.Index(line, []byte(" ["))
	for i > 0 && line[i-1] == ' ' {
		i--
	}
	if i <= 0 {
		return -1
	}
	if line[i-1] == ')' { // the "(tgid)" column: the pid comes before it
		j := bytes.LastIndexByte(line[:i], '(')
		if j <= 0 {
			return -1
		}
		for i = j; i > 0 && line[i-1] == ' '; i-- {
		}
	}
	j := bytes.LastIndexByte(line[:i], '-')
	if j < 0 {
		return -1
	}
	pid, err := strconv.Atoi(string(line[j+1 : i]))
	if err != nil {
		return -1
	}
	return pid
}

// shortRead is a read of trace_pipe that left it empty: the kernel fills
// a read with lines until it runs out of them or of its buffer (two pages
// less a header, and a line is at most about 1 KiB), so a read this short
// ran out of lines. Lines written after it wait for the next drain.
const shortRead = 2048

// read returns what the instance's trace_pipe holds now, without waiting.
func (in *instance) read(buf []byte) ([]byte, error) {
	var out []byte
	for {
		n, err := unix.Read(in.fd, buf)
		if n > 0 {
			out = append(out, buf[:n]...)
		}
		switch {
		case errors.Is(err, unix.EAGAIN), err == nil && n <= 0, err == nil && n < shortRead:
			return out, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return out, fmt.Errorf("read %s/trace_pipe: %w", in.dir, err)
		}
	}
}

// close closes the pipe and removes the instance; a shared one is left
// for the next process, its event disabled and its lock released.
func (in *instance) close() error {
	if in.fd >= 0 {
		unix.Close(in.fd)
		in.fd = -1
	}
	if in.lock >= 0 {
		err := os.WriteFile(filepath.Join(in.dir, "events", "bpf_trace", "bpf_trace_printk", "enable"), []byte("0"), 0)
		unix.Close(in.lock)
		in.lock = -1
		if err != nil {
			return fmt.Errorf("disable bpf_trace_printk in %s: %w", in.dir, err)
		}
		return nil
	}
	return os.Remove(in.dir)
}

// sharedInstance takes the first shared instance no other process holds,
// making one if all are taken, and enables bpf_printk's event in it.
func sharedInstance() (*instance, error) {
	if err := bpf.EnsureTraceFS(); err != nil {
		return nil, err
	}
	var lastErr error
	for i := range maxShared {
		dir := filepath.Join(bpf.TraceFSPath, "instances", sharedPrefix+strconv.Itoa(i))
		lock, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		made := false
		if errors.Is(err, unix.ENOENT) {
			removeStaleInstances()
			if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("make ftrace instance %s: %w", dir, err)
			}
			made = true
			lock, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			lastErr = fmt.Errorf("open ftrace instance %s: %w", dir, err)
			continue
		}
		if err := unix.Flock(lock, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(lock) // another bpfsh uses it
			continue
		}
		in := &instance{dir: dir, fd: -1, lock: lock}
		if made {
			// A modest buffer: it only holds lines between two drains.
			_ = os.WriteFile(filepath.Join(dir, "buffer_size_kb"), []byte("512"), 0)
		}
		if err := in.enable(); err != nil {
			in.close()
			return nil, err
		}
		return in, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("all %d shared ftrace instances (%s%s*) are in use", maxShared, filepath.Join(bpf.TraceFSPath, "instances")+"/", sharedPrefix)
	}
	return nil, lastErr
}

// enable enables bpf_trace_printk in the instance and opens its
// trace_pipe without blocking.
func (in *instance) enable() error {
	if err := os.WriteFile(filepath.Join(in.dir, "events", "bpf_trace", "bpf_trace_printk", "enable"), []byte("1"), 0); err != nil {
		return fmt.Errorf("enable bpf_trace_printk in %s: %w", in.dir, err)
	}
	fd, err := unix.Open(filepath.Join(in.dir, "trace_pipe"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s/trace_pipe: %w", in.dir, err)
	}
	in.fd = fd
	return nil
}

// removeStaleInstances removes instances bpfsh processes left behind when
// they died: bpfsh-PID[-...] whose PID no longer runs.
func removeStaleInstances() {
	dirs, _ := filepath.Glob(filepath.Join(bpf.TraceFSPath, "instances", instancePrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), instancePrefix)
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			os.Remove(d)
		}
	}
}

// tracer hands the lines of the process's instance to the runs waiting
// for them, by thread id.
type tracer struct {
	mu      sync.Mutex
	in      *instance
	waiting map[int][]TraceLine
	buf     []byte
	partial []byte
}

var (
	tracerMu  sync.Mutex
	theTracer *tracer
)

// getTracer returns the process's tracer, making its instance on first use.
func getTracer() (*tracer, error) {
	tracerMu.Lock()
	defer tracerMu.Unlock()
	if theTracer != nil {
		return theTracer, nil
	}
	in, err := sharedInstance()
	if err != nil {
		return nil, err
	}
	theTracer = &tracer{in: in, waiting: map[int][]TraceLine{}, buf: make([]byte, 64*1024)}
	return theTracer, nil
}

// CloseTrace gives back the ftrace instance bpfsh took for capturing the
// bpf_printk lines of runs (its event disabled, left for the next bpfsh).
// The shell calls it on exit (and tests from TestMain); a later run takes
// one again.
func CloseTrace() error {
	tracerMu.Lock()
	defer tracerMu.Unlock()
	if theTracer == nil {
		return nil
	}
	theTracer.mu.Lock()
	defer theTracer.mu.Unlock()
	err := theTracer.in.close()
	theTracer = nil
	return err
}

// drainLocked reads what the instance holds and hands each line to the run
// waiting under its pid; lines nobody waits for are dropped.
func (t *tracer) drainLocked() error {
	data, err := t.in.read(t.buf)
	if len(t.partial) > 0 {
		data = append(t.partial, data...)
		t.partial = nil
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			t.partial = append([]byte(nil), data...)
			break
		}
		raw := data[:i]
		data = data[i+1:]
		if pid := linePID(raw); pid >= 0 {
			if _, waiting := t.waiting[pid]; !waiting {
				continue
			}
		}
		line, ok := parseTraceLine(string(raw))
		if !ok {
			continue
		}
		if lines, waiting := t.waiting[line.PID]; waiting {
			t.waiting[line.PID] = append(lines, line)
		}
	}
	return err
}

// capture collects the lines one thread writes between start and finish.
type capture struct {
	t   *tracer
	tid int
}

// startCapture begins collecting the lines of thread tid; the caller must
// hold its goroutine on that thread (runtime.LockOSThread) until finish.
func startCapture(tid int) (*capture, error) {
	t, err := getTracer()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.drainLocked(); err != nil {
		return nil, err
	}
	t.waiting[tid] = []TraceLine{}
	return &capture{t: t, tid: tid}, nil
}

// finish returns the lines the thread wrote since start.
func (c *capture) finish() ([]TraceLine, error) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	err := c.t.drainLocked()
	lines := c.t.waiting[c.tid]
	delete(c.t.waiting, c.tid)
	return lines, err
}
