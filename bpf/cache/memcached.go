// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf/internal/child"
	"github.com/bpfsh/bpfsh/bpf/vethns"
)

// memcached for real
//
// The live cache sits in front of Debian's memcached, run inside the veth
// pair's namespace (bpf/vethns) on the peer end's address with UDP on
// (-U, off by default since 1.5.6), so that its UDP gets and TCP sets
// cross the peer end where xdp_cache_rx and tc_cache_fill sit.

// MemcachedPath is where Debian's memcached package puts the server.
const MemcachedPath = "/usr/bin/memcached"

// MemcachedMissing says how to get memcached when it is not installed;
// nil when it is.
func MemcachedMissing() error {
	if _, err := os.Stat(MemcachedPath); err != nil {
		return fmt.Errorf("%s not installed: apt-get install -y memcached", MemcachedPath)
	}
	return nil
}

// MemcachedOptions says how to run memcached.
type MemcachedOptions struct {
	// Port is its TCP and UDP port (default Port, 11211).
	Port uint16
	// Threads is -t (default 2: this machine's cores).
	Threads int
	// MemoryMB is -m (default 64).
	MemoryMB int
}

// Memcached is a memcached that StartMemcached started in a namespace.
type Memcached struct {
	// Addr is where it listens, TCP and UDP.
	Addr netip.AddrPort
	// Version is what it answers to "version".
	Version string
	// Pid is its process id (for its CPU time).
	Pid int

	cmd     *exec.Cmd
	out     *child.Output
	exited  chan struct{}
	waitErr error
}

// StartMemcached starts memcached inside p's namespace, listening on the
// peer end's address, and waits until it answers "version" over TCP.
// It runs as nobody (-u nobody: memcached refuses to run as root).
func StartMemcached(ctx context.Context, p *vethns.Pair, o MemcachedOptions) (*Memcached, error) {
	if err := MemcachedMissing(); err != nil {
		return nil, err
	}
	if o.Port == 0 {
		o.Port = Port
	}
	if o.Threads == 0 {
		o.Threads = 2
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 64
	}
	port := strconv.Itoa(int(o.Port))
	m := &Memcached{Addr: netip.AddrPortFrom(p.PeerAddr, o.Port), out: &child.Output{Max: 16 << 10}, exited: make(chan struct{})}
	m.cmd = exec.Command(MemcachedPath, "-U", port, "-p", port, "-l", p.PeerAddr.String(),
		"-t", strconv.Itoa(o.Threads), "-m", strconv.Itoa(o.MemoryMB), "-u", "nobody")
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := p.Start(m.cmd, func(err error) { m.waitErr = err; close(m.exited) }); err != nil {
		return nil, fmt.Errorf("start memcached: %w", err)
	}
	m.Pid = m.cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := m.version()
		if err == nil {
			m.Version = v
			return m, nil
		}
		select {
		case <-m.exited:
			return nil, fmt.Errorf("memcached on %s exited (%v): %s", m.Addr, m.waitErr, m.out.LastLine())
		case <-ctx.Done():
			m.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("memcached on %s does not answer after 5s: %v", m.Addr, err)
		}
	}
}

// version asks memcached for its version over TCP.
func (m *Memcached) version() (string, error) {
	c, err := net.DialTimeout("tcp", m.Addr.String(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "VERSION ")
	if !ok {
		return "", fmt.Errorf("memcached answered version with %q", strings.TrimSpace(line))
	}
	return v, nil
}

// Stop stops memcached: SIGTERM, then SIGKILL after 5s.
func (m *Memcached) Stop() error {
	return child.Stop(m.cmd, m.exited, "memcached")
}
