// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cilium/ebpf"
)

// XDP return codes the client sees.
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// ErrPassed is returned when xdp_kv passes a frame to the stack rather than
// answering it: it was not a kv request (wrong port, magic or version).
var ErrPassed = errors.New("xdp_kv passed the frame on (XDP_PASS): not a kv request it answers")

// ErrDropped is returned when xdp_kv drops a frame (XDP_DROP): its reply
// did not fit the frame buffer.
var ErrDropped = errors.New("xdp_kv dropped the frame (XDP_DROP): the reply did not fit")

// Client sends kv requests to a loaded xdp_kv program with
// BPF_PROG_TEST_RUN, with no network involved: each request is built into
// a frame, run through the program, and its XDP_TX reply checked (addresses
// and ports swapped, lengths and checksums right, request id and op echoed)
// and decoded. A Client may be used from several goroutines at once; each
// test run executes on the calling thread's CPU, so they run the program
// in parallel as real traffic on several queues would.
type Client struct {
	Prog *ebpf.Program
	// Addr addresses the request frames; DefaultAddressing unless set.
	// The destination port must be the program's kv_port.
	Addr  Addressing
	reqid atomic.Uint32
}

// NewClient returns a client of prog (xdp_kv) with DefaultAddressing.
func NewClient(prog *ebpf.Program) *Client {
	return &Client{Prog: prog, Addr: DefaultAddressing()}
}

// maxFrame is the output room offered to a test run beyond the input's
// size: a reply grows its request by at most 1300 bytes. (XDP test runs
// have 3520 bytes of linear data; a longer input comes back whole, with
// its fragments.)
const maxFrame = 4096

// Exchange runs one frame through the program and returns its verdict and
// the frame as the program left it.
func (c *Client) Exchange(frame []byte) (uint32, []byte, error) {
	out := make([]byte, len(frame)+maxFrame)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out, Repeat: 1}
	ret, err := c.Prog.Run(opts)
	if err != nil {
		return 0, nil, fmt.Errorf("test-run xdp_kv: %w", err)
	}
	return ret, opts.DataOut, nil
}

// Do sends req and returns the decoded reply. A zero ReqID is replaced by
// the client's next one. It fails when the program does not answer with
// XDP_TX (ErrPassed, ErrDropped) or the reply frame is wrong in any way.
func (c *Client) Do(req *Message) (*Message, error) {
	if req.ReqID == 0 {
		req.ReqID = c.reqid.Add(1)
	}
	_, reply, err := c.DoRaw(req.Marshal())
	if err != nil {
		return nil, err
	}
	if reply.ReqID != req.ReqID || reply.Op != req.Op {
		return nil, fmt.Errorf("kv reply to %s request %d is for %s request %d", req.Op, req.ReqID, reply.Op, reply.ReqID)
	}
	return reply, nil
}

// DoRaw sends payload, any bytes, as a UDP datagram to the program and
// returns the reply frame and its decoded payload.
func (c *Client) DoRaw(payload []byte) ([]byte, *Message, error) {
	ret, out, err := c.Exchange(c.Addr.Frame(payload))
	if err != nil {
		return nil, nil, err
	}
	switch ret {
	case xdpTX:
	case xdpPass:
		return out, nil, ErrPassed
	case xdpDrop:
		return out, nil, ErrDropped
	default:
		return out, nil, fmt.Errorf("xdp_kv returned %d, not XDP_TX", ret)
	}
	m, err := CheckReply(c.Addr, out)
	return out, m, err
}

// CheckReply checks that frame is a well-formed reply to a request sent
// with addressing req (everything swapped, checksums right) and decodes
// its kv message.
func CheckReply(req Addressing, frame []byte) (*Message, error) {
	a, payload, err := ParseFrame(frame)
	if err != nil {
		return nil, fmt.Errorf("kv reply frame: %w", err)
	}
	if want := req.Reply(); !a.equal(want) {
		return nil, fmt.Errorf("kv reply addressed %v, want %v", a, want)
	}
	m, err := Unmarshal(payload)
	if err != nil {
		return nil, fmt.Errorf("kv reply: %w", err)
	}
	return m, nil
}

// Get reads key, in transaction txid or (0) on its own.
func (c *Client) Get(txid uint64, key []byte) (*Message, error) {
	return c.Do(&Message{Op: OpGet, TxID: txid, Key: key})
}

// Set writes key, in transaction txid or (0) committed on its own.
func (c *Client) Set(txid uint64, key, value []byte) (*Message, error) {
	return c.Do(&Message{Op: OpSet, TxID: txid, Key: key, Value: value})
}

// Del deletes key, in transaction txid or (0) committed on its own.
func (c *Client) Del(txid uint64, key []byte) (*Message, error) {
	return c.Do(&Message{Op: OpDel, TxID: txid, Key: key})
}

// Begin starts a transaction; its id is the reply's TxID.
func (c *Client) Begin() (*Message, error) { return c.Do(&Message{Op: OpBegin}) }

// Commit commits transaction txid.
func (c *Client) Commit(txid uint64) (*Message, error) {
	return c.Do(&Message{Op: OpCommit, TxID: txid})
}

// Abort drops transaction txid.
func (c *Client) Abort(txid uint64) (*Message, error) {
	return c.Do(&Message{Op: OpAbort, TxID: txid})
}

// Scan lists keys that start with prefix; see ScanEntries and ScanMore.
func (c *Client) Scan(prefix []byte) (*Message, error) {
	return c.Do(&Message{Op: OpScan, Key: prefix})
}
