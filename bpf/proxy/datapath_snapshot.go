// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
)

// Snapshot is the data path's state at one moment (proxy status).
type Snapshot struct {
	Clients int // client sockets in conns
	Servers int // server sockets in conns
	Links   int // linked client-server pairs
	Waiting int // clients WAITING for a server
	Idle    int // servers on the idle stack
	Conns   []Conn
	Stats   []Stat
}

// Conn is one socket's entry in conns.
type Conn struct {
	Sock        Sock
	Role        string // "client" or "server"
	Peer        Sock   // 0: none
	Waiting     bool
	Passing     bool
	Idle        bool
	Held        bool   // server: held back from the idle stack for a cancel request
	Outstanding int32  // client: requests sent and not yet answered by ReadyForQuery
	Msgs        uint64 // message headers walked
	Bytes       uint64
}

// Snapshot reads conns and the counters.
func (d *Datapath) Snapshot() (Snapshot, error) { return snapshot(d.objs.Conns, d.objs.Stats) }

// SnapshotPinned reads the state of a data path pinned with PinDir under
// dir, from another process (proxy status).
func SnapshotPinned(dir string) (Snapshot, error) {
	conns, err := ebpf.LoadPinnedMap(filepath.Join(dir, ConnsMap), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return Snapshot{}, fmt.Errorf("proxy snapshot: open %s: %w", filepath.Join(dir, ConnsMap), err)
	}
	defer conns.Close()
	stats, err := ebpf.LoadPinnedMap(filepath.Join(dir, StatsMap), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return Snapshot{}, fmt.Errorf("proxy snapshot: open %s: %w", filepath.Join(dir, StatsMap), err)
	}
	defer stats.Close()
	return snapshot(conns, stats)
}

func snapshot(conns, stats *ebpf.Map) (Snapshot, error) {
	var snap Snapshot
	var k uint64
	var v ProxyPgConn
	// A hash map walked while sockets come and go can yield a key twice
	// (the walk restarts when the key it stands on is deleted): count
	// each socket once.
	seen := map[uint64]bool{}
	it := conns.Iterate()
	for it.Next(&k, &v) {
		if seen[k] {
			continue
		}
		seen[k] = true
		c := Conn{Sock: Sock(k), Peer: Sock(v.Peer), Waiting: v.Flags&FlagWaiting != 0, Passing: v.Flags&FlagPassing != 0,
			Idle: v.Flags&FlagIdle != 0, Held: v.Flags&FlagHeld != 0, Outstanding: v.Outstanding, Msgs: v.Msgs, Bytes: v.Bytes}
		switch v.Role {
		case RoleClient:
			c.Role = "client"
			snap.Clients++
			if c.Peer != 0 {
				snap.Links++
			}
			if c.Waiting {
				snap.Waiting++
			}
		case RoleServer:
			c.Role = "server"
			snap.Servers++
			if c.Idle {
				snap.Idle++
			}
		default:
			c.Role = fmt.Sprintf("role(%d)", v.Role)
		}
		snap.Conns = append(snap.Conns, c)
	}
	if err := it.Err(); err != nil {
		return snap, fmt.Errorf("proxy snapshot: read %s: %w", ConnsMap, err)
	}
	slices.SortFunc(snap.Conns, func(a, b Conn) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.Sock, b.Sock))
	})
	var err error
	if snap.Stats, err = ReadStats(stats); err != nil {
		return snap, fmt.Errorf("proxy snapshot: %w", err)
	}
	return snap, nil
}
