package vethns

import (
	"errors"
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
	// tcx came in Linux 6.6; on older kernels (the matrix's 6.1) AttachTCX
	// says so, and the rest is checked without a TC link.
	l, err := p.AttachTCX(Peer, tc, true)
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Logf("no TC link: %v", err)
	} else if err != nil {
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
	if l != nil {
		if err := l.Close(); err != nil { // detached early: Close must not mind
			t.Fatal(err)
		}
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
