// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// A checking client is one UDP socket in the served namespace, one request
// in flight, that records every transaction it runs into the history. It
// sends with the load generator's exchange (request ids, late replies
// skipped) and checks each reply against its request: a reply for another
// op, key or transaction is itself a violation.

// errGaveUp ends a transaction the client stopped: a request went
// unanswered, or answered something that makes going on pointless.
var errGaveUp = errors.New("transaction ended")

// checkClient is one client of a check run.
type checkClient struct {
	id      int
	conn    *net.UDPConn
	timeout time.Duration
	epoch   time.Time // the run's start: times are from it
	reqid   uint32
	buf     []byte
	txns    []*Txn
	wrong   []Violation // replies that did not answer their request
	late    uint64
	// expiry is kv's idle timeout: a transaction answered NO_TXN sooner
	// than this after its last use was removed while live.
	expiry time.Duration
	// n numbers transactions across clients in invocation order.
	n *counter
}

// counter hands out T numbers.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// maxHistory bounds a run's history: kv commits some hundred thousand
// transactions a second, and a history is kept whole until it is checked.
// A run that reaches it ends early (and says so).
const maxHistory = 1_000_000

// running says whether the client goes on: the run's time is not up and
// the history has room.
func (c *checkClient) running(ctx context.Context) bool {
	return ctx.Err() == nil && c.n.count() < maxHistory
}

func newCheckClient(id int, conn *net.UDPConn, timeout time.Duration, epoch time.Time, n *counter) *checkClient {
	return &checkClient{id: id, conn: conn, timeout: timeout, epoch: epoch, reqid: uint32(id) << 24,
		buf: make([]byte, 2048), expiry: time.Duration(defaultTxnTimeoutNS), n: n}
}

// defaultTxnTimeoutNS is kv_txn_timeout_ns as the embedded object sets it.
const defaultTxnTimeoutNS = 5_000_000_000

func (c *checkClient) now() time.Duration { return time.Since(c.epoch) }

// send sends req once and returns its reply, errTimeout when none came in
// time, or errGaveUp after recording a reply that does not answer req.
func (c *checkClient) send(req *Message) (*Message, error) {
	c.reqid++
	req.ReqID = c.reqid
	rep, err := exchange(c.conn, req.Marshal(), req.ReqID, c.timeout, c.buf, &c.late)
	if err != nil {
		return nil, err
	}
	if why := mismatch(req, rep); why != "" {
		c.wrong = append(c.wrong, Violation{Kind: "wrong-reply", Text: fmt.Sprintf("client %d: %s", c.id, why)})
		return nil, errGaveUp
	}
	return rep, nil
}

// mismatch says how rep fails to answer req ("" when it does).
func mismatch(req, rep *Message) string {
	st := rep.Status()
	switch {
	case rep.Op != req.Op:
		return fmt.Sprintf("%s %q was answered by a %s reply", req.Op, req.Key, rep.Op)
	case st != StatusBadRequest && st != StatusTooBig && !bytes.Equal(rep.Key, req.Key):
		return fmt.Sprintf("%s %q was answered for key %q", req.Op, req.Key, rep.Key)
	case req.Op != OpBegin && rep.TxID != req.TxID:
		return fmt.Sprintf("%s %q in txid %d was answered for txid %d", req.Op, req.Key, req.TxID, rep.TxID)
	case req.Op == OpGet && st == StatusOK, req.Op == OpScan:
	case len(rep.Value) != 0:
		return fmt.Sprintf("%s %q was answered %s with a %d-byte value", req.Op, req.Key, st, len(rep.Value))
	}
	return ""
}

// retry sends req until it is answered with something other than BUSY
// or LOG_FULL (nothing happened: try again) or until the client's timeout
// has passed since the first send.
func (c *checkClient) retry(req *Message) (*Message, error) {
	start := time.Now()
	for try := 0; ; try++ {
		rep, err := c.send(req)
		if err != nil {
			return nil, err
		}
		if st := rep.Status(); st != StatusBusy && st != StatusLogFull {
			return rep, nil
		}
		if time.Since(start) > c.timeout {
			return rep, nil
		}
		time.Sleep(time.Duration(min(try+1, 50)) * 20 * time.Microsecond)
	}
}

// auto records and runs one request on its own (no transaction): a GET,
// or a SET that commits by itself. BUSY and LOG_FULL are retried.
func (c *checkClient) auto(kind string, op HistOp) *Txn {
	t := &Txn{N: c.n.next(), Client: c.id, Kind: kind, Auto: true, Start: c.now()}
	c.txns = append(c.txns, t)
	req := &Message{Op: op.Op, Key: []byte(op.Key)}
	if op.Op == OpSet {
		req.Value = []byte(op.Value)
	}
	rep, err := c.retry(req)
	t.End = c.now()
	switch {
	case err != nil && op.Op == OpSet:
		// Sent, unanswered: it may have been installed.
		t.Ops, t.Outcome = []HistOp{op}, Unknown
	case err != nil:
		t.Outcome, t.Reason = Aborted, "timeout"
	case rep.Status() == StatusOK || op.Op == OpGet && rep.Status() == StatusNotFound:
		if op.Op == OpGet {
			op.Found, op.Value = rep.Status() == StatusOK, string(rep.Value)
		}
		t.Ops, t.Outcome = []HistOp{op}, Committed
	default:
		t.Outcome, t.Reason = Aborted, rep.Status().String()
	}
	return t
}

// txnRun is a transaction in progress.
type txnRun struct {
	c        *checkClient
	t        *Txn
	lastUsed time.Time
	own      map[string]string // what the transaction read or wrote, by key
}

// begin opens a transaction (BUSY retried); nil when none could be had,
// which is recorded as an aborted attempt only if it got an id.
func (c *checkClient) begin(kind string) *txnRun {
	start := c.now()
	rep, err := c.retry(&Message{Op: OpBegin})
	if err != nil || rep.Status() != StatusOK || rep.TxID == 0 {
		return nil
	}
	t := &Txn{N: c.n.next(), Client: c.id, Kind: kind, TxID: rep.TxID, Start: start}
	c.txns = append(c.txns, t)
	return &txnRun{c: c, t: t, lastUsed: time.Now(), own: map[string]string{}}
}

// end records how the transaction ended, and whether NO_TXN came while it
// was live: kv removes only transactions idle past kv_txn_timeout_ns.
func (r *txnRun) end(o Outcome, reason string) error {
	r.t.Outcome, r.t.Reason, r.t.End = o, reason, r.c.now()
	if reason == StatusNoTxn.String() {
		if idle := time.Since(r.lastUsed); idle < r.c.expiry-time.Second {
			r.c.wrong = append(r.c.wrong, violation("expired-live", []*Txn{r.t},
				"%s was answered NO_TXN %s after its previous request was answered, far within kv_txn_timeout_ns (%s): a live transaction was removed",
				r.t.Name(), idle, r.c.expiry))
		}
	}
	return errGaveUp
}

// request sends one request of the transaction, retrying BUSY; a timeout
// or a status that ends the transaction records its end and returns
// errGaveUp (after an ABORT, when the transaction may still be open).
func (r *txnRun) request(req *Message) (*Message, error) {
	req.TxID = r.t.TxID
	rep, err := r.c.retry(req)
	if err != nil {
		r.abort()
		return nil, r.end(Aborted, "timeout")
	}
	r.lastUsed = time.Now()
	switch st := rep.Status(); st {
	case StatusOK, StatusNotFound:
		return rep, nil
	case StatusNoTxn, StatusTxnFull, StatusConflict:
		return nil, r.end(Aborted, st.String())
	default:
		r.abort()
		return nil, r.end(Aborted, st.String())
	}
}

// get reads key in the transaction.
func (r *txnRun) get(key string) (string, bool, error) {
	rep, err := r.request(&Message{Op: OpGet, Key: []byte(key)})
	if err != nil {
		return "", false, err
	}
	op := HistOp{Op: OpGet, Key: key, Found: rep.Status() == StatusOK, Value: string(rep.Value)}
	r.t.Ops = append(r.t.Ops, op)
	r.own[key] = op.Value
	return op.Value, op.Found, nil
}

// set writes key in the transaction.
func (r *txnRun) set(key, value string) error {
	if _, err := r.request(&Message{Op: OpSet, Key: []byte(key), Value: []byte(value)}); err != nil {
		return err
	}
	r.t.Ops = append(r.t.Ops, HistOp{Op: OpSet, Key: key, Value: value})
	r.own[key] = value
	return nil
}

// commit commits the transaction: OK, an abort by status, or Unknown when
// the reply never came.
func (r *txnRun) commit() Outcome {
	rep, err := r.c.retry(&Message{Op: OpCommit, TxID: r.t.TxID})
	switch {
	case err != nil && errors.Is(err, errGaveUp):
		r.end(Unknown, "wrong reply")
	case err != nil:
		r.end(Unknown, "")
	case rep.Status() == StatusOK:
		r.end(Committed, "")
	case rep.Status() == StatusBusy, rep.Status() == StatusLogFull, rep.Status() == StatusStoreFull:
		// Still open after the retries: it has not committed.
		r.abort()
		r.end(Aborted, rep.Status().String())
	default:
		r.end(Aborted, rep.Status().String())
	}
	return r.t.Outcome
}

// abort sends ABORT, once, without waiting long: the transaction is over
// for the client whatever the answer (an unanswered ABORT leaves it to
// expire, and it cannot commit without a COMMIT).
func (r *txnRun) abort() {
	r.c.reqid++
	req := &Message{Op: OpAbort, TxID: r.t.TxID, ReqID: r.c.reqid}
	exchange(r.c.conn, req.Marshal(), req.ReqID, r.c.timeout, r.c.buf, &r.c.late)
}

// cancel aborts the transaction on the client's decision.
func (r *txnRun) cancel() {
	r.abort()
	r.end(Aborted, "client-abort")
}
