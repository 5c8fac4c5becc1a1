package proxy

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Cancel requests: a client knows only the BackendKeyData the proxy gave
// it. A CancelRequest carrying it goes, on a new connection, to the
// server the client is linked to now, with that server's own process id
// and key. A client with no server has nothing running to cancel.

// cancelTimeout bounds delivering one cancel request.
const cancelTimeout = 5 * time.Second

// forwardCancel routes the body of a CancelRequest packet.
func (p *Proxy) forwardCancel(body []byte) {
	var req pgproto3.CancelRequest
	if req.Decode(body) != nil {
		return
	}
	p.mu.Lock()
	cl := p.byPID[req.ProcessID]
	var target *server
	if cl != nil && cl.key == req.SecretKey && !p.closed {
		if peer, linked, err := p.dp.Peer(cl.sock); err == nil && linked {
			target = p.servers[peer]
		}
	}
	if target == nil {
		p.mu.Unlock()
		return
	}
	fwd := pgproto3.CancelRequest{ProcessID: target.pid, SecretKey: target.key}
	p.counters.Cancels++
	p.mu.Unlock()
	c, err := net.DialTimeout("tcp", p.opts.Server, cancelTimeout)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(cancelTimeout))
	if writeMessages(c, &fwd) != nil {
		return
	}
	// The server closes the connection once it has handled the request.
	var b [1]byte
	c.Read(b[:])
}
