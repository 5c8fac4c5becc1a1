// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

// TraceOptions selects what Trace streams.
type TraceOptions struct {
	// Global reads the kernel's global trace_pipe (every enabled event,
	// shared with any other reader) instead of a private instance that
	// receives only bpf_printk lines and that nobody else reads.
	Global bool
	// Grep keeps only lines that match (the whole line: task, pid, text).
	Grep *regexp.Regexp
	// For stops the stream after this long; 0 runs until ctx ends.
	For time.Duration
	// Started, when set, is called once the lines are being collected:
	// a bpf_printk line written after it returns is seen. (Making a
	// private instance takes a while; lines written before are lost.)
	Started func()
}

var traceSeq atomic.Int64

// Trace streams trace lines to emit as they come until ctx is done, For
// has passed, or emit returns an error (which Trace returns). Ending
// through ctx or For is not an error.
//
// By default it reads a private ftrace instance made for this call (and
// removed after) with the bpf_trace_printk event enabled: it sees every
// bpf_printk line on the machine and takes none from other readers of
// trace_pipe. With Global it reads /sys/kernel/tracing/trace_pipe itself,
// where each line goes to only one reader: see TracePipeReaders.
func Trace(ctx context.Context, opts TraceOptions, emit func(TraceLine) error) error {
	var fd int
	if opts.Global {
		if err := bpf.EnsureTraceFS(); err != nil {
			return err
		}
		path := filepath.Join(bpf.TraceFSPath, "trace_pipe")
		f, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		defer unix.Close(f)
		fd = f
	} else {
		name := fmt.Sprintf("%s%d-trace-%d", instancePrefix, os.Getpid(), traceSeq.Add(1))
		in, err := newInstance(name)
		if err != nil {
			return err
		}
		defer in.close()
		fd = in.fd
	}
	if opts.Started != nil {
		opts.Started()
	}
	if opts.For > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.For)
		defer cancel()
	}
	buf := make([]byte, 64*1024)
	var partial []byte
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Wake at least every 100 ms to notice ctx (Ctrl-C, the time limit).
		wait := 100 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, max(time.Until(dl), time.Millisecond))
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(wait.Milliseconds())); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for trace lines: %w", err)
		}
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || n <= 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("read trace_pipe: %w", err)
		}
		data := append(partial, buf[:n]...)
		partial = nil
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				partial = append([]byte(nil), data...)
				break
			}
			raw := string(data[:i])
			data = data[i+1:]
			if opts.Grep != nil && !opts.Grep.MatchString(raw) {
				continue
			}
			line, _ := parseTraceLine(raw)
			if err := emit(line); err != nil {
				return err
			}
		}
	}
}

// Reader is a process that has a trace_pipe open.
type Reader struct {
	PID  int
	Comm string
}

func (r Reader) String() string { return fmt.Sprintf("%s (pid %d)", r.Comm, r.PID) }

// TracePipeReaders lists the other processes that hold the global
// trace_pipe open. Reading trace_pipe consumes what is read, so while one
// of them reads, some lines never reach this process.
func TracePipeReaders() []Reader {
	var out []Reader
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(p, "fd", fd.Name()))
			if err != nil || !isGlobalTracePipe(target) {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(p, "comm"))
			out = append(out, Reader{PID: pid, Comm: strings.TrimSpace(string(comm))})
			break
		}
	}
	return out
}

// isGlobalTracePipe reports whether path is the top-level trace_pipe (or
// one of its per-CPU pipes), under either tracefs mount point.
func isGlobalTracePipe(path string) bool {
	for _, root := range []string{bpf.TraceFSPath, "/sys/kernel/debug/tracing"} {
		rel, ok := strings.CutPrefix(path, root+"/")
		if !ok {
			continue
		}
		if rel == "trace_pipe" || (strings.HasPrefix(rel, "per_cpu/") && (strings.HasSuffix(rel, "/trace_pipe") || strings.HasSuffix(rel, "/trace_pipe_raw"))) {
			return true
		}
	}
	return false
}
