// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"net"
	"sync"
)

// fakePath stands in for the kernel's data path in the tests of the front
// alone (start-up, authentication, cancel, queueing): it keeps PROXY.md's
// bookkeeping (idle stack, links) but moves no bytes, so every byte is
// "passed up" and the front relays it itself. It never unlinks, so it
// behaves as session pooling. Tests that need the kernel use OpenDatapath.
type fakePath struct {
	mu     sync.Mutex
	next   Sock
	idle   []Sock
	peer   map[Sock]Sock
	events chan Event
}

func newFakePath(Mode) (dataPath, error) {
	return &fakePath{peer: map[Sock]Sock{}, events: make(chan Event)}, nil
}

func (f *fakePath) add() Sock { f.next++; return f.next }

func (f *fakePath) AddServer(*net.TCPConn) (Sock, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.add()
	f.idle = append(f.idle, s)
	return s, nil
}

func (f *fakePath) AddClient(*net.TCPConn) (Sock, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.add(), nil
}

func (f *fakePath) Remove(s Sock) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.peer[s]; ok {
		delete(f.peer, p)
		delete(f.peer, s)
	}
	for i, x := range f.idle {
		if x == s {
			f.idle = append(f.idle[:i], f.idle[i+1:]...)
			break
		}
	}
	return nil
}

func (f *fakePath) PopIdle() (Sock, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.idle) == 0 {
		return 0, false, nil
	}
	s := f.idle[len(f.idle)-1]
	f.idle = f.idle[:len(f.idle)-1]
	return s, true, nil
}

func (f *fakePath) Link(c, s Sock) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peer[c], f.peer[s] = s, c
	return nil
}

func (f *fakePath) Release(s Sock) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.peer[s]; ok {
		delete(f.peer, p)
		delete(f.peer, s)
	}
	f.idle = append(f.idle, s)
	return nil
}

func (f *fakePath) Peer(s Sock) (Sock, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.peer[s]
	return p, ok, nil
}

func (f *fakePath) Events() <-chan Event        { return f.events }
func (f *fakePath) Snapshot() (Snapshot, error) { return Snapshot{}, nil }
func (f *fakePath) Close() error                { close(f.events); return nil }

// Hold and Unhold: the fake never unlinks, so nothing is ever held back.
func (f *fakePath) Hold(Sock) error { return nil }

func (f *fakePath) Unhold(Sock) (bool, error) { return false, nil }
