package proxy

// This file stands in for proxy-kernel's datapath.go (PROXY.md's contract)
// until that branch is merged; it is deleted at the merge.

import (
	"errors"
	"net"
)

// Mode is the pooling mode.
type Mode uint32

// Pooling modes.
const (
	ModeTransaction Mode = 1
	ModeSession     Mode = 2
)

// Sock names a socket handed to the data path.
type Sock uint64

// Datapath is the kernel data path (stub).
type Datapath struct{}

// OpenDatapath loads the data path (stub: fails).
func OpenDatapath(mode Mode) (*Datapath, error) {
	return nil, errors.New("proxy: the kernel data path is not built yet")
}

// PinDir pins the maps under dir.
func (d *Datapath) PinDir(dir string) error { return nil }

// AddServer adds an idle server.
func (d *Datapath) AddServer(c *net.TCPConn) (Sock, error) { return 0, nil }

// AddClient adds a client.
func (d *Datapath) AddClient(c *net.TCPConn) (Sock, error) { return 0, nil }

// Remove removes a socket.
func (d *Datapath) Remove(s Sock) error { return nil }

// PopIdle pops an idle server.
func (d *Datapath) PopIdle() (Sock, bool, error) { return 0, false, nil }

// Link links a client to a server.
func (d *Datapath) Link(client, server Sock) error { return nil }

// Release returns a server to the idle stack.
func (d *Datapath) Release(server Sock) error { return nil }

// Peer is the linked peer.
func (d *Datapath) Peer(s Sock) (Sock, bool, error) { return 0, false, nil }

// Events is the event stream.
func (d *Datapath) Events() <-chan Event { return nil }

// Snapshot reads the maps.
func (d *Datapath) Snapshot() (Snapshot, error) { return Snapshot{}, nil }

// Close releases the data path.
func (d *Datapath) Close() error { return nil }

// EventKind says what an Event reports.
type EventKind uint32

// Event kinds.
const (
	EventClientWaiting EventKind = iota + 1
	EventClientPassed
	EventServerIdle
	EventServerPassed
)

// Event is one report from the data path.
type Event struct {
	Kind EventKind
	Sock Sock
	Peer Sock
}

// Snapshot is what the maps hold.
type Snapshot struct{}
