// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator
//
// Clients run in a closed loop, each on its own UDP socket: send one
// request, wait for its reply (matched by request id; a reply to an
// earlier request that timed out is counted late and skipped), time it,
// send the next. Keys are "key:" and 12 digits, as redis-benchmark's
// key:__rand_int__ makes them, so both stores hold the same keys. Every
// SET of a key writes the same value, derived from the key, so a GET's
// value can be checked byte for byte: a reply with the wrong op, key or
// value, or that does not decode, is counted wrong.

// LoadOptions configures a load run. A run always ends by itself: after
// Duration, or Ops operations when that comes first.
type LoadOptions struct {
	// Dial opens one client socket, connected to kv (Server.DialUDP).
	Dial func() (*net.UDPConn, error)
	// Clients is the number of concurrent clients, each with its own
	// socket and one request in flight (default 1, at most 1024).
	Clients int
	// Keys is the number of distinct keys (default 1000, at most 65536:
	// the store's size).
	Keys int
	// ValueSize is the size of every SET's value (default 3, as
	// redis-benchmark's -d; at most MaxValue).
	ValueSize int
	// GetWeight and SetWeight give the mix: GetWeight GETs for every
	// SetWeight SETs (default 1:1).
	GetWeight, SetWeight int
	// Duration bounds the run (default 1s, at most 1h).
	Duration time.Duration
	// Ops, when not 0, ends the run after this many requests.
	Ops uint64
	// Zipf, when over 1, draws keys from a Zipf distribution with this
	// exponent (key 0 the most popular); otherwise keys are uniform.
	Zipf float64
	// Timeout is how long a client waits for a reply (default 1s); a
	// request not answered by then counts as a timeout.
	Timeout time.Duration
	// Retry resends a request answered LOG_FULL or BUSY (the log ring
	// is full until the WAL writer drains it; the commit lock is taken),
	// as a client that wants its write done would, until it is done or
	// Timeout has passed since the first send. The request's latency
	// spans all its tries; Retries counts the resends.
	Retry bool
	// Preload SETs every key once before the run (retrying LOG_FULL and
	// BUSY for up to 10s), so that GETs find their keys.
	Preload bool
	// Seed makes the key and op sequence repeatable (0: a fixed seed).
	Seed uint64
}

func (o *LoadOptions) defaults() error {
	if o.Dial == nil {
		return errors.New("kv load: no Dial")
	}
	if o.Clients == 0 {
		o.Clients = 1
	}
	if o.Keys == 0 {
		o.Keys = 1000
	}
	if o.ValueSize == 0 {
		o.ValueSize = 3
	}
	if o.GetWeight == 0 && o.SetWeight == 0 {
		o.GetWeight, o.SetWeight = 1, 1
	}
	if o.Duration == 0 {
		o.Duration = time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	switch {
	case o.Clients < 1 || o.Clients > 1024:
		return fmt.Errorf("kv load: %d clients; 1 to 1024", o.Clients)
	case o.Keys < 1 || o.Keys > 65536:
		return fmt.Errorf("kv load: %d keys; 1 to 65536 (the store's size)", o.Keys)
	case o.ValueSize < 1 || o.ValueSize > MaxValue:
		return fmt.Errorf("kv load: values of %d bytes; 1 to %d", o.ValueSize, MaxValue)
	case o.GetWeight < 0 || o.SetWeight < 0:
		return fmt.Errorf("kv load: mix %d:%d has a negative weight", o.GetWeight, o.SetWeight)
	case o.Duration < 0 || o.Duration > time.Hour:
		return fmt.Errorf("kv load: duration %s; up to 1h", o.Duration)
	case o.Timeout < 0:
		return fmt.Errorf("kv load: timeout %s is negative", o.Timeout)
	case o.Zipf != 0 && o.Zipf <= 1:
		return fmt.Errorf("kv load: Zipf exponent %g; it must be over 1 (or 0 for uniform keys)", o.Zipf)
	}
	return nil
}

// OpStats is what one kind of request got.
type OpStats struct {
	Sent     uint64            `json:"sent"`
	Replies  uint64            `json:"replies"` // replies matched to their request
	Statuses map[string]uint64 `json:"statuses"`
	Timeouts uint64            `json:"timeouts"`
	Retries  uint64            `json:"retries"` // resends of LOG_FULL and BUSY (Retry)
	Wrong    uint64            `json:"wrong"`   // replies with the wrong op, key or value, or not kv's
	Errors   uint64            `json:"errors"`  // sends or receives that failed (e.g. ECONNREFUSED)
	Latency  Histogram         `json:"-"`
	P50      time.Duration     `json:"p50_ns"`
	P99      time.Duration     `json:"p99_ns"`
	Max      time.Duration     `json:"max_ns"`
}

// OK is the number of replies with status OK.
func (s *OpStats) OK() uint64 { return s.Statuses[StatusOK.String()] }

func (s *OpStats) merge(o *OpStats) {
	s.Sent += o.Sent
	s.Replies += o.Replies
	s.Timeouts += o.Timeouts
	s.Retries += o.Retries
	s.Wrong += o.Wrong
	s.Errors += o.Errors
	if s.Statuses == nil {
		s.Statuses = map[string]uint64{}
	}
	for k, v := range o.Statuses {
		s.Statuses[k] += v
	}
	s.Latency.Merge(&o.Latency)
}

func (s *OpStats) finish() {
	s.P50, s.P99, s.Max = s.Latency.Percentile(0.50), s.Latency.Percentile(0.99), s.Latency.Max()
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Options LoadOptions   `json:"-"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Replies is the number of requests answered; OpsPerSec is Replies
	// over Elapsed.
	Replies   uint64  `json:"replies"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// Get, Set and All are per kind of request and over both.
	Get OpStats `json:"get"`
	Set OpStats `json:"set"`
	All OpStats `json:"all"`
	// Late counts replies that came after their request had timed out.
	Late uint64 `json:"late"`
	// Preloaded is the number of keys SET before the run.
	Preloaded int `json:"preloaded"`
}

// Key is the name of key i, as redis-benchmark spells it.
func Key(i int) []byte { return fmt.Appendf(nil, "key:%012d", i) }

// valueFor is the value every SET of key i writes.
func valueFor(i, size int) []byte {
	v := make([]byte, size)
	for j := range v {
		v[j] = 'a' + byte((i+j)%26)
	}
	return v
}

// Load runs the load described by opts. It returns an error only when it
// could not run (bad options, no socket, preload failed); what requests
// got, timeouts and wrong replies included, is in the result.
func Load(ctx context.Context, opts LoadOptions) (*LoadResult, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	conns := make([]*net.UDPConn, 0, opts.Clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range opts.Clients {
		c, err := opts.Dial()
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	res := &LoadResult{Options: opts}
	if opts.Preload {
		if err := preload(ctx, conns, opts); err != nil {
			return nil, err
		}
		res.Preloaded = opts.Keys
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	var budget atomic.Int64
	budget.Store(int64(opts.Ops))
	clients := make([]*loadClient, len(conns))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		seed := opts.Seed
		if seed == 0 {
			seed = 0x6b76
		}
		cl := &loadClient{opts: &opts, conn: c, rng: rand.New(rand.NewPCG(seed, uint64(i)+1)), budget: &budget, reqid: uint32(i) << 24}
		if opts.Zipf > 1 {
			cl.zipf = rand.NewZipf(rand.New(rand.NewPCG(seed^0x9e3779b9, uint64(i)+1)), opts.Zipf, 1, uint64(opts.Keys-1))
		}
		clients[i] = cl
		wg.Go(func() { cl.run(ctx) })
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, cl := range clients {
		res.Get.merge(&cl.get)
		res.Set.merge(&cl.set)
		res.Late += cl.late
	}
	res.All.merge(&res.Get)
	res.All.merge(&res.Set)
	res.Get.finish()
	res.Set.finish()
	res.All.finish()
	res.Replies = res.All.Replies
	if res.Elapsed > 0 {
		res.OpsPerSec = float64(res.Replies) / res.Elapsed.Seconds()
	}
	return res, nil
}

// preload SETs every key once, the keys split among the clients.
func preload(ctx context.Context, conns []*net.UDPConn, opts LoadOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second+opts.Timeout)
	defer cancel()
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for ci, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 2048)
			id := uint32(ci)<<24 | 1<<23
			for k := ci; k < opts.Keys; k += len(conns) {
				req := (&Message{Op: OpSet, Key: Key(k), Value: valueFor(k, opts.ValueSize)})
				for {
					id++
					req.ReqID = id
					rep, err := exchange(c, req.Marshal(), id, opts.Timeout, buf, nil)
					if err == nil && rep.Status() == StatusOK {
						break
					}
					if err == nil && rep.Status() != StatusLogFull && rep.Status() != StatusBusy {
						errs[ci] = fmt.Errorf("kv load: preload SET %s: %s", req.Key, rep.Status())
						return
					}
					if ctx.Err() != nil {
						if err == nil {
							err = fmt.Errorf("still %s after 10s (is a WAL writer draining the log?)", rep.Status())
						}
						errs[ci] = fmt.Errorf("kv load: preload SET %s: %w", req.Key, err)
						return
					}
					if err == nil {
						time.Sleep(time.Millisecond)
					}
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// errTimeout is exchange's error when no reply came in time.
var errTimeout = errors.New("no reply in time")

// errNotReply is exchange's error for a datagram that is not a kv message.
var errNotReply = errors.New("not a kv reply")

// exchange sends req (request id id) on c and waits up to timeout for
// the reply with that id; replies to other ids are counted in *late (when
// not nil) and skipped. The reply's fields point into buf.
func exchange(c *net.UDPConn, req []byte, id uint32, timeout time.Duration, buf []byte, late *uint64) (*Message, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := c.Write(req); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errTimeout
			}
			return nil, fmt.Errorf("receive: %w", err)
		}
		m, err := Unmarshal(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNotReply, err)
		}
		if m.ReqID != id {
			if late != nil {
				(*late)++
			}
			continue
		}
		return m, nil
	}
}

// loadClient is one client of a run, with its own counters.
type loadClient struct {
	opts     *LoadOptions
	conn     *net.UDPConn
	rng      *rand.Rand
	zipf     *rand.Zipf
	budget   *atomic.Int64
	reqid    uint32
	get, set OpStats
	late     uint64
}

func (cl *loadClient) run(ctx context.Context) {
	o := cl.opts
	buf := make([]byte, 2048)
	values := map[int][]byte{}
	value := func(k int) []byte {
		v, ok := values[k]
		if !ok {
			v = valueFor(k, o.ValueSize)
			values[k] = v
		}
		return v
	}
	cl.get.Statuses, cl.set.Statuses = map[string]uint64{}, map[string]uint64{}
	total := o.GetWeight + o.SetWeight
	for ctx.Err() == nil {
		if o.Ops > 0 && cl.budget.Add(-1) < 0 {
			return
		}
		k := cl.key()
		req := &Message{Op: OpGet, Key: Key(k)}
		st := &cl.get
		if cl.rng.IntN(total) >= o.GetWeight {
			req.Op, req.Value, st = OpSet, value(k), &cl.set
		}
		st.Sent++
		start := time.Now()
		rep, err := cl.do(req, start, buf, st)
		elapsed := time.Since(start)
		switch {
		case errors.Is(err, errTimeout):
			st.Timeouts++
			continue
		case errors.Is(err, errNotReply):
			st.Wrong++
			continue
		case err != nil:
			st.Errors++
			continue
		}
		st.Replies++
		st.Latency.Add(elapsed)
		st.Statuses[rep.Status().String()]++
		if !replyRight(req, rep, value(k)) {
			st.Wrong++
		}
	}
}

// do sends req and waits for its reply; with Retry it sends it again
// (under a new request id) while the reply is LOG_FULL or BUSY and the
// request's time is not up, backing off a little from the second resend
// on so that the WAL writer gets the CPU it needs to make room.
func (cl *loadClient) do(req *Message, start time.Time, buf []byte, st *OpStats) (*Message, error) {
	o := cl.opts
	for try := 0; ; try++ {
		cl.reqid++
		req.ReqID = cl.reqid
		left := o.Timeout - time.Since(start)
		if left <= 0 {
			return nil, errTimeout
		}
		rep, err := exchange(cl.conn, req.Marshal(), req.ReqID, left, buf, &cl.late)
		if err != nil || !o.Retry || (rep.Status() != StatusLogFull && rep.Status() != StatusBusy) {
			return rep, err
		}
		st.Retries++
		if try > 0 {
			time.Sleep(time.Duration(min(try, 50)) * 20 * time.Microsecond)
		}
	}
}

func (cl *loadClient) key() int {
	if cl.zipf != nil {
		return int(cl.zipf.Uint64())
	}
	return cl.rng.IntN(cl.opts.Keys)
}

// replyRight checks a reply against its request: same op and key, and a
// GET that found its key has the value every SET of it writes.
func replyRight(req, rep *Message, want []byte) bool {
	if rep.Op != req.Op || !bytes.Equal(rep.Key, req.Key) {
		return false
	}
	switch {
	case req.Op == OpGet && rep.Status() == StatusOK:
		return bytes.Equal(rep.Value, want)
	case req.Op == OpGet && rep.Status() == StatusNotFound, req.Op == OpSet:
		return len(rep.Value) == 0
	}
	return true
}
