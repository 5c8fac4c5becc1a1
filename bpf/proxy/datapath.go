// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Mode is the pool mode, fixed when the data path is loaded.
type Mode uint32

// The pool modes (pool_mode in proxy.bpf.c).
const (
	ModeTransaction Mode = 1 // unlink at ReadyForQuery 'I' (no request outstanding)
	ModeSession     Mode = 2 // linked until the client goes
)

// String names the mode as "proxy start --mode" spells it.
func (m Mode) String() string {
	switch m {
	case ModeTransaction:
		return "transaction"
	case ModeSession:
		return "session"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// Sock names a socket handed to the data path: its socket cookie.
type Sock uint64

// Datapath is the loaded in-kernel data path: the programs attached to
// the client and server sockhashes, the state maps and the event reader.
// Its methods may be called from several goroutines.
type Datapath struct {
	objs ProxyObjects

	// mu serializes user space's read-modify-write updates of conns
	// entries (the kernel's own updates are atomic or per socket).
	mu       sync.Mutex
	attached []attachment
	pins     []string
	pinDir   string // made by PinDir: removed by Close when empty
	rd       *ringbuf.Reader
	events   chan Event
	done     chan struct{}
	wg       sync.WaitGroup
	closed   bool
}

type attachment struct {
	m    *ebpf.Map
	p    *ebpf.Program
	kind ebpf.AttachType
}

// OpenDatapath loads the programs and maps (not pinned unless PinDir is
// called), attaches the stream parser and verdicts to the two sockhashes
// and starts reading events.
func OpenDatapath(mode Mode) (*Datapath, error) {
	spec, err := Spec()
	if err != nil {
		return nil, fmt.Errorf("open proxy data path: parse the embedded object: %w", err)
	}
	return openDatapath(spec, mode)
}

// openDatapath is OpenDatapath with the object given (tests give one the
// verifier rejects). Nothing is left loaded or attached on an error.
func openDatapath(spec *ebpf.CollectionSpec, mode Mode) (d *Datapath, err error) {
	if mode != ModeTransaction && mode != ModeSession {
		return nil, fmt.Errorf("open proxy data path: pool mode %d: use ModeTransaction (1) or ModeSession (2)", uint32(mode))
	}
	v := spec.Variables[VarPoolMode]
	if v == nil {
		return nil, fmt.Errorf("open proxy data path: the object has no %s", VarPoolMode)
	}
	if err := v.Set(uint32(mode)); err != nil {
		return nil, fmt.Errorf("open proxy data path: set %s: %w", VarPoolMode, err)
	}
	d = &Datapath{events: make(chan Event, 1024), done: make(chan struct{})}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		return nil, fmt.Errorf("open proxy data path: load %s: %w", BuiltinName, err)
	}
	for _, a := range []attachment{
		{d.objs.ClientSocks, d.objs.SkPgParser, ebpf.AttachSkSKBStreamParser},
		{d.objs.ClientSocks, d.objs.SkPgClient, ebpf.AttachSkSKBStreamVerdict},
		{d.objs.ServerSocks, d.objs.SkPgParser, ebpf.AttachSkSKBStreamParser},
		{d.objs.ServerSocks, d.objs.SkPgServer, ebpf.AttachSkSKBStreamVerdict},
	} {
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: a.m.FD(), Program: a.p, Attach: a.kind}); err != nil {
			d.Close()
			return nil, fmt.Errorf("open proxy data path: attach %s to %s as %s: %w", a.p, a.m, a.kind, err)
		}
		d.attached = append(d.attached, a)
	}
	d.rd, err = ringbuf.NewReader(d.objs.Events)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open proxy data path: read ring buffer %s: %w", EventsMap, err)
	}
	d.wg.Add(1)
	go d.readEvents()
	return d, nil
}

// PinDir pins the maps and programs under dir (created if needed), so that
// "proxy status" in another shell can read them. Close removes the pins,
// and dir if PinDir created it and nothing else is in it. On an error the
// pins already made stay until Close.
func (d *Datapath) PinDir(dir string) error {
	_, err := os.Stat(dir)
	made := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin proxy data path: %w", err)
	}
	if made {
		d.mu.Lock()
		d.pinDir = dir
		d.mu.Unlock()
	}
	pin := func(name string, p interface{ Pin(string) error }) error {
		path := filepath.Join(dir, name)
		if err := p.Pin(path); err != nil {
			return fmt.Errorf("pin proxy %s at %s: %w", name, path, err)
		}
		d.mu.Lock()
		d.pins = append(d.pins, path)
		d.mu.Unlock()
		return nil
	}
	for name, m := range map[string]*ebpf.Map{
		ClientSocksMap: d.objs.ClientSocks, ServerSocksMap: d.objs.ServerSocks, ConnsMap: d.objs.Conns,
		IdleMap: d.objs.Idle, CancellingMap: d.objs.Cancelling, EventsMap: d.objs.Events, StatsMap: d.objs.Stats, WalksMap: d.objs.Walks, WalkLastMap: d.objs.WalkLast,
	} {
		if err := pin(name, m); err != nil {
			return err
		}
	}
	for name, p := range map[string]*ebpf.Program{
		ParserProgram: d.objs.SkPgParser, ClientProgram: d.objs.SkPgClient, ServerProgram: d.objs.SkPgServer, WalkProgram: d.objs.TcPgWalk,
	} {
		if err := pin(name, p); err != nil {
			return err
		}
	}
	return nil
}

// cookie returns the socket cookie of c (SO_COOKIE), the key the data
// path knows it by.
func cookie(c *net.TCPConn) (Sock, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("socket cookie of %s: %w", c.LocalAddr(), err)
	}
	var cookie uint64
	var gerr error
	if err := rc.Control(func(fd uintptr) { cookie, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE) }); err != nil {
		return 0, fmt.Errorf("socket cookie of %s: %w", c.LocalAddr(), err)
	}
	if gerr != nil {
		return 0, fmt.Errorf("socket cookie of %s: getsockopt SO_COOKIE: %w", c.LocalAddr(), gerr)
	}
	return Sock(cookie), nil
}

// AddServer hands over an authenticated, idle server connection: into
// conns, the server sockhash and the idle stack (or, while it is held for
// a cancel request, held: Unhold makes it idle). The front must have read
// everything the server sent (its ReadyForQuery included) before.
func (d *Datapath) AddServer(c *net.TCPConn) (Sock, error) {
	s, err := d.add(c, RoleServer, d.objs.ServerSocks)
	if err != nil {
		return 0, err
	}
	if held, err := d.held(s); err != nil || held {
		if err != nil {
			d.Remove(s)
			return 0, fmt.Errorf("add server %s: %w", c.RemoteAddr(), err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		var st ProxyPgConn
		if err := d.objs.Conns.Lookup(uint64(s), &st); err == nil {
			st.Flags = st.Flags&^FlagIdle | FlagHeld
			err = d.objs.Conns.Update(uint64(s), &st, ebpf.UpdateExist)
		}
		if err != nil {
			return 0, fmt.Errorf("add server %s: hold socket %d in %s: %w", c.RemoteAddr(), s, ConnsMap, err)
		}
		return s, nil
	}
	if err := d.objs.Idle.Update(nil, uint64(s), ebpf.UpdateAny); err != nil {
		d.Remove(s)
		return 0, fmt.Errorf("add server %s: push socket %d on %s: %w", c.RemoteAddr(), s, IdleMap, err)
	}
	return s, nil
}

// AddClient hands over an authenticated client connection, after the
// front sent it ReadyForQuery and read everything it sent.
func (d *Datapath) AddClient(c *net.TCPConn) (Sock, error) {
	return d.add(c, RoleClient, d.objs.ClientSocks)
}

func (d *Datapath) add(c *net.TCPConn, role uint32, socks *ebpf.Map) (Sock, error) {
	what := map[uint32]string{RoleClient: "client", RoleServer: "server"}[role]
	s, err := cookie(c)
	if err != nil {
		return 0, fmt.Errorf("add %s: %w", what, err)
	}
	st := ProxyPgConn{Role: role}
	if role == RoleServer {
		st.Flags = FlagIdle
		st.Walk.Server = 1
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.objs.Conns.Update(uint64(s), &st, ebpf.UpdateNoExist); err != nil {
		return 0, fmt.Errorf("add %s %s: socket %d into %s: %w", what, c.RemoteAddr(), s, ConnsMap, err)
	}
	rc, err := c.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { err = socks.Update(uint64(s), uint64(fd), ebpf.UpdateNoExist) })
		if cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		d.objs.Conns.Delete(uint64(s))
		return 0, fmt.Errorf("add %s %s: socket %d into %s: %w", what, c.RemoteAddr(), s, socks, err)
	}
	return s, nil
}

// Remove takes s out of every map (client or server) and unlinks its
// peer, which stays in the data path with no link. A server's idle-stack
// entry, if any, is skipped when popped. Removing a socket the data path
// does not hold is an error wrapping ebpf.ErrKeyNotExist.
func (d *Datapath) Remove(s Sock) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var st ProxyPgConn
	if err := d.objs.Conns.Lookup(uint64(s), &st); err != nil {
		return fmt.Errorf("remove socket %d: look it up in %s: %w", s, ConnsMap, err)
	}
	if st.Peer != 0 {
		d.clearPeer(Sock(st.Peer), s)
	}
	socks := d.objs.ClientSocks
	if st.Role == RoleServer {
		socks = d.objs.ServerSocks
	}
	// The socket may be gone from its sockhash already: closing it
	// removes it there.
	if err := socks.Delete(uint64(s)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("remove socket %d from %s: %w", s, socks, err)
	}
	if err := d.objs.Conns.Delete(uint64(s)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("remove socket %d from %s: %w", s, ConnsMap, err)
	}
	return nil
}

// clearPeer unlinks p from s if p is linked to s. The caller holds mu.
func (d *Datapath) clearPeer(p, s Sock) {
	var pst ProxyPgConn
	if d.objs.Conns.Lookup(uint64(p), &pst) == nil && pst.Peer == uint64(s) {
		pst.Peer = 0
		d.objs.Conns.Update(uint64(p), &pst, ebpf.UpdateExist)
	}
}

// PopIdle takes a server from the idle stack for user space (a queued
// client). ok is false when no server is idle.
func (d *Datapath) PopIdle() (Sock, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		var s uint64
		if err := d.objs.Idle.LookupAndDelete(nil, &s); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return 0, false, nil
			}
			return 0, false, fmt.Errorf("pop a server from %s: %w", IdleMap, err)
		}
		var st ProxyPgConn
		if err := d.objs.Conns.Lookup(s, &st); err != nil || st.Role != RoleServer || st.Flags&FlagIdle == 0 {
			continue // removed or taken since it was pushed
		}
		st.Flags &^= FlagIdle
		if err := d.objs.Conns.Update(s, &st, ebpf.UpdateExist); err != nil {
			return 0, false, fmt.Errorf("pop server %d: update %s: %w", s, ConnsMap, err)
		}
		return Sock(s), true, nil
	}
}

// Link links a client to a server (popped with PopIdle): from now on the
// kernel redirects both ways, and the client is no longer WAITING. Call
// it while the client is quiet, i.e. its last message was a Query or a
// Sync and it waits for the answer, and before writing that message to
// the server, so that the answer is redirected rather than passed.
func (d *Datapath) Link(client, server Sock) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var cst, sst ProxyPgConn
	if err := d.objs.Conns.Lookup(uint64(client), &cst); err != nil {
		return fmt.Errorf("link client %d: look it up in %s: %w", client, ConnsMap, err)
	}
	if err := d.objs.Conns.Lookup(uint64(server), &sst); err != nil {
		return fmt.Errorf("link server %d: look it up in %s: %w", server, ConnsMap, err)
	}
	switch {
	case cst.Role != RoleClient:
		return fmt.Errorf("link client %d: it is not a client", client)
	case sst.Role != RoleServer:
		return fmt.Errorf("link server %d: it is not a server", server)
	case cst.Peer != 0 && cst.Peer != uint64(server):
		return fmt.Errorf("link client %d: it is linked to server %d already", client, cst.Peer)
	case sst.Peer != 0 && sst.Peer != uint64(client):
		return fmt.Errorf("link server %d: it is linked to client %d already", server, sst.Peer)
	case sst.Flags&FlagIdle != 0:
		return fmt.Errorf("link server %d: it is on the idle stack; take it with PopIdle first", server)
	}
	sst.Peer = uint64(client)
	if err := d.objs.Conns.Update(uint64(server), &sst, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("link server %d: update %s: %w", server, ConnsMap, err)
	}
	cst.Peer = uint64(server)
	cst.Flags &^= FlagWaiting
	if err := d.objs.Conns.Update(uint64(client), &cst, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("link client %d: update %s: %w", client, ConnsMap, err)
	}
	return nil
}

// Hold marks a server that a cancel request is about to be sent to: the
// kernel then does not put it back on the idle stack when its client's
// transaction ends, but unlinks it, flags it held and sends
// EventServerHeld. Were it reused before the cancel lands, the cancel
// would stop the next client's query. Call Unhold once the cancel has been
// delivered (PostgreSQL has signalled the backend).
func (d *Datapath) Hold(server Sock) error {
	if err := d.objs.Cancelling.Update(uint64(server), uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("hold server %d for a cancel request: update %s: %w", server, CancellingMap, err)
	}
	return nil
}

// held says whether server is marked by Hold.
func (d *Datapath) held(server Sock) (bool, error) {
	var v uint32
	err := d.objs.Cancelling.Lookup(uint64(server), &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up server %d in %s: %w", server, CancellingMap, err)
	}
	return true, nil
}

// Unhold ends Hold: if the kernel held the server back meanwhile (or
// AddServer added it held), it goes on the idle stack now and released is
// true (serve waiting clients). A server no longer in the data path is
// only forgotten. Call it under the same lock as PopIdle and Link.
func (d *Datapath) Unhold(server Sock) (released bool, err error) {
	if err := d.objs.Cancelling.Delete(uint64(server)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return false, fmt.Errorf("unhold server %d: delete from %s: %w", server, CancellingMap, err)
	}
	d.mu.Lock()
	var st ProxyPgConn
	err = d.objs.Conns.Lookup(uint64(server), &st)
	d.mu.Unlock()
	if err != nil || st.Role != RoleServer || st.Flags&FlagHeld == 0 {
		return false, nil
	}
	if err := d.Release(server); err != nil {
		return false, fmt.Errorf("unhold server %d: %w", server, err)
	}
	return true, nil
}

// Release puts a server back on the idle stack (after user space used it,
// or to undo a PopIdle), unlinking it from its client if linked.
func (d *Datapath) Release(server Sock) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var st ProxyPgConn
	if err := d.objs.Conns.Lookup(uint64(server), &st); err != nil {
		return fmt.Errorf("release server %d: look it up in %s: %w", server, ConnsMap, err)
	}
	if st.Role != RoleServer {
		return fmt.Errorf("release server %d: it is not a server", server)
	}
	if st.Flags&FlagIdle != 0 {
		return fmt.Errorf("release server %d: it is on the idle stack already", server)
	}
	if st.Peer != 0 {
		d.clearPeer(Sock(st.Peer), server)
	}
	st.Peer = 0
	st.Flags = st.Flags&^FlagHeld | FlagIdle
	if err := d.objs.Conns.Update(uint64(server), &st, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("release server %d: update %s: %w", server, ConnsMap, err)
	}
	if err := d.objs.Idle.Update(nil, uint64(server), ebpf.UpdateAny); err != nil {
		st.Flags &^= FlagIdle
		d.objs.Conns.Update(uint64(server), &st, ebpf.UpdateExist)
		return fmt.Errorf("release server %d: push on %s: %w", server, IdleMap, err)
	}
	return nil
}

// Peer returns the socket s is linked to now (cancel routing: a client's
// server). ok is false when s has no link.
func (d *Datapath) Peer(s Sock) (Sock, bool, error) {
	var st ProxyPgConn
	if err := d.objs.Conns.Lookup(uint64(s), &st); err != nil {
		return 0, false, fmt.Errorf("peer of socket %d: look it up in %s: %w", s, ConnsMap, err)
	}
	return Sock(st.Peer), st.Peer != 0, nil
}

// State returns s's entry in conns, as the kernel keeps it.
func (d *Datapath) State(s Sock) (ProxyPgConn, error) {
	var st ProxyPgConn
	if err := d.objs.Conns.Lookup(uint64(s), &st); err != nil {
		return st, fmt.Errorf("state of socket %d: look it up in %s: %w", s, ConnsMap, err)
	}
	return st, nil
}

// Stats returns the counters summed over the CPUs.
func (d *Datapath) Stats() ([]Stat, error) { return ReadStats(d.objs.Stats) }

// Close detaches the programs, removes the pins PinDir made, stops the
// event reader (closing Events) and releases the maps: every socket still
// in a sockhash leaves it and behaves as a plain socket again.
func (d *Datapath) Close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	pins, dir := d.pins, d.pinDir
	d.pins, d.pinDir = nil, ""
	d.mu.Unlock()
	var errs []error
	for _, a := range d.attached {
		if err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: a.m.FD(), Program: a.p, Attach: a.kind}); err != nil {
			errs = append(errs, fmt.Errorf("close proxy data path: detach %s from %s: %w", a.p, a.m, err))
		}
	}
	for _, p := range pins {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("close proxy data path: unpin %s: %w", p, err))
		}
	}
	if dir != "" {
		os.Remove(dir) // fails, and stays, when something else was put there
	}
	close(d.done)
	if d.rd != nil {
		d.rd.Close()
		d.wg.Wait()
	} else {
		close(d.events)
	}
	if err := d.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close proxy data path: %w", err))
	}
	return errors.Join(errs...)
}
