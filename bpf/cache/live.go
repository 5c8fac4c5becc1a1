// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/vethns"
)

// The cache live
//
// StartLive builds the path a real deployment has, on one machine: a
// veth pair (bpf/vethns) whose peer end sits in a network namespace with
// memcached listening on it; clients stay in bpfsh's namespace and reach
// memcached across the pair. xdp_cache_rx (XDP, driver mode) and
// tc_cache_fill (TC egress: a tcx link, or a cls_bpf filter under clsact
// on kernels without tcx) attach to the peer end, memcached's
// side: requests arrive there, replies leave there. The host end gets an
// XDP_PASS program: on veth, a frame sent back with XDP_TX is dropped
// unless the receiving end has an XDP program.
//
// The cache is a private one (loaded from the embedded object, pinned
// nowhere): the user's pinned cache is never touched.
//
// Inside the namespace the default IPv4 TTL is ServerTTL, one less than
// the TTL xdp_cache_rx writes into its replies (HitTTL): a client reading
// each reply's TTL (IP_RECVTTL) tells a hit answered by XDP from a reply
// of memcached, exactly, without asking the counters.

// HitTTL is the TTL of the replies xdp_cache_rx sends (PROTOCOL.md).
const HitTTL = 64

// ServerTTL is the TTL of every packet memcached's namespace sends.
const ServerTTL = 63

// LiveOptions configures StartLive.
type LiveOptions struct {
	// Memcached is how memcached runs (port, threads, memory).
	Memcached MemcachedOptions
	// Queues is the number of queues of each veth end (0: one per CPU).
	Queues int
}

// Live is memcached in a namespace with a private cache ready to attach
// in front of it. Close removes everything.
type Live struct {
	Pair      *vethns.Pair
	Memcached *Memcached

	coll   *ebpf.Collection
	rxLink link.Link
	fill   *vethns.TC
}

// liveSpec is the spec StartLive loads: Spec, except in tests that hand
// it one the verifier rejects.
var liveSpec = Spec

// StartLive makes the namespace and the veth pair, starts memcached in
// it, loads a private cache (not attached: Attach puts it in front) and
// puts XDP_PASS on the host end. On an error everything made is removed.
func StartLive(ctx context.Context, o LiveOptions) (l *Live, err error) {
	if err := MemcachedMissing(); err != nil {
		return nil, err
	}
	if o.Memcached.Port == 0 {
		o.Memcached.Port = Port
	}
	l = &Live{}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	spec, err := liveSpec()
	if err != nil {
		return l, fmt.Errorf("cache: %w", err)
	}
	if err := spec.Variables[VarPort].Set(o.Memcached.Port); err != nil {
		return l, fmt.Errorf("cache: set %s: %w", VarPort, err)
	}
	if l.coll, err = bpf.LoadUnpinned(spec, BuiltinName); err != nil {
		return l, err
	}
	if l.Pair, err = vethns.New(vethns.Options{What: "cache", Queues: o.Queues}); err != nil {
		return l, fmt.Errorf("cache live: %w", err)
	}
	if err := l.Pair.InNamespace(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_default_ttl", []byte(strconv.Itoa(ServerTTL)), 0)
	}); err != nil {
		return l, fmt.Errorf("cache live: set the namespace's TTL to %d: %w", ServerTTL, err)
	}
	if err := l.Pair.Pass(vethns.Host); err != nil {
		return l, fmt.Errorf("cache live: %w", err)
	}
	if l.Memcached, err = StartMemcached(ctx, l.Pair, o.Memcached); err != nil {
		return l, err
	}
	return l, nil
}

// Addr is memcached's address (UDP and TCP).
func (l *Live) Addr() netip.AddrPort { return l.Memcached.Addr }

// Attach puts xdp_cache_rx (XDP, driver mode) and tc_cache_fill (TC
// egress) on memcached's end of the pair.
func (l *Live) Attach() error {
	if l.rxLink != nil {
		return nil
	}
	fill, err := l.Pair.AttachTC(vethns.Peer, l.coll.Programs[FillProgram], true)
	if err != nil {
		return fmt.Errorf("cache live: %s: %w", FillProgram, err)
	}
	rx, err := l.Pair.AttachXDP(vethns.Peer, l.coll.Programs[RxProgram])
	if err != nil {
		if derr := fill.Detach(); derr != nil {
			return fmt.Errorf("cache live: %s: %w; and %s stays on until Close: %v", RxProgram, err, FillProgram, derr)
		}
		return fmt.Errorf("cache live: %s: %w", RxProgram, err)
	}
	l.rxLink, l.fill = rx, fill
	return nil
}

// FillKind is where tc_cache_fill runs while attached, in net show's
// words ("tcx/egress", or "clsact/egress" without tcx); "" when detached.
func (l *Live) FillKind() string {
	if l.fill == nil {
		return ""
	}
	return l.fill.Kind()
}

// Detach takes both programs off; memcached answers alone. The cache's
// maps keep their entries: a later Attach serves them, stale ones too,
// since writes while detached invalidate nothing.
func (l *Live) Detach() error {
	if l.rxLink == nil {
		return nil
	}
	err := errors.Join(l.rxLink.Close(), l.fill.Detach())
	l.rxLink, l.fill = nil, nil
	return err
}

// Stats sums the private cache's counters.
func (l *Live) Stats() ([]Stat, error) { return ReadStats(l.coll.Maps[StatsMap]) }

// Close stops memcached, detaches the programs, removes the pair and the
// namespace, and unloads the cache.
func (l *Live) Close() error {
	var errs []error
	if l.Memcached != nil {
		errs = append(errs, l.Memcached.Stop())
	}
	errs = append(errs, l.Detach())
	if l.Pair != nil {
		errs = append(errs, l.Pair.Close())
	}
	if l.coll != nil {
		l.coll.Close()
		l.coll = nil
	}
	return errors.Join(errs...)
}
