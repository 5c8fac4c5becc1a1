// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

//go:generate go tool bpf2go -cc clang -target bpfel -no-global-types streamProbe streamprobe.bpf.c -- -I../bpf/include -O2 -g -Wall

// BPF program streams (Linux 6.17+): each program has its own stdout and
// stderr, written by the bpf_stream_vprintk kfunc (bpf_stream_printk in
// libbpf) and by the kernel itself when the program faults (e.g. a
// may_goto loop that runs out, a bad arena access). BPF_PROG_STREAM_READ_BY_FD
// reads and consumes them. Unlike trace_pipe the output belongs to one
// program, so nothing else's lines get mixed in.

// Stream ids (enum bpf_stream_id).
const (
	streamStdout = 1
	streamStderr = 2
)

// StreamLine is a line a program wrote to one of its BPF streams.
type StreamLine struct {
	Stream string `json:"stream"` // "stdout" or "stderr"
	Text   string `json:"text"`
}

// streamReadAttr is the prog_stream_read member of union bpf_attr.
type streamReadAttr struct {
	buf    uint64
	bufLen uint32
	stream uint32
	progFD uint32
	_      uint32
}

// streamBufs holds read buffers: a run reads two streams, mostly empty.
var streamBufs = sync.Pool{New: func() any { return make([]byte, streamReadBufferSize) }}

// streamReads counts readStream's calls (for tests).
var streamReads atomic.Int64

// readStream reads (and so consumes) everything in one stream of prog.
func readStream(prog *ebpf.Program, id uint32) ([]byte, error) {
	streamReads.Add(1)
	buf := streamBufs.Get().([]byte)
	defer streamBufs.Put(buf)
	var out []byte
	for {
		var ps pins
		attr := streamReadAttr{buf: ps.addr(buf), bufLen: uint32(len(buf)), stream: id, progFD: uint32(prog.FD())}
		n, err := bpf.Syscall(cmdProgStreamReadFD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		ps.unpin()
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		if int(n) < len(buf) {
			return out, nil
		}
	}
}

var (
	streamsOnce sync.Once
	streamsErr  error
)

// ProgStreamsSupported says whether this kernel has BPF program streams,
// and if not, exactly why `trace prog` cannot work. It asks with a bad
// program fd: a kernel that knows the command says EBADF, one that does
// not says EINVAL.
func ProgStreamsSupported() error {
	streamsOnce.Do(func() {
		attr := streamReadAttr{stream: streamStdout, progFD: ^uint32(0)}
		_, err := bpf.Syscall(cmdProgStreamReadFD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		switch {
		case errors.Is(err, unix.EBADF):
		case errors.Is(err, unix.EINVAL):
			streamsErr = fmt.Errorf("this kernel has no BPF program streams: BPF_PROG_STREAM_READ_BY_FD needs Linux 6.17 or later (this is %s); use 'trace' for bpf_printk lines", kernelRelease())
		case errors.Is(err, unix.EPERM):
			streamsErr = fmt.Errorf("reading a program's BPF streams needs CAP_SYS_ADMIN; run bpfsh as root")
		default:
			streamsErr = fmt.Errorf("probe for BPF program streams: %v", err)
		}
	})
	return streamsErr
}

var (
	streamWriteOnce sync.Once
	streamWriteErr  error
)

// StreamWritesWork says whether programs can write to their streams on
// this kernel: it runs a probe program that writes one line and reports
// the kfunc's error if the write fails (some 6.18 kernels answer ENOMEM:
// the kfunc allocates its buffer pages without sleeping, and that fails).
func StreamWritesWork() error {
	if err := ProgStreamsSupported(); err != nil {
		return err
	}
	streamWriteOnce.Do(func() {
		var objs streamProbeObjects
		if err := loadStreamProbeObjects(&objs, nil); err != nil {
			streamWriteErr = fmt.Errorf("programs cannot write to BPF streams here: the bpf_stream_vprintk_impl kfunc does not load (%v)", err)
			return
		}
		defer objs.Close()
		res, err := progTestRun(&rawRun{fd: objs.StreamProbe.FD()})
		if err == nil {
			readStream(objs.StreamProbe, streamStdout)
			if ret := int32(res.retval); ret < 0 {
				err = unix.Errno(-ret)
			}
		}
		if err != nil {
			streamWriteErr = fmt.Errorf("programs cannot write to BPF streams on this kernel: bpf_stream_vprintk fails with %v (%s); their bpf_printk lines are in 'trace'", err, errnoName(err))
		}
	})
	return streamWriteErr
}

func errnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
	}
	return "error"
}

// ReadProgStreams reads and consumes what prog has written to its stdout
// and stderr streams since they were last read. On kernels without
// streams it returns nothing.
func ReadProgStreams(prog *ebpf.Program) ([]StreamLine, error) {
	if ProgStreamsSupported() != nil {
		return nil, nil
	}
	var lines []StreamLine
	for _, s := range []struct {
		id   uint32
		name string
	}{{streamStdout, "stdout"}, {streamStderr, "stderr"}} {
		b, err := readStream(prog, s.id)
		if err != nil {
			return lines, fmt.Errorf("read %s stream: %w", s.name, err)
		}
		for _, l := range splitLines(string(b)) {
			lines = append(lines, StreamLine{Stream: s.name, Text: l})
		}
	}
	return lines, nil
}

// TraceProg streams what prog writes to its BPF streams until ctx is done
// or d has passed (0: no limit), polling every 50 ms: the streams have no
// poll(2) support.
func TraceProg(ctx context.Context, prog *ebpf.Program, d time.Duration, emit func(StreamLine) error) error {
	if err := ProgStreamsSupported(); err != nil {
		return err
	}
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		lines, err := ReadProgStreams(prog)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if err := emit(l); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// kernelRelease names the running kernel for messages: "Linux 6.8.0".
func kernelRelease() string {
	rel, err := bpf.KernelRelease()
	if err != nil {
		return "an unknown kernel"
	}
	return "Linux " + rel
}
