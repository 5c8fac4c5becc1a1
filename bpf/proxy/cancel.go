// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
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
//
// The request reaches the backend some time after it is routed (a new
// connection, PostgreSQL forks for it). Meanwhile the client's query may
// end and, in transaction pooling, its server would go to the next
// client, whose query the cancel would then stop. So the server is held
// (Datapath.Hold) until PostgreSQL has signalled the backend: the kernel
// unlinks it at the end of the transaction but keeps it off the idle
// stack, and unhold releases it. A backend signalled while it waits for a
// command ignores the cancel, so once released it is safe to reuse.
func (p *Proxy) forwardCancel(body []byte) {
	var req pgproto3.CancelRequest
	if req.Decode(body) != nil {
		return
	}
	p.mu.Lock()
	target := p.cancelTarget(req.ProcessID, req.SecretKey)
	if target == nil {
		p.mu.Unlock()
		return
	}
	fwd := pgproto3.CancelRequest{ProcessID: target.pid, SecretKey: target.key}
	target.cancels++
	p.counters.Cancels++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if target.cancels--; target.cancels == 0 && !p.closed {
			p.unhold(target.sock)
		}
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(p.ctx, cancelTimeout)
	defer cancel()
	dial := p.dialCancel
	if dial == nil {
		dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", p.opts.Server)
		}
	}
	c, err := dial(ctx)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(cancelTimeout))
	if writeMessages(c, &fwd) != nil {
		return
	}
	// PostgreSQL closes the connection once it has signalled the backend.
	var b [1]byte
	c.Read(b[:])
}

// cancelTarget is the server a client's cancel request (pid, key) goes
// to: the one linked to the client, held for the cancel. nil: no such
// client, or its server's work is done (nothing to cancel). p.mu is held.
func (p *Proxy) cancelTarget(pid, key uint32) *server {
	cl := p.byPID[pid]
	if cl == nil || cl.key != key || p.closed {
		return nil
	}
	peer, linked, err := p.dp.Peer(cl.sock)
	target := p.servers[peer]
	if err != nil || !linked || target == nil || target.closed {
		return nil
	}
	if target.cancels > 0 {
		return target // held already
	}
	if p.dp.Hold(target.sock) != nil {
		return nil
	}
	// The kernel may have unlinked the server between the two looks:
	// then the query is over and the server maybe idle or in use by
	// another client. The kernel reads the hold after clearing the link,
	// so a link still there now means it will see the hold.
	if now, linked, err := p.dp.Peer(cl.sock); err != nil || !linked || now != peer {
		p.unhold(target.sock)
		return nil
	}
	return target
}

// unhold ends a server's hold for cancel requests; a server the kernel
// held back meanwhile goes to the idle stack and waiting clients are
// served. p.mu is held.
func (p *Proxy) unhold(sock Sock) {
	if released, err := p.dp.Unhold(sock); err == nil && released {
		p.drain()
	}
}
