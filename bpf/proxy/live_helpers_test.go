// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// The live tests run the sk_skb programs on real loopback TCP connections
// in a private network namespace. A "client" is a connection whose
// accepted end (front) is handed to the data path with AddClient and
// whose dialling end (app) plays psql; a "server" is a connection whose
// dialling end (front) is handed over with AddServer and whose accepted
// end (backend) plays PostgreSQL.
type rig struct {
	t       *testing.T
	d       *Datapath
	clients []*end
	servers []*end
	sock    map[*end]Sock
}

type end struct {
	front *net.TCPConn // the proxy's socket, in a sockhash
	peer  *net.TCPConn // the application's (client) or PostgreSQL's (server)
}

// ioWait bounds every read the tests wait on; it is a guard against a
// hang, never a timing the test depends on.
const ioWait = 3 * time.Second

func newRig(t *testing.T, mode Mode, clients, servers int) *rig {
	t.Helper()
	bpftest.RequireRoot(t)
	d, err := OpenDatapath(mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	r := &rig{t: t, d: d, sock: map[*end]Sock{}}
	err = inNetns(func() error {
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		defer ln.Close()
		pair := func() (dialled, accepted *net.TCPConn, err error) {
			if dialled, err = net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr)); err != nil {
				return nil, nil, err
			}
			accepted, err = ln.AcceptTCP()
			return dialled, accepted, err
		}
		for range clients {
			a, b, err := pair()
			if err != nil {
				return err
			}
			r.clients = append(r.clients, &end{front: b, peer: a})
		}
		for range servers {
			a, b, err := pair()
			if err != nil {
				return err
			}
			r.servers = append(r.servers, &end{front: a, peer: b})
		}
		return nil
	})
	t.Cleanup(func() {
		for _, e := range append(r.clients, r.servers...) {
			e.front.Close()
			e.peer.Close()
		}
	})
	if err != nil {
		t.Fatalf("loopback connections in a private netns: %v", err)
	}
	for _, e := range r.servers {
		s, err := d.AddServer(e.front)
		if err != nil {
			t.Fatal(err)
		}
		r.sock[e] = s
	}
	for _, e := range r.clients {
		s, err := d.AddClient(e.front)
		if err != nil {
			t.Fatal(err)
		}
		r.sock[e] = s
	}
	return r
}

// inNetns runs fn on a thread in a fresh network namespace with lo up;
// the thread is never unlocked, so Go discards it afterwards.
func inNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err == nil {
			err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr)
		}
		if err == nil {
			ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
			err = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
		}
		if err != nil {
			errc <- fmt.Errorf("bring lo up: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func (r *rig) write(c *net.TCPConn, b []byte) {
	r.t.Helper()
	c.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// expect reads exactly want from c.
func (r *rig) expect(c *net.TCPConn, want []byte, what string) {
	r.t.Helper()
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(ioWait))
	n, err := io.ReadFull(c, got)
	if err != nil {
		r.t.Fatalf("%s: read %d of %d bytes: %v (got %q)", what, n, len(want), err, got[:n])
	}
	if !bytes.Equal(got, want) {
		r.t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// event waits for the next event of kind, skipping others of kinds in skip.
func (r *rig) event(kind EventKind) Event {
	r.t.Helper()
	timeout := time.After(ioWait)
	for {
		select {
		case e, ok := <-r.d.Events():
			if !ok {
				r.t.Fatalf("events closed waiting for %s", kind)
			}
			if e.Kind == kind {
				return e
			}
			r.t.Logf("event %+v while waiting for %s", e, kind)
		case <-timeout:
			r.t.Fatalf("no %s event", kind)
		}
	}
}

func (r *rig) state(e *end) ProxyPgConn {
	r.t.Helper()
	st, err := r.d.State(r.sock[e])
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *rig) stat(i int) uint64 {
	r.t.Helper()
	st, err := r.d.Stats()
	if err != nil {
		r.t.Fatal(err)
	}
	return st[i].Value
}

func (r *rig) peer(e *end) Sock {
	r.t.Helper()
	p, _, err := r.d.Peer(r.sock[e])
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// isTimeout reports a read deadline passing.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
