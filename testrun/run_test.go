// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/fixture"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func mustRun(t *testing.T, opts Options) *Outcome {
	t.Helper()
	o, err := Run(opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return o
}

func wantErr(t *testing.T, opts Options, want string) error {
	t.Helper()
	_, err := Run(opts)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is more than one line: %q", err)
	}
	return err
}

func ctxChange(o *Outcome, field string) (FieldChange, bool) {
	for _, c := range o.Ctx {
		if c.Field == field {
			return c, true
		}
	}
	return FieldChange{}, false
}

func TestXDPReflect(t *testing.T) {
	p := progs(t)
	in := udpFrame("ping")
	o := mustRun(t, Options{Program: p.XdpReflect, Data: in})
	if o.Retval != 3 || o.RetvalName != "XDP_TX" || o.TypeName != "xdp" {
		t.Fatalf("retval %d %q (%s), want 3 XDP_TX", o.Retval, o.RetvalName, o.TypeName)
	}
	if !o.PacketChanged || !bytes.Equal(o.DataOut[0:6], macRemote[:]) || !bytes.Equal(o.DataOut[6:12], macLocal[:]) || !bytes.Equal(o.DataOut[12:], in[12:]) {
		t.Errorf("output % x: want the MAC addresses swapped and the rest as sent", o.DataOut)
	}
	if !o.Timed {
		t.Error("an XDP run is timed by the kernel")
	}
	o = mustRun(t, Options{Program: p.XdpReflect, Data: frame(macRemote, macLocal, "ping")})
	if o.RetvalName != "XDP_DROP" || o.PacketChanged {
		t.Errorf("frame to a global MAC: %s, changed %v; want XDP_DROP, unchanged", o.RetvalName, o.PacketChanged)
	}
}

func TestXDPInputRules(t *testing.T) {
	p := progs(t)
	wantErr(t, Options{Program: p.XdpPass, Data: make([]byte, 10)}, "XDP input must be at least 14 bytes, got 10")
	wantErr(t, Options{Program: p.XdpPass}, "xdp programs run on a packet")
	wantErr(t, Options{Program: p.XdpPass, Data: udpFrame("x"), OnCPU: true, CPU: 0}, "cpu 0 applies only to raw_tracepoint programs (the kernel refuses it for xdp)")
	wantErr(t, Options{Program: p.XdpPass, Data: udpFrame("x"), Flags: flagSKBChecksumComp}, "test-run flag checksum_complete is not accepted for xdp programs")
	wantErr(t, Options{Program: p.XdpPass, Data: udpFrame("x"), BatchSize: 8}, "batch size applies only to XDP live frames")
	// Longer than one page's linear area: the rest becomes fragments.
	o := mustRun(t, Options{Program: p.XdpPass, Data: make([]byte, 5000)})
	if o.RetvalName != "XDP_PASS" || len(o.DataOut) != 5000 {
		t.Errorf("5000-byte frame: %s, %d bytes out", o.RetvalName, len(o.DataOut))
	}
}

func TestXDPMetadata(t *testing.T) {
	bpftest.RequireHelper(t, ebpf.XDP, asm.FnXdpAdjustMeta)
	var m fixture.MetaObjects
	if err := fixture.LoadMetaObjects(&m, nil); err != nil {
		t.Fatalf("load the metadata fixture: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	in := udpFrame("meta")
	o := mustRun(t, Options{Program: m.XdpMeta, Data: in})
	if o.RetvalName != "XDP_PASS" {
		t.Fatalf("retval %s", o.RetvalName)
	}
	if !bytes.Equal(o.Meta, []byte{0xef, 0xbe, 0xed, 0xfe}) || !bytes.Equal(o.DataOut, in) || o.PacketChanged {
		t.Errorf("meta % x, packet changed %v: want ef be ed fe before the unchanged packet", o.Meta, o.PacketChanged)
	}
}

func TestXDPContext(t *testing.T) {
	p := progs(t)
	in := udpFrame("ctx")
	o := mustRun(t, Options{Program: p.XdpPass, Data: in, Ctx: []string{"{ingress_ifindex: 1}"}})
	if o.RetvalName != "XDP_PASS" || len(o.Ctx) != 0 {
		t.Errorf("ctx ingress_ifindex 1: %s, changes %v", o.RetvalName, o.Ctx)
	}
	wantErr(t, Options{Program: p.XdpPass, Data: in, Ctx: []string{"{egress_ifindex: 1}"}}, "ctx field egress_ifindex cannot be set for xdp programs: the kernel takes only data, data_end, ingress_ifindex, rx_queue_index")
	wantErr(t, Options{Program: p.XdpPass, Data: in, Ctx: []string{"{ingress_ifindex: 999999}"}}, "ctx ingress_ifindex 999999: no such interface")
	wantErr(t, Options{Program: p.XdpPass, Data: in, Ctx: []string{"{rx_queue_index: 1}"}}, "rx_queue_index needs ingress_ifindex")
	wantErr(t, Options{Program: p.XdpPass, Data: in, Ctx: []string{"{ingress_ifindex: 1, rx_queue_index: 7}"}}, "ctx rx_queue_index 7: lo has 1 receive queues")
	wantErr(t, Options{Program: p.XdpPass, Data: in, Ctx: []string{"{data_end: 3}"}}, fmt.Sprintf("ctx data_end 3 must equal the packet's length %d", len(in)))
	wantErr(t, Options{Program: p.XdpPass, Data: in, Ctx: []string{"{data: 3}"}}, "multiple of 4")
	// Metadata given in the input: its first 8 bytes.
	o = mustRun(t, Options{Program: p.XdpPass, Data: append([]byte{1, 2, 3, 4, 5, 6, 7, 8}, in...), Ctx: []string{"{data: 8}"}})
	if !bytes.Equal(o.Meta, []byte{1, 2, 3, 4, 5, 6, 7, 8}) || !bytes.Equal(o.DataOut, in) {
		t.Errorf("metadata in: meta % x, packet % x", o.Meta, o.DataOut)
	}
}

func TestTCMarkContext(t *testing.T) {
	p := progs(t)
	in := udpFrame("tc")
	o := mustRun(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{mark: 5, ingress_ifindex: 1}"}})
	if o.RetvalName != "TC_ACT_OK" || o.Retval != 0 {
		t.Fatalf("retval %d %s, want TC_ACT_OK", o.Retval, o.RetvalName)
	}
	mark, ok := ctxChange(o, "mark")
	if !ok || mark.Before != "5" || mark.After != "42" || mark.AfterJSON != uint64(42) {
		t.Errorf("mark change %+v, want 5 -> 42", mark)
	}
	if prio, ok := ctxChange(o, "priority"); !ok || prio.After != "3" {
		t.Errorf("priority change %+v, want 3", prio)
	}
	if len(o.Ctx) != 2 {
		t.Errorf("changes %+v: want only mark and priority (ifindex and wire_len are the kernel's)", o.Ctx)
	}
	if o.CtxName != "struct __sk_buff" || len(o.CtxIn) != 192 {
		t.Errorf("ctx %s of %d bytes", o.CtxName, len(o.CtxIn))
	}
	o = mustRun(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{mark: 7}"}})
	if o.RetvalName != "TC_ACT_SHOT" || len(o.Ctx) != 0 {
		t.Errorf("mark 7: %s %+v, want TC_ACT_SHOT and no changes", o.RetvalName, o.Ctx)
	}
	wantErr(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{len: 5}"}}, "ctx field len cannot be set for sched_cls programs: the kernel takes only mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size, hwtstamp")
	wantErr(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{ifindex: 999999}"}}, "ctx ifindex 999999: no such interface")
	wantErr(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{marc: 5}"}}, `struct __sk_buff has no field "marc"`)
	wantErr(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{mark: 4294967296}"}}, "mark: 4294967296 does not fit in 32 bits")
	wantErr(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{wire_len: 3}"}}, "ctx wire_len 3 must be at least the packet's")
	wantErr(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{mark 5}"}}, "is not 'field: value'")
	// cb is an array; hex contexts go in as they are.
	o = mustRun(t, Options{Program: p.TcMark, Data: in, Ctx: []string{"{mark: 5, cb: [1, 2, 3, 4, 5]}"}})
	if o.RetvalName != "TC_ACT_OK" {
		t.Errorf("cb set: %s", o.RetvalName)
	}
	wantErr(t, Options{Program: p.TcMark, Data: make([]byte, 4000)}, "sched_cls input can be at most 3712 bytes")
}

func TestSocketFilterKeepsBytes(t *testing.T) {
	p := progs(t)
	in := udpFrame("socket filter payload")
	o := mustRun(t, Options{Program: p.SockTrunc, Data: in})
	if o.Retval != 20 || o.RetvalName != "keep 20 bytes" {
		t.Errorf("retval %d %q, want keep 20 bytes", o.Retval, o.RetvalName)
	}
	// The kernel zeroes the Ethernet header of an L3 program's output;
	// bpfsh puts it back so that an untouched packet compares equal.
	if o.PacketChanged || !bytes.Equal(o.DataOut, in) {
		t.Errorf("output % x, want the input back", o.DataOut)
	}
}

func TestCgroupSKBVerdicts(t *testing.T) {
	p := progs(t)
	o := mustRun(t, Options{Program: p.CgroupLen, Data: udpFrame("a payload long enough to pass")})
	if o.RetvalName != "allow" {
		t.Errorf("long packet: %s, want allow", o.RetvalName)
	}
	o = mustRun(t, Options{Program: p.CgroupLen, Data: udpFrame("")})
	if o.RetvalName != "drop" || o.Retval != 0 {
		t.Errorf("short packet: %s, want drop", o.RetvalName)
	}
}

func TestFlowDissectorKeys(t *testing.T) {
	p := progs(t)
	o := mustRun(t, Options{Program: p.FlowIpv4, Data: udpFrame("flow")})
	if o.RetvalName != "BPF_OK" {
		t.Fatalf("retval %s, want BPF_OK", o.RetvalName)
	}
	got := map[string]string{}
	for _, k := range o.FlowKeys {
		got[k.Field] = k.After
	}
	want := map[string]string{"nhoff": "14", "thoff": "34", "ip_proto": "17", "sport": "40000", "dport": "7777", "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.2", "n_proto": "2048", "addr_proto": "2048"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("flow key %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	wantErr(t, Options{Program: p.FlowIpv4, Data: udpFrame("x"), Ctx: []string{"{nhoff: 3}"}}, "ctx field nhoff cannot be set for flow_dissector programs: the kernel takes only flags")
}

func TestSkLookup(t *testing.T) {
	p := progs(t)
	o := mustRun(t, Options{Program: p.LookupPort, Ctx: []string{"{local_port: 7777, remote_ip4: 10.0.0.1, remote_port: 40000}"}})
	if o.RetvalName != "SK_DROP" {
		t.Errorf("port 7777: %s, want SK_DROP", o.RetvalName)
	}
	o = mustRun(t, Options{Program: p.LookupPort, Ctx: []string{"{local_port: 80}"}})
	if o.RetvalName != "SK_PASS" || o.Retval != 1 {
		t.Errorf("port 80: %s, want SK_PASS", o.RetvalName)
	}
	// No ctx at all: an IPv4 TCP lookup with everything else zero.
	if o = mustRun(t, Options{Program: p.LookupPort}); o.RetvalName != "SK_PASS" {
		t.Errorf("default ctx: %s", o.RetvalName)
	}
	wantErr(t, Options{Program: p.LookupPort, Data: udpFrame("x")}, "SK_LOOKUP programs take only ctx: drop the packet")
	wantErr(t, Options{Program: p.LookupPort, Ctx: []string{"{ingress_ifindex: 1}"}}, "ctx field ingress_ifindex cannot be set for sk_lookup programs")
	wantErr(t, Options{Program: p.LookupPort, Ctx: []string{"{family: 7}"}}, "ctx family 7: sk_lookup test runs take AF_INET (2) or AF_INET6 (10)")
	wantErr(t, Options{Program: p.LookupPort, Ctx: []string{"{remote_ip4: 10.0.0.300}"}}, "remote_ip4")
}

func TestRawTracepointOnCPU(t *testing.T) {
	p := progs(t)
	o := mustRun(t, Options{Program: p.RtpCpu, Ctx: []string{"[2]"}})
	if o.Retval < 200 || o.Retval >= 200+uint32(runtime.NumCPU()) || o.Timed {
		t.Errorf("retval %d (timed %v), want 200 + the CPU it ran on, untimed", o.Retval, o.Timed)
	}
	if runtime.NumCPU() < 2 {
		t.Skip("skipped: running on another CPU needs two CPUs")
	}
	for cpu := range uint32(2) {
		o = mustRun(t, Options{Program: p.RtpCpu, Ctx: []string{"[1]"}, OnCPU: true, CPU: cpu})
		if o.Retval != 100+cpu {
			t.Errorf("cpu %d: retval %d, want %d", cpu, o.Retval, 100+cpu)
		}
	}
	wantErr(t, Options{Program: p.RtpCpu, Ctx: []string{"[1]"}, OnCPU: true, CPU: 4096}, "cpu 4096 is not online")
	wantErr(t, Options{Program: p.RtpCpu}, "the program reads more arguments than the ctx gives")
	wantErr(t, Options{Program: p.RtpCpu, Ctx: []string{"[1]"}, Bench: true}, "the kernel cannot repeat raw_tracepoint programs")
}

func TestSyscallContext(t *testing.T) {
	p := progs(t)
	o := mustRun(t, Options{Program: p.Sum, Ctx: []string{"{a: 40, b: 2}"}})
	if o.Retval != 0 || o.Timed {
		t.Errorf("retval %d, timed %v", o.Retval, o.Timed)
	}
	if c, ok := ctxChange(o, "sum"); !ok || c.Before != "0" || c.After != "42" {
		t.Errorf("ctx changes %+v, want sum 0 -> 42", o.Ctx)
	}
	if o.CtxName != "struct sum_args" {
		t.Errorf("ctx name %q", o.CtxName)
	}
	if len(o.Trace) != 1 || o.Trace[0].Text != "sum 42" {
		t.Errorf("trace %v, want the one line 'sum 42'", o.Trace)
	}
	o = mustRun(t, Options{Program: p.Sum, Ctx: []string{"{a: 100, b: 1}"}, Repeat: 5})
	if o.Retval != 1 || o.Timing == nil || o.Timing.Clock != "wall" || o.Timing.Retvals[0].Count != 5 || o.Timing.Retvals[0].Retval != 1 {
		t.Errorf("repeat 5: retval %d timing %+v", o.Retval, o.Timing)
	}
	wantErr(t, Options{Program: p.Sum, Data: udpFrame("x"), Ctx: []string{"{a: 1}"}}, "SYSCALL programs take only ctx: drop the packet")
	wantErr(t, Options{Program: p.Sum, Ctx: []string{"{c: 1}"}}, `struct sum_args has no field "c"; its fields: a, b, sum`)
	o = mustRun(t, Options{Program: p.Sum, Ctx: []string{"hex", "01000000", "02000000", "00000000"}})
	if c, ok := ctxChange(o, "sum"); ok || !bytes.Equal(o.CtxOut, []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}) {
		t.Errorf("hex ctx: out % x (change %+v)", o.CtxOut, c)
	}
}

func TestLWT(t *testing.T) {
	p := progs(t)
	o := mustRun(t, Options{Program: p.LwtPass, Data: udpFrame("lwt")})
	if o.RetvalName != "BPF_OK" {
		t.Errorf("retval %s, want BPF_OK", o.RetvalName)
	}
}

func TestRetvalNames(t *testing.T) {
	cases := []struct {
		t    ebpf.ProgramType
		v    uint32
		name string
	}{
		{ebpf.XDP, 0, "XDP_ABORTED"}, {ebpf.XDP, 1, "XDP_DROP"}, {ebpf.XDP, 2, "XDP_PASS"}, {ebpf.XDP, 3, "XDP_TX"}, {ebpf.XDP, 4, "XDP_REDIRECT"}, {ebpf.XDP, 9, "9"},
		{ebpf.SchedCLS, 0, "TC_ACT_OK"}, {ebpf.SchedCLS, 2, "TC_ACT_SHOT"}, {ebpf.SchedACT, 7, "TC_ACT_REDIRECT"}, {ebpf.SchedCLS, 0xffffffff, "TC_ACT_UNSPEC"},
		{ebpf.SocketFilter, 0, "drop"}, {ebpf.SocketFilter, 64, "keep 64 bytes"},
		{ebpf.CGroupSKB, 0, "drop"}, {ebpf.CGroupSKB, 1, "allow"},
		{ebpf.FlowDissector, 0, "BPF_OK"}, {ebpf.FlowDissector, 2, "BPF_DROP"},
		{ebpf.SkLookup, 0, "SK_DROP"}, {ebpf.SkLookup, 1, "SK_PASS"},
		{ebpf.RawTracepoint, 7, "7"},
	}
	for _, c := range cases {
		if got := RetvalName(c.t, c.v); got != c.name {
			t.Errorf("RetvalName(%v, %d) = %q, want %q", c.t, c.v, got, c.name)
		}
		if _, err := fmt.Sscan(c.name, new(int)); err == nil || strings.HasPrefix(c.name, "keep") {
			continue
		}
		if v, err := ParseRetval(c.t, c.name); err != nil || v != c.v {
			t.Errorf("ParseRetval(%v, %q) = %d, %v; want %d", c.t, c.name, v, err, c.v)
		}
	}
	if v, err := ParseRetval(ebpf.XDP, "tx"); err != nil || v != 3 {
		t.Errorf("ParseRetval(xdp, tx) = %d, %v", v, err)
	}
	if _, err := ParseRetval(ebpf.XDP, "TC_ACT_OK"); err == nil || !strings.Contains(err.Error(), "XDP_TX") {
		t.Errorf("ParseRetval(xdp, TC_ACT_OK) error %v, want the list of XDP names", err)
	}
}

// emptyProgram loads a program of type t that returns v.
func emptyProgram(t *testing.T, pt ebpf.ProgramType, at ebpf.AttachType) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: pt, AttachType: at, License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		t.Fatalf("load %v program: %v", pt, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestNotTestRunnable(t *testing.T) {
	progs(t)
	ops := emptyProgram(t, ebpf.SockOps, 0)
	err := wantErr(t, Options{Program: ops, Data: udpFrame("x")}, "program type sock_ops cannot be test-run by the kernel")
	if !errors.Is(err, ebpf.ErrNotSupported) {
		t.Errorf("error %v does not wrap ebpf.ErrNotSupported", err)
	}
	// The kernel's own answer for sk_skb is ENOTSUPP (524).
	skb := emptyProgram(t, ebpf.SkSKB, ebpf.AttachSkSKBStreamVerdict)
	if _, err := progTestRun(&rawRun{fd: skb.FD(), dataIn: udpFrame("x"), repeat: 1}); !isENOTSUPP(err) {
		t.Errorf("BPF_PROG_TEST_RUN of sk_skb: %v, want ENOTSUPP", err)
	}
	// bpfsh turns to the harness, which needs a sockmap.
	wantErr(t, Options{Program: skb, Data: []byte("hello")}, "program type sk_skb cannot be test-run by the kernel; bpfsh runs it through the live sockmap harness instead: the program uses no sockmap or sockhash")
}

func TestXDPLiveFrames(t *testing.T) {
	p := progs(t)
	if err := HaveLiveFrames(); errors.Is(err, ErrNoLiveFrames) {
		t.Skipf("skipped: %v", ErrNoLiveFrames)
	} else if err != nil {
		t.Fatal(err)
	}
	in := udpFrame("live")
	o := mustRun(t, Options{Program: p.XdpCount, Data: in, LiveFrames: true, Repeat: 10, BatchSize: 4, NoTrace: true})
	if o.DataOut != nil || o.Timing != nil {
		t.Errorf("live frames: out %v timing %v; the kernel hands back neither", o.DataOut, o.Timing)
	}
	// Every frame ran: hits counts them.
	var hits uint64
	if err := p.Hits.Lookup(uint32(17), &hits); err != nil || hits != 10 {
		t.Errorf("hits[17] = %d, %v; want 10 frames counted", hits, err)
	}
	notes := strings.Join(o.Notes, "\n")
	if !strings.Contains(notes, "private network namespace") || !strings.Contains(notes, "10 frame(s)") {
		t.Errorf("notes %q", notes)
	}
	wantErr(t, Options{Program: p.XdpPass, Data: in, LiveFrames: true, BatchSize: 300}, "batch size 300 is over the kernel's limit of 256")
	wantErr(t, Options{Program: p.XdpPass, Data: make([]byte, 4000), LiveFrames: true}, "live frames take at most 3520 bytes")
	wantErr(t, Options{Program: p.TcMark, Data: in, LiveFrames: true}, "live frames are for XDP programs only, not sched_cls")
}
