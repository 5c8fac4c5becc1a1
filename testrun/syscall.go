// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"errors"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

// bpf(2) commands testrun issues itself (through bpf.Syscall), and the
// kernel's limits on them.
const (
	cmdProgTestRun       = unix.BPF_PROG_TEST_RUN
	cmdProgStreamReadFD  = 37              // BPF_PROG_STREAM_READ_BY_FD (Linux 6.17)
	errnoENOTSUPP        = unix.Errno(524) // the kernel's internal ENOTSUPP
	flagTestRunOnCPU     = 1 << 0          // BPF_F_TEST_RUN_ON_CPU
	flagXDPLiveFrames    = 1 << 1          // BPF_F_TEST_XDP_LIVE_FRAMES
	flagSKBChecksumComp  = 1 << 2          // BPF_F_TEST_SKB_CHECKSUM_COMPLETE
	pageSize             = 4096
	xdpMaxLinear         = 3520 // PAGE_SIZE - XDP_PACKET_HEADROOM - skb_shared_info
	skbMaxData           = 3712 // PAGE_SIZE - NET_SKB_PAD - skb_shared_info (x86-64)
	ethHeaderLen         = 14
	maxRawTPArgs         = 12 // MAX_BPF_FUNC_ARGS
	outputSlack          = 8192
	streamReadBufferSize = 4096
)

// testRunAttr is the BPF_PROG_TEST_RUN member of union bpf_attr.
type testRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      uint64
	dataOut     uint64
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       uint64
	ctxOut      uint64
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

// rawRun is one BPF_PROG_TEST_RUN as the kernel sees it.
type rawRun struct {
	fd        int
	dataIn    []byte
	dataOut   []byte // capacity offered to the kernel; nil for none
	pooled    bool   // dataOut came from outBuffers (run.go)
	ctxIn     []byte
	ctxOut    []byte // nil for none
	repeat    uint32
	flags     uint32
	cpu       uint32
	batchSize uint32
}

// rawResult is what the kernel returned.
type rawResult struct {
	retval     uint32
	duration   uint32 // average ns per run, as the kernel measured it
	dataOutLen uint32 // length of the output packet (may exceed the buffer: ENOSPC)
	ctxOutLen  uint32
	took       time.Duration // the bpf(2) call's wall time (runCaptured)
}

// progTestRun issues BPF_PROG_TEST_RUN directly rather than through
// cilium/ebpf's Program.Run: Run drops the kernel's duration, which every
// outcome reports, and panics when the kernel reports more output than the
// buffer held instead of returning ENOSPC. Everything else (EINTR retries,
// ENOTSUPP) is handled here the way cilium/ebpf does.
func progTestRun(r *rawRun) (rawResult, error) {
	var ps pins
	defer ps.unpin()
	ptr := ps.addr
	attr := testRunAttr{
		progFD:      uint32(r.fd),
		dataSizeIn:  uint32(len(r.dataIn)),
		dataSizeOut: uint32(len(r.dataOut)),
		dataIn:      ptr(r.dataIn),
		dataOut:     ptr(r.dataOut),
		repeat:      r.repeat,
		ctxSizeIn:   uint32(len(r.ctxIn)),
		ctxSizeOut:  uint32(len(r.ctxOut)),
		ctxIn:       ptr(r.ctxIn),
		ctxOut:      ptr(r.ctxOut),
		flags:       r.flags,
		cpu:         r.cpu,
		batchSize:   r.batchSize,
	}
	for {
		_, err := bpf.Syscall(cmdProgTestRun, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		res := rawResult{retval: attr.retval, duration: attr.duration, dataOutLen: attr.dataSizeOut, ctxOutLen: attr.ctxSizeOut}
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, unix.EINTR) && r.repeat <= 1:
			// Older kernels check for signals after the single run
			// they were asked for: the run happened.
			return res, nil
		case errors.Is(err, unix.EINTR):
			continue // a signal cut a long repeat short: run it again
		}
		return res, err
	}
}

// pins keeps the buffers an attribute points to in place (and on the
// heap) until the call that uses them returns: the kernel reads and writes
// them through plain addresses the garbage collector cannot see.
type pins struct{ p runtime.Pinner }

// addr pins b and returns its address for an attribute (0 when empty).
func (ps *pins) addr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	ps.p.Pin(&b[0])
	return uint64(uintptr(unsafe.Pointer(&b[0])))
}

func (ps *pins) unpin() { ps.p.Unpin() }

// isENOTSUPP reports whether err is the kernel's ENOTSUPP (524), which it
// returns for program types it cannot test-run.
func isENOTSUPP(err error) bool {
	return errors.Is(err, errnoENOTSUPP)
}
