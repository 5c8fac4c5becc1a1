// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The user-space front: it accepts clients, runs their start-up and
// authentication, keeps the pool of server connections logged in, routes
// cancel requests, and hands every socket to the kernel's data path,
// which moves the bytes. Bytes the data path passes up (a client waiting
// for a server, Terminate, messages it does not handle) land in the
// sockets' receive queues, where one reader goroutine per socket finds them.

// Options configure a proxy.
type Options struct {
	// Listen is where clients connect (127.0.0.1:6432 when empty).
	Listen string
	// Server is PostgreSQL's address (127.0.0.1:5432 when empty).
	Server string
	// Pool is how many server connections the proxy keeps (8 when 0).
	Pool int
	// Mode is transaction (the default) or session pooling.
	Mode Mode
	// Users is a user list in PgBouncer's auth_file format (see
	// LoadUsers). Empty: every client is admitted without a password,
	// which Start allows only on a loopback Listen address.
	Users string
	// User and Database are the pool's log-in on the server (postgres,
	// and the user's name, when empty). Every client shares it; a
	// client must ask for this database.
	User, Database string
	// PinDir, when set, is where the data path's maps are pinned, so
	// that another process can read them (proxy status, map dump).
	PinDir string
}

// Defaults for Options.
const (
	DefaultListen = "127.0.0.1:6432"
	DefaultServer = "127.0.0.1:5432"
	DefaultPool   = 8
	// MaxPool bounds Pool (PostgreSQL's max_connections is 100 by default).
	MaxPool = 1000
	// MaxPassedMessage is the largest client message the front forwards
	// itself when the data path passes it up; a larger one closes the
	// client with an ErrorResponse.
	MaxPassedMessage = 64 << 20
	// loginTimeout bounds a client's start-up and authentication.
	loginTimeout = 30 * time.Second
	// resetTimeout bounds the reset of a server a client left.
	resetTimeout = 5 * time.Second
)

// ParseMode reads "transaction" or "session".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "transaction", "":
		return ModeTransaction, nil
	case "session":
		return ModeSession, nil
	}
	return 0, fmt.Errorf("mode %q: want transaction or session", s)
}

// dataPath is what the front uses of *Datapath.
type dataPath interface {
	AddServer(c *net.TCPConn) (Sock, error)
	AddClient(c *net.TCPConn) (Sock, error)
	Remove(s Sock) error
	PopIdle() (Sock, bool, error)
	Link(client, server Sock) error
	Release(server Sock) error
	Hold(server Sock) error
	Unhold(server Sock) (bool, error)
	Peer(s Sock) (Sock, bool, error)
	Events() <-chan Event
	Snapshot() (Snapshot, error)
	Close() error
}

// Proxy is a running proxy. Close stops it.
type Proxy struct {
	opts   Options
	users  Users // nil: trust (loopback only)
	scram  map[string]scramSecret
	ln     *net.TCPListener
	dp     dataPath
	params []pgproto3.ParameterStatus
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	starting map[net.Conn]bool // connections in start-up
	clients  map[Sock]*client
	byPID    map[uint32]*client
	servers  map[Sock]*server
	waiting  []*client
	nextPID  uint32
	counters Counters

	// dialCancel opens the connection a cancel request goes to the
	// server on (tests delay it to widen the race it must survive).
	dialCancel func(ctx context.Context) (net.Conn, error)
}

// Counters are what the front has counted since Start.
type Counters struct {
	Accepted     uint64 `json:"accepted"`      // clients admitted (start-up and authentication done)
	Refused      uint64 `json:"refused"`       // connections refused with an ErrorResponse
	Queued       uint64 `json:"queued"`        // times a client waited in user space for a server
	Cancels      uint64 `json:"cancels"`       // cancel requests forwarded to a server
	ServersLost  uint64 `json:"servers_lost"`  // server connections that closed or were closed
	ServersReset uint64 `json:"servers_reset"` // servers reset (ROLLBACK, DISCARD ALL) after their client left
}

// client is one authenticated client.
type client struct {
	conn     *net.TCPConn
	sock     Sock
	pid, key uint32
	user     string
	buf      []byte // bytes read that do not make a whole message yet
	pending  []byte // whole messages waiting for a server
	queued   bool
	gone     bool
}

// Start starts a proxy: it checks the options, logs the pool in to the
// server, loads the data path and listens. On an error nothing is left.
func Start(ctx context.Context, o Options) (*Proxy, error) {
	return start(ctx, o, openKernel(Spec))
}

// openKernel opens the kernel's data path from the object spec gives.
func openKernel(spec func() (*ebpf.CollectionSpec, error)) func(Mode) (dataPath, error) {
	return func(m Mode) (dataPath, error) {
		s, err := spec()
		if err != nil {
			return nil, fmt.Errorf("open proxy data path: parse the object: %w", err)
		}
		d, err := openDatapath(s, m)
		if err != nil {
			// Not d: a nil *Datapath in the interface would not be nil.
			return nil, err
		}
		return d, nil
	}
}

func start(ctx context.Context, o Options, open func(Mode) (dataPath, error)) (p *Proxy, err error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Server == "" {
		o.Server = DefaultServer
	}
	if o.Pool == 0 {
		o.Pool = DefaultPool
	}
	if o.Pool < 0 || o.Pool > MaxPool {
		return nil, fmt.Errorf("proxy: pool %d: give 1 to %d server connections", o.Pool, MaxPool)
	}
	if o.Mode == 0 {
		o.Mode = ModeTransaction
	}
	if o.Mode != ModeTransaction && o.Mode != ModeSession {
		return nil, fmt.Errorf("proxy: mode %d: want transaction or session", o.Mode)
	}
	if o.User == "" {
		o.User = "postgres"
	}
	if o.Database == "" {
		o.Database = o.User
	}
	p = &Proxy{opts: o, starting: map[net.Conn]bool{}, clients: map[Sock]*client{}, byPID: map[uint32]*client{}, servers: map[Sock]*server{}}
	if o.Users != "" {
		if p.users, err = LoadUsers(o.Users); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		if p.scram, err = scramSecrets(p.users); err != nil {
			return nil, fmt.Errorf("proxy: user list %s: %w", o.Users, err)
		}
	} else if !loopback(o.Listen) {
		return nil, fmt.Errorf("proxy: listening on %s needs a user list (--users FILE): without one every client is admitted without a password, which is allowed on loopback only", o.Listen)
	}
	var pid [4]byte
	rand.Read(pid[:])
	p.nextPID = binary.BigEndian.Uint32(pid[:])>>2 + 1
	p.ctx, p.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return p, fmt.Errorf("proxy: listen on %s: the address is in use (another proxy or PgBouncer?); choose another with --listen", o.Listen)
		}
		return p, fmt.Errorf("proxy: listen on %s: %w", o.Listen, err)
	}
	p.ln = l.(*net.TCPListener)
	pool := make([]*server, 0, o.Pool)
	defer func() {
		if err != nil {
			for _, s := range pool {
				s.conn.Close()
			}
		}
	}()
	for range o.Pool {
		s, err := p.openServer(ctx)
		if err != nil {
			return p, err
		}
		pool = append(pool, s)
	}
	for name, value := range pool[0].params {
		p.params = append(p.params, pgproto3.ParameterStatus{Name: name, Value: value})
	}
	sort.Slice(p.params, func(i, j int) bool { return p.params[i].Name < p.params[j].Name })
	dp, err := open(o.Mode)
	if err != nil {
		return p, fmt.Errorf("proxy: %w", err)
	}
	p.dp = dp
	if o.PinDir != "" {
		if pd, ok := p.dp.(interface{ PinDir(string) error }); ok {
			if err := pd.PinDir(o.PinDir); err != nil {
				return p, fmt.Errorf("proxy: pin under %s: %w", o.PinDir, err)
			}
		}
	}
	p.mu.Lock()
	for _, s := range pool {
		if err = p.addServer(s); err != nil {
			p.mu.Unlock()
			return p, fmt.Errorf("proxy: hand a server connection to the data path: %w", err)
		}
	}
	pool = nil
	p.mu.Unlock()
	p.wg.Add(2)
	go p.acceptLoop()
	go p.eventLoop()
	return p, nil
}

// loopback says whether a listen address is on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every client and server connection and
// releases the data path.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.cancel != nil {
		p.cancel()
	}
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.starting {
		c.Close()
	}
	for _, c := range p.clients {
		c.conn.Close()
	}
	for _, s := range p.servers {
		s.closed = true
		s.conn.Close()
	}
	p.mu.Unlock()
	// The readers still running may call the data path (Peer, Remove)
	// until they see their connections closed: release it after them.
	p.wg.Wait()
	if p.dp != nil {
		return p.dp.Close()
	}
	return nil
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: let others finish
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.starting[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			p.startup(c)
			p.mu.Lock()
			delete(p.starting, c)
			p.mu.Unlock()
		}()
	}
}

// startup runs one connection's start-up: SSL/GSSENC refusals, cancel
// requests, the StartupMessage and authentication, then the hand-off.
func (p *Proxy) startup(c *net.TCPConn) {
	c.SetNoDelay(true)
	c.SetDeadline(time.Now().Add(loginTimeout))
	refused := func(e *pgproto3.ErrorResponse) {
		p.mu.Lock()
		p.counters.Refused++
		p.mu.Unlock()
		refuse(c, e)
	}
	var params map[string]string
	for params == nil {
		body, err := readStartup(c)
		if errors.Is(err, errTooLarge) {
			refused(fatal("08P01", "invalid startup packet: %v", err))
			return
		}
		if err != nil {
			c.Close()
			return
		}
		switch code := binary.BigEndian.Uint32(body); code {
		case codeSSL, codeGSSENC:
			// No TLS or GSS encryption here: 'N' and the client goes on in
			// the clear (or gives up, if it requires them).
			if _, err := c.Write([]byte{'N'}); err != nil {
				c.Close()
				return
			}
		case codeCancel:
			p.forwardCancel(body)
			c.Close()
			return
		case pgproto3.ProtocolVersionNumber:
			var m pgproto3.StartupMessage
			if err := m.Decode(body); err != nil {
				refused(fatal("08P01", "invalid startup packet: %v", err))
				return
			}
			params = m.Parameters
		default:
			refused(fatal("0A000", "unsupported frontend protocol %d.%d: the proxy speaks 3.0", code>>16, code&0xffff))
			return
		}
	}
	user := params["user"]
	db := params["database"]
	if db == "" {
		db = user
	}
	switch {
	case user == "":
		refused(fatal("28000", "no PostgreSQL user name specified in startup packet"))
		return
	case params["replication"] != "" && params["replication"] != "false":
		refused(fatal("08P01", "replication connections are not pooled: connect to the server directly"))
		return
	case db != p.opts.Database:
		refused(fatal("3D000", "database %q is not served here: this proxy pools database %q", db, p.opts.Database))
		return
	}
	if e, err := p.authenticate(c, user); err != nil || e != nil {
		if e != nil {
			refused(e)
		} else {
			c.Close()
		}
		return
	}
	c.SetDeadline(time.Time{})
	p.admit(c, user)
}

// admit registers an authenticated client, hands it to the data path and
// answers its start-up. The socket joins the data path before the answer
// is written: the client sends nothing before ReadyForQuery, so its first
// query meets the kernel's programs.
func (p *Proxy) admit(c *net.TCPConn, user string) {
	var key [4]byte
	rand.Read(key[:])
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	cl := &client{conn: c, user: user, key: binary.BigEndian.Uint32(key[:])}
	for cl.pid == 0 || p.byPID[cl.pid] != nil {
		cl.pid = p.nextPID
		p.nextPID++
	}
	sock, err := p.dp.AddClient(c)
	if err != nil {
		p.counters.Refused++
		p.mu.Unlock()
		refuse(c, fatal("53000", "the proxy cannot take this connection: %v", err))
		return
	}
	cl.sock = sock
	p.clients[sock] = cl
	p.byPID[cl.pid] = cl
	p.counters.Accepted++
	p.wg.Add(1)
	p.mu.Unlock()
	msgs := []encoder{&pgproto3.AuthenticationOk{}}
	for i := range p.params {
		msgs = append(msgs, &p.params[i])
	}
	msgs = append(msgs, &pgproto3.BackendKeyData{ProcessID: cl.pid, SecretKey: cl.key}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := writeMessages(c, msgs...); err != nil {
		p.wg.Done()
		p.clientGone(cl, false)
		return
	}
	go p.readClient(cl)
}

// readClient reads what the data path passes up from a client, until the
// client goes.
func (p *Proxy) readClient(cl *client) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := cl.conn.Read(buf)
		if n > 0 {
			if !p.clientBytes(cl, buf[:n]) {
				return
			}
		}
		if err != nil {
			p.clientGone(cl, false)
			return
		}
	}
}

// clientBytes takes bytes passed up from a client: a Terminate ends it;
// messages for a linked server go to it; otherwise they wait, with the
// client, for an idle server. It returns false when the client is gone.
func (p *Proxy) clientBytes(cl *client, data []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cl.gone || p.closed {
		return false
	}
	cl.buf = append(cl.buf, data...)
	n, last := messageEnd(cl.buf)
	if n < len(cl.buf) && len(cl.buf)-n >= 5 {
		if l := binary.BigEndian.Uint32(cl.buf[n+1:]); l < 4 || l > MaxPassedMessage {
			e := fatal("08P01", "message %q of %d bytes: malformed or over the proxy's limit of %d bytes", cl.buf[n], l, MaxPassedMessage)
			writeMessages(cl.conn, e)
			p.dropClient(cl, false)
			return false
		}
	}
	if typ, ok := invalidFrontendType(cl.buf[:n]); ok {
		// What PostgreSQL says and does (and PgBouncer does): the stream
		// makes no sense, so the connection ends. No server sees it: a
		// pooled backend would die of it.
		writeMessages(cl.conn, fatal("08P01", "invalid frontend message type %d", typ))
		p.dropClient(cl, false)
		return false
	}
	if n == 0 {
		return true
	}
	msgs := append([]byte(nil), cl.buf[:n]...)
	cl.buf = append(cl.buf[:0], cl.buf[n:]...)
	if last == 'X' {
		msgs = msgs[:len(msgs)-5]
	}
	peer, linked, _ := p.dp.Peer(cl.sock)
	if len(msgs) > 0 {
		if s := p.servers[peer]; linked && s != nil {
			s.conn.Write(msgs)
		} else {
			cl.pending = append(cl.pending, msgs...)
			if _, l := messageEnd(msgs); waitsForAnswer(l) && !cl.queued {
				p.serve(cl)
			}
		}
	}
	if last == 'X' {
		p.dropClient(cl, true)
		return false
	}
	return true
}

// serve gives cl an idle server now, or queues it for the next one.
func (p *Proxy) serve(cl *client) {
	for {
		sock, ok, err := p.dp.PopIdle()
		if err != nil || !ok {
			break
		}
		if p.assign(cl, sock) {
			return
		}
	}
	cl.queued = true
	p.waiting = append(p.waiting, cl)
	p.counters.Queued++
}

// assign links cl to the popped server sock and writes the client's
// waiting messages to it. Linking first means the server's answer meets
// the link in the kernel and goes straight to the client.
func (p *Proxy) assign(cl *client, sock Sock) bool {
	s := p.servers[sock]
	if s == nil || s.closed || s.resetting {
		return false
	}
	if err := p.dp.Link(cl.sock, sock); err != nil {
		p.dp.Release(sock)
		return false
	}
	pending := cl.pending
	cl.pending = nil
	if _, err := s.conn.Write(pending); err != nil {
		p.serverLost(s) // tells the client
	}
	return true
}

// drain serves waiting clients while there are idle servers.
func (p *Proxy) drain() {
	for len(p.waiting) > 0 {
		cl := p.waiting[0]
		if cl.gone {
			p.waiting = p.waiting[1:]
			continue
		}
		sock, ok, err := p.dp.PopIdle()
		if err != nil || !ok {
			return
		}
		if p.assign(cl, sock) {
			cl.queued = false
			p.waiting = p.waiting[1:]
		}
	}
}

// eventLoop serves waiting clients when servers go idle; a slow tick
// covers events the ring buffer could not hold.
func (p *Proxy) eventLoop() {
	defer p.wg.Done()
	events := p.dp.Events()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Kind == EventServerHeld {
				p.mu.Lock()
				if s := p.servers[ev.Sock]; !p.closed && (s == nil || s.cancels == 0) {
					// Its cancel was delivered before the kernel held it.
					p.unhold(ev.Sock)
				}
				p.mu.Unlock()
				continue
			}
			if ev.Kind != EventServerIdle {
				continue
			}
		case <-tick.C:
		}
		p.mu.Lock()
		if !p.closed {
			p.drain()
		}
		p.mu.Unlock()
	}
}

// clientGone handles a client that disconnected or failed.
func (p *Proxy) clientGone(cl *client, terminated bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropClient(cl, terminated)
}

// dropClient removes and closes a client. A server it was linked to is
// mid-transaction (or, in session mode, carries its session): after a
// Terminate it is at a message boundary and is reset and reused;
// after a disconnect it may be mid-message, so it is closed and replaced.
func (p *Proxy) dropClient(cl *client, terminated bool) {
	if cl.gone || p.closed {
		return
	}
	cl.gone = true
	delete(p.clients, cl.sock)
	delete(p.byPID, cl.pid)
	peer, linked, _ := p.dp.Peer(cl.sock)
	p.dp.Remove(cl.sock)
	cl.conn.Close()
	s := p.servers[peer]
	if !linked || s == nil {
		return
	}
	if terminated {
		p.reset(s)
		return
	}
	p.dropServer(s)
}

// serverResetQuery is PgBouncer's server_reset_query, after a ROLLBACK
// for a client that left inside a transaction block.
const serverResetQuery = "DISCARD ALL"

// reset takes s out of the data path and runs the reset queries on it;
// readServer puts it back when they are done.
func (p *Proxy) reset(s *server) {
	s.resetting = true
	s.buf = nil
	p.dp.Remove(s.sock)
	if err := writeMessages(s.conn, &pgproto3.Query{String: "ROLLBACK"}, &pgproto3.Query{String: serverResetQuery}); err != nil {
		p.dropServer(s)
		return
	}
	time.AfterFunc(resetTimeout, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if s.resetting && !s.closed && !p.closed {
			p.dropServer(s)
		}
	})
}

// dropServer closes s and opens a replacement.
func (p *Proxy) dropServer(s *server) {
	if s.closed {
		return
	}
	s.closed = true
	delete(p.servers, s.sock)
	p.dp.Remove(s.sock)
	s.conn.Close()
	p.counters.ServersLost++
	p.replace()
}

// serverLost handles a server that closed: its client is told and
// closed, and a replacement is opened.
func (p *Proxy) serverLost(s *server) {
	if s.closed || p.closed {
		return
	}
	peer, linked, _ := p.dp.Peer(s.sock)
	p.dropServer(s)
	if cl := p.clients[peer]; linked && cl != nil {
		writeMessages(cl.conn, fatal("08006", "server connection lost: the PostgreSQL connection serving this client closed (the proxy opens another)"))
		p.dropClient(cl, false)
	}
}

// replace opens a server connection in the background, retrying until it
// succeeds or the proxy closes, to keep the pool full.
func (p *Proxy) replace() {
	if p.closed {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			s, err := p.openServer(p.ctx)
			if err == nil {
				p.mu.Lock()
				if !p.closed {
					err = p.addServer(s)
				} else {
					s.conn.Close()
				}
				p.mu.Unlock()
				if err == nil {
					return
				}
			}
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// addServer hands an idle, logged-in server to the data path.
func (p *Proxy) addServer(s *server) error {
	sock, err := p.dp.AddServer(s.conn)
	if err != nil {
		s.conn.Close()
		return err
	}
	s.sock = sock
	p.servers[sock] = s
	p.wg.Add(1)
	go p.readServer(s)
	p.drain()
	return nil
}

// readServer reads what the data path passes up from a server: answers
// to reset queries, or bytes with no linked client.
func (p *Proxy) readServer(s *server) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.conn.Read(buf)
		p.mu.Lock()
		if n > 0 {
			p.serverBytes(s, buf[:n])
		}
		if err != nil {
			p.serverLost(s)
		}
		stop := s.closed || p.closed
		p.mu.Unlock()
		if stop {
			return
		}
	}
}

func (p *Proxy) serverBytes(s *server, data []byte) {
	if s.closed {
		return
	}
	if !s.resetting {
		// Passed up with no linked client (e.g. a NOTICE on an idle
		// server); a linked client gets them.
		if peer, linked, _ := p.dp.Peer(s.sock); linked {
			if cl := p.clients[peer]; cl != nil {
				cl.conn.Write(data)
			}
		}
		return
	}
	s.buf = append(s.buf, data...)
	for len(s.buf) >= 5 {
		l := int(headerLen(s.buf))
		if l < 4 {
			p.dropServer(s)
			return
		}
		if len(s.buf) < 1+l {
			return
		}
		typ, body := s.buf[0], s.buf[5:1+l]
		s.buf = s.buf[1+l:]
		switch {
		case typ == 'E':
			p.dropServer(s)
			return
		case typ == 'C' && strings.TrimRight(string(body), "\x00") == serverResetQuery:
			s.discarded = true
		case typ == 'Z' && s.discarded:
			s.resetting, s.discarded, s.buf = false, false, nil
			delete(p.servers, s.sock)
			p.counters.ServersReset++
			if sock, err := p.dp.AddServer(s.conn); err != nil {
				s.closed = true
				s.conn.Close()
				p.counters.ServersLost++
				p.replace()
			} else {
				s.sock = sock
				p.servers[sock] = s
				p.drain()
			}
			return
		}
	}
}

// headerLen is the length field of the message at the start of b (0 when
// b is shorter than a header).
func headerLen(b []byte) uint32 {
	if len(b) < 5 {
		return 0
	}
	return binary.BigEndian.Uint32(b[1:])
}
