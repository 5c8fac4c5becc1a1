// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BPF_PROG_TEST_RUN answers most mistakes with a bare EINVAL. checkOptions
// catches them first, by the rules of net/bpf/test_run.c, so that the
// error names the field or option at fault; explainRunError translates
// whatever the kernel still refuses.

// OptionsError is a run asked for something the program's type does not
// take (no packet for XDP, a packet for a syscall program, a flag the
// type refuses): a mistake in how the run was written, found before the
// kernel is asked.
type OptionsError struct{ Err error }

func (e *OptionsError) Error() string { return e.Err.Error() }
func (e *OptionsError) Unwrap() error { return e.Err }

// TypedWrong marks the error as a mistake in what was typed (the shell's
// exit status 2).
func (e *OptionsError) TypedWrong() bool { return true }

// packetLimits returns the smallest and largest input a packet program of
// type t takes (largest 0: no limit, the rest becomes XDP fragments).
func packetLimits(t ebpf.ProgramType) (lo, hi int, ok bool) {
	switch {
	case t == ebpf.XDP:
		return ethHeaderLen, 0, true
	case isSKBType(t):
		return ethHeaderLen, skbMaxData, true
	case t == ebpf.FlowDissector:
		return ethHeaderLen, pageSize, true
	}
	return 0, 0, false
}

// ctxOnly reports whether type t takes a context and no packet.
func ctxOnly(t ebpf.ProgramType) bool {
	return t == ebpf.SkLookup || t == ebpf.RawTracepoint || t == ebpf.Syscall
}

// flagNames are the BPF_F_TEST_* flags by the name users give them.
var flagNames = map[string]uint32{
	"on_cpu":            flagTestRunOnCPU,
	"live_frames":       flagXDPLiveFrames,
	"checksum_complete": flagSKBChecksumComp,
}

// ParseFlag turns a flag name (on_cpu, live_frames, checksum_complete) or
// number into BPF_F_TEST_* bits.
func ParseFlag(s string) (uint32, error) {
	if v, ok := flagNames[strings.ToLower(s)]; ok {
		return v, nil
	}
	var v uint32
	if _, err := fmt.Sscan(s, &v); err == nil {
		return v, nil
	}
	return 0, fmt.Errorf("unknown test-run flag %q; one of: on_cpu, live_frames, checksum_complete, or a number", s)
}

// checkOptions refuses, with the reason, what the kernel would refuse.
func checkOptions(t ebpf.ProgramType, opts *Options) error {
	name := typeName(t)
	n := len(opts.Data)
	if lo, hi, ok := packetLimits(t); ok {
		switch {
		case n == 0:
			return fmt.Errorf("%s programs run on a packet: give one (run REF packet EXPR, or hex BYTES)", name)
		case n < lo && t == ebpf.XDP:
			return fmt.Errorf("XDP input must be at least %d bytes, got %d: a frame starts with its Ethernet header", lo, n)
		case n < lo:
			return fmt.Errorf("%s input must be at least %d bytes, got %d: a frame starts with its Ethernet header", name, lo, n)
		case hi > 0 && n > hi:
			return fmt.Errorf("%s input can be at most %d bytes (the kernel builds it in one page), got %d", name, hi, n)
		}
	}
	if ctxOnly(t) && n > 0 {
		return fmt.Errorf("%s programs take only ctx: drop the packet", strings.ToUpper(name))
	}
	switch t {
	case ebpf.RawTracepoint:
		if len(opts.CtxRaw) > 8*maxRawTPArgs {
			return fmt.Errorf("raw_tracepoint ctx is at most %d u64 arguments (%d bytes), got %d bytes", maxRawTPArgs, 8*maxRawTPArgs, len(opts.CtxRaw))
		}
	case ebpf.Syscall:
		if len(opts.CtxRaw) > 0xffff {
			return fmt.Errorf("syscall ctx is at most 65535 bytes, got %d", len(opts.CtxRaw))
		}
	}
	if opts.OnCPU && t != ebpf.RawTracepoint {
		return fmt.Errorf("cpu %d applies only to raw_tracepoint programs (the kernel refuses it for %s)", opts.CPU, name)
	}
	if opts.Bench && (t == ebpf.RawTracepoint || t == ebpf.Syscall) {
		return fmt.Errorf("the kernel cannot repeat %s programs, so there is no bpftool figure to compare; repeat N times N separate runs", name)
	}
	if opts.LiveFrames {
		if t != ebpf.XDP {
			return fmt.Errorf("live frames are for XDP programs only, not %s", name)
		}
		if n > xdpMaxLinear {
			return fmt.Errorf("live frames take at most %d bytes, got %d", xdpMaxLinear, n)
		}
		if opts.Bench {
			return fmt.Errorf("bench does not apply to live frames: repeat N sends N frames")
		}
	}
	if opts.BatchSize != 0 && !opts.LiveFrames {
		return fmt.Errorf("batch size applies only to XDP live frames (live batch N)")
	}
	if opts.BatchSize > 256 {
		return fmt.Errorf("batch size %d is over the kernel's limit of 256", opts.BatchSize)
	}
	allowed := map[ebpf.ProgramType]uint32{ebpf.XDP: flagXDPLiveFrames, ebpf.RawTracepoint: flagTestRunOnCPU}
	for _, st := range []ebpf.ProgramType{ebpf.SocketFilter, ebpf.SchedCLS, ebpf.SchedACT, ebpf.CGroupSKB, ebpf.LWTIn, ebpf.LWTOut, ebpf.LWTXmit, ebpf.LWTSeg6Local} {
		allowed[st] = flagSKBChecksumComp
	}
	if bad := opts.Flags &^ allowed[t]; bad != 0 {
		return fmt.Errorf("test-run flag %s is not accepted for %s programs (%s)", flagText(bad), name, acceptedFlags(allowed[t]))
	}
	return nil
}

func flagText(bits uint32) string {
	var names []string
	for n, v := range flagNames {
		if bits&v != 0 {
			names = append(names, n)
			bits &^= v
		}
	}
	if bits != 0 {
		names = append(names, fmt.Sprintf("0x%x", bits))
	}
	return strings.Join(names, "|")
}

func acceptedFlags(bits uint32) string {
	if bits == 0 {
		return "they take none"
	}
	return "they take only " + flagText(bits)
}

// explainRunError turns the kernel's refusal of a run into one line.
func explainRunError(t ebpf.ProgramType, opts Options, cs *ctxState, err error) error {
	name := typeName(t)
	switch {
	case isENOTSUPP(err):
		return fmt.Errorf("program type %s cannot be test-run by the kernel (BPF_PROG_TEST_RUN answers ENOTSUPP); attach it and watch what it does with 'trace': %w", name, ebpf.ErrNotSupported)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("the kernel refused the run as invalid (EINVAL): %s", einvalRules(t, opts, cs))
	case (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) && opts.LiveFrames && os.Geteuid() == 0:
		// Seen on a 6.18 build that refuses live frames even to root while
		// ordinary test runs work there.
		return fmt.Errorf("%w: run it without 'live'", ErrNoLiveFrames)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("permission denied: BPF_PROG_TEST_RUN needs CAP_BPF and CAP_NET_ADMIN; run bpfsh as root")
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("the program's output did not fit the %d bytes bpfsh offered for it; please report this", outputSlack+len(opts.Data))
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("the ctx names an interface that does not exist in this network namespace ('net show' or 'ip link' lists them)")
	case errors.Is(err, unix.ENXIO):
		return fmt.Errorf("cpu %d is not online; 'doctor' shows this machine's CPUs", opts.CPU)
	case errors.Is(err, unix.E2BIG):
		return fmt.Errorf("batch size %d is over the kernel's limit of 256", opts.BatchSize)
	case errors.Is(err, unix.EBADMSG):
		return fmt.Errorf("with checksum_complete the kernel found skb->csum stale after the run: the program changed the packet without fixing the checksum (bpf_l3_csum_replace, bpf_l4_csum_replace, bpf_csum_diff)")
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("the program selected a socket of a reuseport group, which a test run cannot follow")
	case errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("ctx family must be AF_INET (2) or AF_INET6 (10)")
	case errors.Is(err, unix.ERANGE):
		return fmt.Errorf("ctx local_port is not a port (at most 65535)")
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("the kernel could not allocate memory for the run (ENOMEM)")
	}
	return fmt.Errorf("run %s program: %w", name, err)
}

// einvalRules is what could still make the kernel say EINVAL for type t
// once checkOptions has passed.
func einvalRules(t ebpf.ProgramType, opts Options, cs *ctxState) string {
	switch {
	case t == ebpf.XDP:
		return "XDP programs loaded for a devmap or cpumap, or bound to a device (offload), cannot be test-run; the ctx rx_queue_index must be a queue registered for XDP"
	case isSKBType(t):
		return fmt.Sprintf("%s ctx takes only %s (others zero)", typeName(t), strings.Join(skbRules.Allowed, ", "))
	case t == ebpf.FlowDissector:
		return "flow_dissector ctx takes only flags"
	case t == ebpf.SkLookup:
		return "sk_lookup ctx takes family, protocol, remote_ip4/6, remote_port, local_ip4/6 and local_port; sk, cookie and ingress_ifindex must be zero"
	case t == ebpf.RawTracepoint:
		return "the program reads more arguments than the ctx gives: give all of them, e.g. ctx [1, 2, 3]"
	case t == ebpf.Syscall:
		return "the program reads past the end of the ctx given: give the whole struct"
	}
	return fmt.Sprintf("%s programs may not take a packet, a ctx, repeat or flags in this form", typeName(t))
}
