// SPDX-License-Identifier: Apache-2.0

package vethns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// devices lists the devices of bpfsh's namespace named like this test
// process's pairs.
func devices(t *testing.T) string {
	t.Helper()
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	prefix := fmt.Sprintf("vt%d", os.Getpid())
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, prefix) || strings.HasPrefix(l.Attrs().Name, "vth") {
			names = append(names, l.Attrs().Name)
		}
	}
	return fmt.Sprint(names)
}

// A pair is made, both ends addressed and up, programs attach to either
// end, a process started inside runs in the namespace, and Close removes
// all of it (the process too).
func TestPairMakesAndRemovesEverything(t *testing.T) {
	bpftest.RequireRoot(t)
	before := devices(t)
	p, err := New(Options{What: "vt"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if !Exists(p.Namespace) || !strings.HasPrefix(p.Namespace, fmt.Sprintf("bpfsh-vt-%d-", os.Getpid())) {
		t.Errorf("namespace %q not made", p.Namespace)
	}
	if err := p.Pass(Host); err != nil {
		t.Fatal(err)
	}
	if err := p.Pass(Peer); err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByName(p.HostDev)
	if err != nil || host.Attrs().Xdp == nil || !host.Attrs().Xdp.Attached {
		t.Errorf("host end %s: %v, XDP %+v", p.HostDev, err, host)
	}
	tc, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	l, err := p.AttachTC(Peer, tc, true)
	if err != nil {
		t.Fatal(err)
	}
	// A process inside sees the peer end, not the host end.
	out := &strings.Builder{}
	cmd := exec.Command("ip", "-o", "link", "show")
	cmd.Stdout = out
	done := make(chan error, 1)
	if err := p.Start(cmd, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), p.PeerDev) || strings.Contains(out.String(), p.HostDev+":") {
		t.Errorf("ip link in the namespace:\n%s", out)
	}
	// A long-running one is stopped by Close.
	sleep := exec.Command("sleep", "60")
	if err := p.Start(sleep, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Detach(); err != nil { // detached early: Close must not mind
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if Exists(p.Namespace) {
		t.Errorf("namespace %s left", p.Namespace)
	}
	if after := devices(t); after != before {
		t.Errorf("devices before %s, after Close %s", before, after)
	}
	if ProcessAlive(sleep.Process.Pid) {
		// A zombie would be reaped by Wait; Close waited, so it is gone.
		t.Errorf("process %d still runs after Close", sleep.Process.Pid)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.InNamespace(func() error { return nil }); err == nil {
		t.Error("InNamespace after Close worked")
	}
}

// A New whose namespace name is taken fails, naming it, and removes
// nothing it did not make.
func TestPairLeavesOthersAlone(t *testing.T) {
	bpftest.RequireRoot(t)
	ns := NextNamespace("vt")
	fd, err := NewNamed(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		DeleteNamed(ns)
		syscall.Close(fd)
	})
	before := devices(t)
	if p, err := New(Options{What: "vt"}); err == nil {
		p.Close()
		t.Fatalf("New used namespace %s, which existed", ns)
	} else if !strings.Contains(err.Error(), ns) {
		t.Errorf("error %q does not name %s", err, ns)
	}
	if !Exists(ns) {
		t.Errorf("the failed New removed namespace %s, which it had not made", ns)
	}
	if after := devices(t); after != before {
		t.Errorf("devices before %s, after the failed New %s", before, after)
	}
}

// Namespaces named for a process that no longer runs are reaped by the
// next New with the same What; those of live processes and of other
// Whats are not.
func TestPairReapsDeadProcesses(t *testing.T) {
	bpftest.RequireRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	for ProcessAlive(pid) {
		time.Sleep(time.Millisecond)
	}
	stale := fmt.Sprintf("bpfsh-vt-%d-1", pid)
	other := fmt.Sprintf("bpfsh-vtother-%d-1", pid)
	live := fmt.Sprintf("bpfsh-vt-%d-99", os.Getpid())
	for _, n := range []string{stale, other, live} {
		fd, err := NewNamed(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
		t.Cleanup(func() { DeleteNamed(n) })
	}
	p, err := New(Options{What: "vt"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if Exists(stale) || fmt.Sprint(p.Reaped) != fmt.Sprint([]string{stale}) {
		t.Errorf("reaped %v, want [%s]", p.Reaped, stale)
	}
	if !Exists(other) || !Exists(live) {
		t.Errorf("reaped %s or %s, which it must not", other, live)
	}
}

func TestNewNeedsAName(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "What") {
		t.Errorf("New without What: %v", err)
	}
}

// tcState is what end's TC hooks hold: the clsact qdisc (or "none") and
// the cls_bpf filters on ingress and egress with their program ids.
func tcState(t *testing.T, p *Pair, end End) string {
	t.Helper()
	var out string
	err := p.on(end, func(ifindex int) error {
		dev, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return err
		}
		qdisc := "none"
		qs, err := netlink.QdiscList(dev)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if q.Type() == "clsact" {
				qdisc = "clsact"
			}
		}
		out = "qdisc " + qdisc
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			fs, _ := netlink.FilterList(dev, parent) // EINVAL without clsact
			for _, f := range fs {
				if bf, ok := f.(*netlink.BpfFilter); ok {
					out += fmt.Sprintf(", %x pref %d handle %d prog %d da %v", parent, f.Attrs().Priority, f.Attrs().Handle, bf.Id, bf.DirectAction)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Without tcx (forced here; Linux before 6.6 has none) AttachTC adds a
// clsact qdisc and a cls_bpf filter in direct-action mode; Detach removes
// both, a qdisc that was there before stays, and Close removes the rest.
func TestPairTCWithoutTCX(t *testing.T) {
	bpftest.RequireRoot(t)
	t.Setenv(bpf.NoTCXEnv, "1")
	p, err := New(Options{What: "vt"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tc, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	info, _ := tc.Info()
	id, _ := info.ID()

	a, err := p.AttachTC(Peer, tc, true)
	if err != nil {
		t.Fatal(err)
	}
	if a.Link != nil || a.Filter == nil || a.Kind() != "clsact/egress" || !strings.Contains(a.Why, bpf.NoTCXEnv) {
		t.Fatalf("AttachTC without tcx: %+v (kind %s)", a.TCAttached, a.Kind())
	}
	if got, want := tcState(t, p, Peer), fmt.Sprintf("qdisc clsact, fffffff3 pref 1 handle 1 prog %d da true", id); got != want {
		t.Errorf("peer after AttachTC: %s, want %s", got, want)
	}
	// A second one goes after it.
	b, err := p.AttachTC(Peer, tc, true)
	if err != nil {
		t.Fatal(err)
	}
	if b.Filter.Pref != 2 || b.Filter.QdiscAdded {
		t.Errorf("second filter: %+v, want pref 2 in the qdisc the first added", b.Filter)
	}
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	if got, want := tcState(t, p, Peer), fmt.Sprintf("qdisc clsact, fffffff3 pref 2 handle 1 prog %d da true", id); got != want {
		t.Errorf("peer after the first Detach: %s, want %s (the qdisc stays while a filter uses it)", got, want)
	}
	if err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := a.Detach(); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	// The first filter added the qdisc, the second did not: with both
	// gone it stays (AttachTC found it there), as another tool's would.
	if got, want := tcState(t, p, Peer), "qdisc clsact"; got != want {
		t.Errorf("peer after both Detach: %s, want %s", got, want)
	}

	// On the host end: Detach removes the qdisc it added.
	h, err := p.AttachTC(Host, tc, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tcState(t, p, Host), fmt.Sprintf("qdisc clsact, fffffff2 pref 1 handle 1 prog %d da true", id); got != want || h.Kind() != "clsact/ingress" {
		t.Errorf("host after AttachTC ingress: %s (%s), want %s", got, h.Kind(), want)
	}
	if err := h.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := tcState(t, p, Host); got != "qdisc none" {
		t.Errorf("host after Detach: %s, want no qdisc", got)
	}
	if _, err := p.AttachTC(Host, tc, true); err != nil {
		t.Fatal(err)
	}
	before := devices(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if after := devices(t); after == before || Exists(p.Namespace) {
		t.Errorf("Close left the pair (%s) or the namespace", after)
	}
}
