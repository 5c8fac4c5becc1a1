// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/vethns"
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
// the peer gets a two-instruction XDP_PASS program. The pair itself (the
// namespace, addresses from 10.199.0.0/16, removal) is bpf/vethns's.

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

// Server is kv being served on a veth pair (bpf/vethns). Close removes
// everything.
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

	pair *vethns.Pair
}

// Addr is where clients inside the namespace send requests.
func (s *Server) Addr() netip.AddrPort { return netip.AddrPortFrom(s.HostAddr, s.Port) }

// netnsWhat names kv's namespaces and devices: bpfsh-kv-<pid>-<n>,
// kv<pid>h<n>.
const netnsWhat = "kv"

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
	p, err := vethns.New(vethns.Options{What: netnsWhat, Queues: opts.Queues})
	if err != nil {
		return nil, fmt.Errorf("serve kv: %w", err)
	}
	s = &Server{
		Namespace: p.Namespace, HostDev: p.HostDev, PeerDev: p.PeerDev,
		HostAddr: p.HostAddr, PeerAddr: p.PeerAddr, Port: opts.Port, Reaped: p.Reaped, pair: p,
	}
	if err := p.Pass(vethns.Peer); err != nil {
		return nil, errors.Join(fmt.Errorf("serve kv: %w", err), p.Close())
	}
	if _, err := p.AttachXDP(vethns.Host, opts.Program); err != nil {
		return nil, errors.Join(fmt.Errorf("serve kv: attach xdp_kv: %w", err), p.Close())
	}
	return s, nil
}

// InNamespace runs fn on an OS thread inside the server's namespace.
// Sockets fn opens stay in the namespace and may be used from anywhere.
func (s *Server) InNamespace(fn func() error) error {
	if err := s.pair.InNamespace(fn); err != nil {
		return fmt.Errorf("kv server: %w", err)
	}
	return nil
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
func (s *Server) Close() error { return s.pair.Close() }

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
