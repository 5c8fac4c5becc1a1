// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNewNetns runs fn on an OS thread moved into a fresh network namespace
// with its loopback up. Sockets fn creates live in that namespace and stay
// usable from any goroutine; the thread itself is never unlocked, so Go
// discards it when fn returns and no other goroutine ever runs in the
// namespace. The namespace has no name and disappears with its last socket.
func inNewNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("make a private network namespace: %w (needs CAP_SYS_ADMIN; run as root)", err)
			return
		}
		if err := setUp("lo"); err != nil {
			errc <- fmt.Errorf("bring up lo in the private network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// setUp sets IFF_UP on an interface of the calling thread's namespace.
func setUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// connPair is one loopback TCP connection: Server is the accepted end,
// Client the end that dialled.
type connPair struct {
	Server, Client *net.TCPConn
}

// loopbackPairs opens n TCP connections over loopback in a private network
// namespace.
func loopbackPairs(n int) ([]connPair, error) {
	var pairs []connPair
	err := inNewNetns(func() error {
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return fmt.Errorf("listen on loopback: %w", err)
		}
		defer ln.Close()
		for range n {
			c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
			if err != nil {
				return fmt.Errorf("connect over loopback: %w", err)
			}
			s, err := ln.AcceptTCP()
			if err != nil {
				c.Close()
				return fmt.Errorf("accept over loopback: %w", err)
			}
			pairs = append(pairs, connPair{Server: s, Client: c})
		}
		return nil
	})
	if err != nil {
		closePairs(pairs)
		return nil, err
	}
	return pairs, nil
}

func closePairs(pairs []connPair) {
	for _, p := range pairs {
		p.Server.Close()
		p.Client.Close()
	}
}

// socketFD returns the file descriptor under c (valid while c is open).
func socketFD(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}
