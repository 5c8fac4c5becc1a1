// SPDX-License-Identifier: Apache-2.0

package vethns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/internal/child"
)

// A veth pair into a namespace
//
// New makes a namespace and a veth pair: the host end stays in bpfsh's
// namespace, the peer goes into the new one. Both ends are addressed from
// a /30 in 10.199.0.0/16 that no address of bpfsh's namespace overlaps, so
// traffic between them stays on the pair, and brought up. Programs are
// then attached to either end (AttachXDP, AttachTC); whatever serves or
// sends inside the namespace runs there through InNamespace or Start.
//
// On veth a frame sent back with XDP_TX reaches the other end only when
// that end has an XDP program of its own (or GRO on): otherwise the
// kernel drops it. Pass gives an end a two-instruction XDP_PASS program.

// End names one end of the pair.
type End int

const (
	// Host is the end in bpfsh's own namespace.
	Host End = iota
	// Peer is the end inside the pair's namespace.
	Peer
)

func (e End) String() string {
	if e == Host {
		return "host"
	}
	return "peer"
}

// Options says what the pair is for.
type Options struct {
	// What names the user (e.g. "kv", "cache"): the namespace is
	// bpfsh-<What>-<pid>-<n>, the devices <What><pid>h<n> and
	// <What><pid>p<n>. Namespaces of dead processes with the same What
	// are removed first.
	What string
	// Queues is the number of queues of each end; 0 means one per CPU
	// (at most 8), so that several flows are handled on several CPUs.
	Queues int
}

// Pair is a veth pair with one end in a namespace of its own. Close
// removes everything.
type Pair struct {
	// Namespace is the network namespace of the peer end: `ip netns exec
	// NAMESPACE COMMAND` runs a command there.
	Namespace string
	// HostDev is the end in bpfsh's namespace, PeerDev the one inside.
	HostDev, PeerDev string
	// HostAddr is the host end's address, PeerAddr the peer's.
	HostAddr, PeerAddr netip.Addr
	// HostIndex and PeerIndex are the ends' interface indices, each in
	// its own namespace.
	HostIndex, PeerIndex int
	// Reaped names the namespaces of killed bpfsh processes that New
	// removed before it made its own.
	Reaped []string

	mu       sync.Mutex
	nsfd     int
	nsMade   bool // the namespace and the veth pair are New's to remove
	vethMade bool
	links    []link.Link
	passProg *ebpf.Program
	procs    []*process
	closed   bool
	closeErr error
}

// process is a command Start started inside the namespace.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// seq makes the names of several pairs of one process distinct.
var seq atomic.Uint32

// NextNamespace is the namespace name the next New of this process with
// this What will try (for tests that must predict it).
func NextNamespace(what string) string {
	return fmt.Sprintf("%s%s-%d-%d", namePrefix, what, os.Getpid(), seq.Load()+1)
}

// New makes the namespace and the veth pair, addresses both ends and
// brings them up. On an error half-way everything made so far is removed;
// nothing it did not make is touched (a namespace name that exists is
// refused).
func New(o Options) (p *Pair, err error) {
	if o.What == "" {
		return nil, errors.New("veth pair: no name (Options.What)")
	}
	queues := o.Queues
	if queues <= 0 {
		queues = min(runtime.NumCPU(), 8)
	}
	pid, n := os.Getpid(), seq.Add(1)
	p = &Pair{
		Namespace: fmt.Sprintf("%s%s-%d-%d", namePrefix, o.What, pid, n),
		HostDev:   fmt.Sprintf("%s%dh%d", o.What, pid, n),
		PeerDev:   fmt.Sprintf("%s%dp%d", o.What, pid, n),
		nsfd:      -1,
	}
	if len(p.HostDev) > unix.IFNAMSIZ-1 {
		p.HostDev, p.PeerDev = fmt.Sprintf("%sh%d", o.What, n), fmt.Sprintf("%sp%d", o.What, n)
	}
	p.Reaped = reapStale(o.What)
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
			p = nil
		}
	}()

	block, err := freeBlock(pid, int(n))
	if err != nil {
		return p, err
	}
	p.HostAddr = block.Addr().Next()
	p.PeerAddr = p.HostAddr.Next()

	if p.nsfd, err = NewNamed(p.Namespace, nil); err != nil {
		return p, err
	}
	p.nsMade = true
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: p.HostDev, NumTxQueues: queues, NumRxQueues: queues},
		PeerName:  p.PeerDev, PeerNamespace: netlink.NsFd(p.nsfd),
		PeerNumTxQueues: uint32(queues), PeerNumRxQueues: uint32(queues),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return p, fmt.Errorf("add veth %s/%s: %w", p.HostDev, p.PeerDev, err)
	}
	p.vethMade = true
	host, err := netlink.LinkByName(p.HostDev)
	if err != nil {
		return p, fmt.Errorf("veth %s: %w", p.HostDev, err)
	}
	p.HostIndex = host.Attrs().Index
	err = In(p.nsfd, func() error {
		peer, err := netlink.LinkByName(p.PeerDev)
		if err != nil {
			return fmt.Errorf("veth %s in %s: %w", p.PeerDev, p.Namespace, err)
		}
		p.PeerIndex = peer.Attrs().Index
		if err := netlink.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(p.PeerAddr, block.Bits())}); err != nil {
			return fmt.Errorf("address %s on %s: %w", p.PeerAddr, p.PeerDev, err)
		}
		if err := netlink.LinkSetUp(peer); err != nil {
			return fmt.Errorf("bring up %s: %w", p.PeerDev, err)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: ipNet(p.HostAddr, block.Bits())}); err != nil {
		return p, fmt.Errorf("address %s on %s: %w", p.HostAddr, p.HostDev, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return p, fmt.Errorf("bring up %s: %w", p.HostDev, err)
	}
	return p, p.waitUp(3 * time.Second)
}

// waitUp waits until the host end reports its carrier, which a veth has
// once both ends are up: frames sent before then are lost.
func (p *Pair) waitUp(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		l, err := netlink.LinkByIndex(p.HostIndex)
		if err != nil {
			return fmt.Errorf("veth %s: %w", p.HostDev, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("veth %s is still %s after %s", p.HostDev, l.Attrs().OperState, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// on runs fn in end's namespace with end's interface index.
func (p *Pair) on(end End, fn func(ifindex int) error) error {
	p.mu.Lock()
	nsfd, closed := p.nsfd, p.closed
	p.mu.Unlock()
	if closed || nsfd < 0 {
		return fmt.Errorf("veth pair %s is closed", p.HostDev)
	}
	if end == Host {
		return fn(p.HostIndex)
	}
	return In(nsfd, func() error { return fn(p.PeerIndex) })
}

func (p *Pair) dev(end End) string {
	if end == Host {
		return p.HostDev
	}
	return p.PeerDev
}

// keep records l so that Close detaches it.
func (p *Pair) keep(l link.Link) {
	p.mu.Lock()
	p.links = append(p.links, l)
	p.mu.Unlock()
}

// AttachXDP attaches prog to end in driver mode. The link is the
// caller's to close (detaching early); Close closes it otherwise.
func (p *Pair) AttachXDP(end End, prog *ebpf.Program) (link.Link, error) {
	var l link.Link
	err := p.on(end, func(ifindex int) (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attach XDP program to %s in driver mode: %w", p.dev(end), err)
	}
	p.keep(l)
	return l, nil
}

// TC is a program AttachTC put on a TC hook of the pair.
type TC struct {
	*bpf.TCAttached
	p   *Pair
	end End
}

// AttachTC attaches prog to end's TC egress (egress true) or ingress:
// with a tcx link, or on kernels without tcx (before 6.6) as a cls_bpf
// filter in direct-action mode under a clsact qdisc (bpf.AttachTC).
// Detach takes it off early; Close removes it otherwise (a filter goes
// with the veth pair).
func (p *Pair) AttachTC(end End, prog *ebpf.Program, egress bool) (*TC, error) {
	dir := "ingress"
	if egress {
		dir = "egress"
	}
	var a *bpf.TCAttached
	err := p.on(end, func(ifindex int) (err error) {
		a, err = bpf.AttachTC(ifindex, prog, egress)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attach TC program to %s %s: %w", p.dev(end), dir, err)
	}
	if a.Link != nil {
		p.keep(a.Link)
	}
	return &TC{TCAttached: a, p: p, end: end}, nil
}

// Detach takes the program off the hook. After Close (or a second
// Detach) there is nothing left to do.
func (t *TC) Detach() error {
	if t.Link != nil {
		// A link closes again without error.
		return t.Link.Close()
	}
	p := t.p
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil // the filter went with the pair
	}
	// The filter is on a device of end's namespace: remove it there.
	return p.on(t.end, func(int) error { return t.TCAttached.Detach() })
}

// Pass attaches an XDP_PASS program to end, so that frames the other
// end sends with XDP_TX arrive.
func (p *Pair) Pass(end End) error {
	p.mu.Lock()
	prog := p.passProg
	p.mu.Unlock()
	if prog == nil {
		var err error
		prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "veth_peer_pass",
			Type: ebpf.XDP,
			Instructions: asm.Instructions{
				asm.Mov.Imm(asm.R0, 2), // XDP_PASS
				asm.Return(),
			},
			License: "GPL",
		})
		if err != nil {
			return fmt.Errorf("load the XDP_PASS program for %s: %w", p.dev(end), err)
		}
		p.mu.Lock()
		p.passProg = prog
		p.mu.Unlock()
	}
	if _, err := p.AttachXDP(end, prog); err != nil {
		return fmt.Errorf("XDP_PASS, without which frames sent back with XDP_TX are dropped: %w", err)
	}
	return nil
}

// InNamespace runs fn on an OS thread inside the pair's namespace.
// Sockets fn opens stay in the namespace and may be used from anywhere.
func (p *Pair) InNamespace(fn func() error) error {
	return p.on(Peer, func(int) error { return fn() })
}

// Start starts cmd inside the namespace, from an OS thread that stays
// locked until the process exits, so that PR_SET_PDEATHSIG (which fires
// when the thread that forked dies) kills it only when bpfsh dies. done
// (when not nil) gets cmd.Wait's result. Close stops it if it still runs.
func (p *Pair) Start(cmd *exec.Cmd, done func(error)) error {
	p.mu.Lock()
	nsfd, closed := p.nsfd, p.closed
	p.mu.Unlock()
	if closed || nsfd < 0 {
		return fmt.Errorf("veth pair %s is closed", p.HostDev)
	}
	pr := &process{cmd: cmd, exited: make(chan struct{})}
	enter := func() error {
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace %s: %w", p.Namespace, err)
		}
		return nil
	}
	exited := func(err error) {
		close(pr.exited)
		if done != nil {
			done(err)
		}
	}
	if err := child.Start(cmd, enter, exited); err != nil {
		return fmt.Errorf("start %s in %s: %w", cmd.Path, p.Namespace, err)
	}
	p.mu.Lock()
	p.procs = append(p.procs, pr)
	p.mu.Unlock()
	return nil
}

// stop ends a started process: SIGTERM, then SIGKILL after 5s.
func (pr *process) stop() error {
	return child.Stop(pr.cmd, pr.exited, pr.cmd.Path)
}

// Close stops what Start started, detaches every program attached
// through the pair, and removes the veth pair and the namespace. Sockets
// opened inside keep the namespace itself alive (with no devices) until
// they close. A second Close does nothing.
func (p *Pair) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.closeErr
	}
	p.closed = true
	links, procs := p.links, p.procs
	p.mu.Unlock()
	var errs []error
	for _, pr := range procs {
		errs = append(errs, pr.stop())
	}
	for _, l := range links {
		// A link the caller closed already closes again without error.
		errs = append(errs, l.Close())
	}
	// Deleting one end deletes the pair; the peer goes with the
	// namespace anyway, so only the host end is looked for.
	if p.vethMade {
		if l, err := netlink.LinkByName(p.HostDev); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("remove veth %s: %w", p.HostDev, err))
			}
		}
	}
	if p.passProg != nil {
		errs = append(errs, p.passProg.Close())
	}
	if p.nsMade && Exists(p.Namespace) {
		errs = append(errs, DeleteNamed(p.Namespace))
	}
	if p.nsfd >= 0 {
		unix.Close(p.nsfd)
		p.nsfd = -1
	}
	p.closeErr = errors.Join(errs...)
	return p.closeErr
}

// prefix is the range New takes its /30s from.
var prefix = netip.MustParsePrefix("10.199.0.0/16")

// freeBlock picks a /30 of prefix that overlaps no IPv4 address of the
// current namespace, starting at a place that depends on pid and n so
// that concurrent pairs rarely look at the same block first.
func freeBlock(pid, n int) (netip.Prefix, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list addresses: %w", err)
	}
	var used []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		used = append(used, netip.PrefixFrom(ip, ones).Masked())
	}
	const blocks = 1 << (32 - 16 - 2)
	base := binary.BigEndian.Uint32(prefix.Addr().AsSlice())
	start := (pid*7919 + n*104729) % blocks
	for i := range blocks {
		v := base + uint32((start+i)%blocks)*4
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		blk := netip.PrefixFrom(netip.AddrFrom4(b), 30)
		free := true
		for _, u := range used {
			if u.Overlaps(blk) {
				free = false
				break
			}
		}
		if free {
			return blk, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every /30 of %s is in use here", prefix)
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, 32)}
}
