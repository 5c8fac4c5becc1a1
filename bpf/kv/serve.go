package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Serving kv live
//
// Serve puts xdp_kv on a real network path that never leaves the
// machine: a veth pair whose host end (in bpfsh's namespace) runs xdp_kv
// in driver mode and whose peer sits in a network namespace that Serve
// makes. A client inside the namespace sends UDP to the host end's
// address and port; the frame crosses the veth, xdp_kv answers it with
// XDP_TX, and the reply crosses back to the client's socket.
//
// On veth an XDP_TX'd frame reaches the peer only when the peer has an
// XDP program of its own (or GRO on): otherwise the kernel drops it. So
// the peer gets a two-instruction XDP_PASS program.
//
// The pair is addressed from a /30 in 10.199.0.0/16 that no address of
// bpfsh's namespace overlaps: traffic to it stays on the pair.

// ServeOptions says what to serve and how.
type ServeOptions struct {
	// Program is xdp_kv (a loaded Handle's Prog). Serve does not close it.
	Program *ebpf.Program
	// Port is the UDP port the program answers on (its kv_port); 0 means
	// Port (6390). It only tells clients where to send.
	Port uint16
	// Queues is the number of queues of each veth end; 0 means one per
	// CPU (at most 8), so that requests from several client sockets are
	// answered on several CPUs at once.
	Queues int
}

// Server is kv being served on a veth pair. Close removes everything.
type Server struct {
	// Namespace is the network namespace clients run in: `ip netns exec
	// NAMESPACE COMMAND` runs a command there.
	Namespace string
	// HostDev is the veth end that runs xdp_kv; PeerDev the end inside
	// the namespace.
	HostDev, PeerDev string
	// HostAddr is the host end's address, PeerAddr the peer's.
	HostAddr, PeerAddr netip.Addr
	// Port is the UDP port kv answers on.
	Port uint16
	// Reaped names the namespaces of killed bpfsh processes that Serve
	// removed before it made its own.
	Reaped []string

	nsfd     int
	nsMade   bool // the namespace and the veth pair are Serve's to remove
	vethMade bool
	kvLink   link.Link
	passLink link.Link
	passProg *ebpf.Program
	hostIdx  int
	once     sync.Once
	closeErr error
}

// Addr is where clients inside the namespace send requests.
func (s *Server) Addr() netip.AddrPort { return netip.AddrPortFrom(s.HostAddr, s.Port) }

// serveSeq makes the names of several Servers of one process distinct.
var serveSeq atomic.Uint32

// Serve makes a network namespace and a veth pair, attaches
// opts.Program to the host end and an XDP_PASS program to the peer, and
// addresses both. On an error half-way everything made so far is removed.
func Serve(opts ServeOptions) (s *Server, err error) {
	if opts.Program == nil {
		return nil, errors.New("serve kv: no program")
	}
	if opts.Program.Type() != ebpf.XDP {
		return nil, fmt.Errorf("serve kv: the program is %s, not XDP", opts.Program.Type())
	}
	if opts.Port == 0 {
		opts.Port = Port
	}
	queues := opts.Queues
	if queues <= 0 {
		queues = min(runtime.NumCPU(), 8)
	}
	pid, seq := os.Getpid(), serveSeq.Add(1)
	s = &Server{
		Namespace: fmt.Sprintf("%s%d-%d", netnsPrefix, pid, seq),
		HostDev:   fmt.Sprintf("kv%dh%d", pid, seq),
		PeerDev:   fmt.Sprintf("kv%dp%d", pid, seq),
		Port:      opts.Port,
		nsfd:      -1,
	}
	if len(s.HostDev) > unix.IFNAMSIZ-1 {
		s.HostDev, s.PeerDev = fmt.Sprintf("kvh%d", seq), fmt.Sprintf("kvp%d", seq)
	}
	s.Reaped = reapStaleNetns()
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
			s = nil
		}
	}()

	block, err := freeBlock(pid, int(seq))
	if err != nil {
		return s, err
	}
	s.HostAddr = block.Addr().Next()
	s.PeerAddr = s.HostAddr.Next()

	if s.passProg, err = passProgram(); err != nil {
		return s, err
	}
	// The namespace, with the peer configured inside it once it exists.
	if s.nsfd, err = newNamedNetns(s.Namespace, nil); err != nil {
		return s, err
	}
	s.nsMade = true
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: s.HostDev, NumTxQueues: queues, NumRxQueues: queues},
		PeerName:  s.PeerDev, PeerNamespace: netlink.NsFd(s.nsfd),
		PeerNumTxQueues: uint32(queues), PeerNumRxQueues: uint32(queues),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return s, fmt.Errorf("serve kv: add veth %s/%s: %w", s.HostDev, s.PeerDev, err)
	}
	s.vethMade = true
	host, err := netlink.LinkByName(s.HostDev)
	if err != nil {
		return s, fmt.Errorf("serve kv: veth %s: %w", s.HostDev, err)
	}
	s.hostIdx = host.Attrs().Index
	err = inNetns(s.nsfd, func() error {
		peer, err := netlink.LinkByName(s.PeerDev)
		if err != nil {
			return fmt.Errorf("serve kv: veth %s in %s: %w", s.PeerDev, s.Namespace, err)
		}
		if err := netlink.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(s.PeerAddr, block.Bits())}); err != nil {
			return fmt.Errorf("serve kv: address %s on %s: %w", s.PeerAddr, s.PeerDev, err)
		}
		if s.passLink, err = link.AttachXDP(link.XDPOptions{Program: s.passProg, Interface: peer.Attrs().Index, Flags: link.XDPDriverMode}); err != nil {
			return fmt.Errorf("serve kv: attach XDP_PASS to %s: %w", s.PeerDev, err)
		}
		if err := netlink.LinkSetUp(peer); err != nil {
			return fmt.Errorf("serve kv: bring up %s: %w", s.PeerDev, err)
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: ipNet(s.HostAddr, block.Bits())}); err != nil {
		return s, fmt.Errorf("serve kv: address %s on %s: %w", s.HostAddr, s.HostDev, err)
	}
	if s.kvLink, err = link.AttachXDP(link.XDPOptions{Program: opts.Program, Interface: s.hostIdx, Flags: link.XDPDriverMode}); err != nil {
		return s, fmt.Errorf("serve kv: attach xdp_kv to %s in driver mode: %w", s.HostDev, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return s, fmt.Errorf("serve kv: bring up %s: %w", s.HostDev, err)
	}
	return s, s.waitUp(3 * time.Second)
}

// waitUp waits until the host end reports its carrier, which a veth has
// once both ends are up: frames sent before then are lost.
func (s *Server) waitUp(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		l, err := netlink.LinkByIndex(s.hostIdx)
		if err != nil {
			return fmt.Errorf("serve kv: veth %s: %w", s.HostDev, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve kv: veth %s is still %s after %s", s.HostDev, l.Attrs().OperState, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// InNamespace runs fn on an OS thread inside the server's namespace.
// Sockets fn opens stay in the namespace and may be used from anywhere.
func (s *Server) InNamespace(fn func() error) error {
	if s.nsfd < 0 {
		return errors.New("kv server is closed")
	}
	return inNetns(s.nsfd, fn)
}

// DialUDP opens a UDP socket inside the namespace connected to kv.
func (s *Server) DialUDP() (*net.UDPConn, error) {
	var c *net.UDPConn
	err := s.InNamespace(func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(s.Addr()))
		if err != nil {
			return fmt.Errorf("kv client socket in %s: %w", s.Namespace, err)
		}
		return nil
	})
	return c, err
}

// Close detaches both programs and removes the veth pair and the
// namespace. Sockets opened inside keep the namespace itself alive (with
// no devices) until they close.
func (s *Server) Close() error {
	s.once.Do(func() {
		var errs []error
		if s.kvLink != nil {
			errs = append(errs, s.kvLink.Close())
		}
		// Deleting one end deletes the pair; the peer goes with the
		// namespace anyway, so only the host end is looked for.
		if s.vethMade {
			if l, err := netlink.LinkByName(s.HostDev); err == nil {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("remove veth %s: %w", s.HostDev, err))
				}
			}
		}
		if s.passLink != nil {
			errs = append(errs, s.passLink.Close())
		}
		if s.passProg != nil {
			errs = append(errs, s.passProg.Close())
		}
		if s.nsMade && netnsExists(s.Namespace) {
			errs = append(errs, deleteNamedNetns(s.Namespace))
		}
		if s.nsfd >= 0 {
			unix.Close(s.nsfd)
			s.nsfd = -1
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// passProgram loads an XDP program that passes every frame: the peer's,
// without which veth drops what xdp_kv sends back with XDP_TX.
func passProgram() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "kv_peer_pass",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, xdpPass),
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		return nil, fmt.Errorf("serve kv: load the peer's XDP_PASS program: %w", err)
	}
	return p, nil
}

// servePrefix is the range Serve takes its /30s from.
var servePrefix = netip.MustParsePrefix("10.199.0.0/16")

// freeBlock picks a /30 of servePrefix that overlaps no IPv4 address of
// the current namespace, starting at a place that depends on pid and seq
// so that concurrent servers rarely look at the same block first.
func freeBlock(pid, seq int) (netip.Prefix, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("serve kv: list addresses: %w", err)
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
	base := binary.BigEndian.Uint32(servePrefix.Addr().AsSlice())
	start := (pid*7919 + seq*104729) % blocks
	for i := range blocks {
		n := base + uint32((start+i)%blocks)*4
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], n)
		p := netip.PrefixFrom(netip.AddrFrom4(b), 30)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("serve kv: every /30 of %s is in use here", servePrefix)
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, 32)}
}

// TryCommand is a shell command line that sends m to the server from its
// namespace with nothing but bash (its /dev/udp), and shows the reply
// with od: for trying kv by hand.
func (s *Server) TryCommand(m *Message) string {
	var b strings.Builder
	for _, c := range m.Marshal() {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return fmt.Sprintf(`ip netns exec %s bash -c 'exec 3<>/dev/udp/%s/%d; printf "%s" >&3; timeout 1 cat <&3 | od -An -c'`,
		s.Namespace, s.HostAddr, s.Port, b.String())
}
