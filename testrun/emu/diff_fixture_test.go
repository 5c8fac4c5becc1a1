// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/fixture"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

func run(t *testing.T, o testrun.Options) *testrun.Outcome {
	t.Helper()
	var kc *emu.KernelCheck
	if reloadCheck {
		kc = rebuiltCheck(t, o)
	}
	out, err := testrun.Run(o)
	if kc != nil && err == nil && (kc.Outcome.Retval != out.Retval || !bytes.Equal(kc.Outcome.DataOut, out.DataOut)) {
		t.Errorf("the program rebuilt from the kernel's instructions and loaded again returned %d (%d bytes out), the program as loaded %d (%d bytes)",
			kc.Outcome.Retval, len(kc.Outcome.DataOut), out.Retval, len(out.DataOut))
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return out
}

// TestDifferentialFixtures runs testrun's own test runs (one program of
// every test-runnable type) through the emulator and the kernel.
func TestDifferentialFixtures(t *testing.T) {
	differential(t)
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	defer p.Close()
	run(t, testrun.Options{Program: p.XdpReflect, Data: udpFrame("ping")})
	run(t, testrun.Options{Program: p.XdpReflect, Data: packet.MustBuild(`Ether(dst=0a:00:00:00:00:01, src=02:00:00:00:00:02)/IPv4(id=0, src=10.0.0.1, dst=10.0.0.2)/UDP(sport=40000, dport=7777, chksum=0)/Raw("ping")`)})
	run(t, testrun.Options{Program: p.XdpPass, Data: udpFrame("x")})
	run(t, testrun.Options{Program: p.XdpPass, Data: make([]byte, 5000)})
	for range 10 {
		// Ten frames fill the queue lens (8 values) and count up.
		run(t, testrun.Options{Program: p.XdpCount, Data: udpFrame("ping")})
	}
	run(t, testrun.Options{Program: p.XdpCount, Data: make([]byte, 20)})
	run(t, testrun.Options{Program: p.XdpPass, Data: udpFrame("ctx"), Ctx: []string{"{ingress_ifindex: 1}"}})
	run(t, testrun.Options{Program: p.XdpPass, Data: append([]byte{1, 2, 3, 4, 5, 6, 7, 8}, udpFrame("x")...), Ctx: []string{"{data: 8}"}})
	run(t, testrun.Options{Program: p.TcMark, Data: udpFrame("tc"), Ctx: []string{"{mark: 5, ingress_ifindex: 1}"}})
	run(t, testrun.Options{Program: p.TcMark, Data: udpFrame("tc"), Ctx: []string{"{mark: 7}"}})
	run(t, testrun.Options{Program: p.TcMark, Data: udpFrame("tc"), Ctx: []string{"{mark: 5, cb: [1, 2, 3, 4, 5]}"}})
	run(t, testrun.Options{Program: p.TcMark, Data: udpFrame("tc"), Ctx: []string{"{mark: 5, priority: 9, tstamp: 77, wire_len: 100, gso_segs: 3, gso_size: 1400, hwtstamp: 5}"}})
	run(t, testrun.Options{Program: p.SockTrunc, Data: udpFrame("socket filter payload")})
	run(t, testrun.Options{Program: p.SockTrunc, Data: make([]byte, 20)})
	run(t, testrun.Options{Program: p.CgroupLen, Data: udpFrame("a payload long enough to pass")})
	run(t, testrun.Options{Program: p.CgroupLen, Data: udpFrame("")})
	run(t, testrun.Options{Program: p.FlowIpv4, Data: udpFrame("flow")})
	run(t, testrun.Options{Program: p.FlowIpv4, Data: make([]byte, 30)})
	run(t, testrun.Options{Program: p.LookupPort, Ctx: []string{"{local_port: 7777, remote_ip4: 10.0.0.1, remote_port: 40000}"}})
	run(t, testrun.Options{Program: p.LookupPort, Ctx: []string{"{local_port: 80}"}})
	run(t, testrun.Options{Program: p.LookupPort})
	run(t, testrun.Options{Program: p.RtpCpu, Ctx: []string{"[2]"}})
	if runtime.NumCPU() > 1 {
		for cpu := range uint32(2) {
			run(t, testrun.Options{Program: p.RtpCpu, Ctx: []string{"[1]"}, OnCPU: true, CPU: cpu})
		}
	}
	run(t, testrun.Options{Program: p.Sum, Ctx: []string{"{a: 40, b: 2}"}})
	run(t, testrun.Options{Program: p.Sum, Ctx: []string{"{a: 100, b: 1}"}})
	run(t, testrun.Options{Program: p.Sum, Ctx: []string{"hex", "01000000", "02000000", "00000000"}})
	run(t, testrun.Options{Program: p.LwtPass, Data: udpFrame("lwt")})
}

// TestDifferentialXDPMeta covers bpf_xdp_adjust_meta, which some kernels
// refuse to XDP programs.
func TestDifferentialXDPMeta(t *testing.T) {
	bpftest.RequireHelper(t, ebpf.XDP, asm.FnXdpAdjustMeta)
	differential(t)
	var m fixture.MetaObjects
	if err := fixture.LoadMetaObjects(&m, nil); err != nil {
		t.Fatalf("load the metadata fixture: %v", err)
	}
	defer m.Close()
	run(t, testrun.Options{Program: m.XdpMeta, Data: udpFrame("meta")})
}

// TestDifferentialCloneRedirect checks the emulated bpf_clone_redirect
// against the kernel for each outcome: a copy out of and into a device
// that is up (lo here), no such device, flags the kernel refuses, and, in
// a network namespace of the test's own where lo is down, both directions
// to a device that is down. tc_clone leaves the result in cb[0], so the
// ctx comparison covers it as well as the verdict.
func TestDifferentialCloneRedirect(t *testing.T) {
	d := differential(t)
	var r fixture.RedirectObjects
	if err := fixture.LoadRedirectObjects(&r, nil); err != nil {
		t.Fatalf("load the redirect fixture: %v", err)
	}
	defer r.Close()
	cases := []string{
		"{mark: 1}",              // out of lo
		"{mark: 1, priority: 1}", // into lo (BPF_F_INGRESS)
		"{mark: 4000000}",        // no such device: -EINVAL
		"{mark: 1, priority: 2}", // unknown flags: -EINVAL
	}
	for _, ctx := range cases {
		run(t, testrun.Options{Program: r.TcClone, Data: udpFrame("clone"), Ctx: []string{ctx}})
	}
	// A namespace of its own, on a thread that is thrown away afterwards
	// (it stays locked): its lo is down.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("a network namespace of the test's own: %w", err)
			return
		}
		for _, ctx := range []string{"{mark: 1}", "{mark: 1, priority: 1}"} {
			if _, err := testrun.Run(testrun.Options{Program: r.TcClone, Data: udpFrame("clone"), Ctx: []string{ctx}}); err != nil {
				errc <- fmt.Errorf("run with lo down, ctx %s: %w", ctx, err)
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The runs must have covered different results, not one path six times.
	results := map[uint64]bool{}
	for _, c := range d.Cases() {
		if c.Emu != nil && len(c.Emu.CtxOut) > 52 {
			results[uint64(binary.LittleEndian.Uint32(c.Emu.CtxOut[48:]))] = true
		}
	}
	if len(results) < 3 {
		t.Errorf("the runs' bpf_clone_redirect results %v: want at least 0, -EINVAL and a down device's", results)
	}
}
