// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bpfsh/bpfsh/bpf/kv"
)

// The load generator
//
// Clients run in a closed loop in bpfsh's namespace, each with a UDP
// socket (gets, with memcached's frame header: what the cache answers)
// and a TCP connection (sets: what invalidates). A client draws its
// requests in sequence (the mix, the keys) and keeps up to Depth gets in
// flight on its socket, each under its own request id (memcached echoes
// it, so does the cache): it sends every get its window has room for in
// one batch, takes every reply queued in one batch (loadgen_udp.go),
// matches each to its get by id and times it from that get's own send,
// then refills the window. Its sets go, in the order drawn, to a second
// goroutine that sends them over the TCP connection one at a time
// (waiting for STORED); when Depth sets are queued the client waits, so
// the mix holds. Keys are key:%012d (16 bytes, see live_room.go) drawn
// uniformly or Zipf-distributed.
//
// Every reply is checked. Each key has a version: a set writes version
// v+1 of it, and the value carries its version (8 hex digits) followed by
// bytes derived from the key and the version, so a value that was never
// written is recognised. The sets of one key are serialised (a per-key
// lock held from send to STORED), so that versions are stored in order.
// A get notes the key's acknowledged version before it is sent; it must
// get that version or a newer one (a set acknowledged before the get
// started must be seen): an older one is Stale, the cache's one failure
// that matters. A reply that does not parse, names another key, or holds
// a value never written is Wrong; "not found" for a preloaded key is
// Missing.

// Keyspace is the keys of a run and what was written to them; runs
// sharing one see each other's writes.
type Keyspace struct {
	keys      [][]byte
	gets      [][]byte // "get <key>\r\n"
	valueSize int
	state     []keyState
}

type keyState struct {
	mu      sync.Mutex    // held by a set from send to STORED
	written atomic.Uint64 // the newest version sent
	acked   atomic.Uint64 // the newest version memcached acknowledged
}

// DefaultDepth is the gets a client keeps in flight unless told
// (measured: see README, cache bench); MaxDepth the most it may.
const (
	DefaultDepth = 16
	MaxDepth     = 256
)

// MinValueSize is the smallest value the load generator writes: the
// version and a separator.
const MinValueSize = 9

// NewKeyspace makes n keys (key:%012d) with values of size bytes.
func NewKeyspace(n, size int) (*Keyspace, error) {
	if n < 1 || n > 1<<20 {
		return nil, fmt.Errorf("cache load: %d keys; 1 to %d", n, 1<<20)
	}
	if size < MinValueSize || size > MaxValue {
		return nil, fmt.Errorf("cache load: values of %d bytes; %d to %d (the cache holds up to %d)", size, MinValueSize, MaxValue, MaxValue)
	}
	ks := &Keyspace{keys: make([][]byte, n), gets: make([][]byte, n), valueSize: size, state: make([]keyState, n)}
	for i := range n {
		ks.keys[i] = fmt.Appendf(nil, "key:%012d", i)
		ks.gets[i] = fmt.Appendf(nil, "get key:%012d\r\n", i)
	}
	return ks, nil
}

// Key is key i's name.
func (ks *Keyspace) Key(i int) []byte { return ks.keys[i] }

// Len is the number of keys.
func (ks *Keyspace) Len() int { return len(ks.keys) }

// Value is version ver of key i's value.
func (ks *Keyspace) Value(i int, ver uint64) []byte {
	v := make([]byte, ks.valueSize)
	ks.fillValue(v, i, ver)
	return v
}

func (ks *Keyspace) fillValue(v []byte, i int, ver uint64) {
	const hex = "0123456789abcdef"
	for j := range 8 {
		v[j] = hex[(ver>>(28-4*j))&15]
	}
	v[8] = '-'
	for j := 9; j < len(v); j++ {
		v[j] = 'a' + byte((uint64(i)+ver+uint64(j))%26)
	}
}

// version reads the version of a value of key i; ok is false when the
// value is not one Value makes.
func (ks *Keyspace) version(i int, v []byte) (uint64, bool) {
	if len(v) != ks.valueSize {
		return 0, false
	}
	ver, err := strconv.ParseUint(string(v[:8]), 16, 32)
	if err != nil || v[8] != '-' {
		return 0, false
	}
	for j := 9; j < len(v); j++ {
		if v[j] != 'a'+byte((uint64(i)+ver+uint64(j))%26) {
			return 0, false
		}
	}
	return ver, true
}

// Acked is the newest version of key i memcached acknowledged.
func (ks *Keyspace) Acked(i int) uint64 { return ks.state[i].acked.Load() }

// Set writes the next version of key i through c, holding the key's set
// lock until memcached acknowledges it, and returns that version.
func (ks *Keyspace) Set(c *TCPClient, i int, timeout time.Duration, buf []byte) (uint64, error) {
	st := &ks.state[i]
	st.mu.Lock()
	defer st.mu.Unlock()
	ver := st.written.Load() + 1
	st.written.Store(ver)
	buf = buf[:ks.valueSize]
	ks.fillValue(buf, i, ver)
	if err := c.Set(ks.keys[i], buf, timeout); err != nil {
		return ver, err
	}
	st.acked.Store(ver)
	return ver, nil
}

// Preload writes version 1 of every key not written yet, pipelined over
// clients TCP connections.
func (ks *Keyspace) Preload(ctx context.Context, addr netip.AddrPort, clients int) error {
	clients = max(min(clients, 16), 1)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for ci := range clients {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
			if err != nil {
				errs[ci] = fmt.Errorf("cache load: preload: %w", err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			var mine []int
			for i := ci; i < len(ks.keys); i += clients {
				if ks.state[i].written.Load() == 0 {
					mine = append(mine, i)
				}
			}
			done := make(chan error, 1)
			go func() {
				rd := bufio.NewReader(c)
				for _, i := range mine {
					line, err := rd.ReadString('\n')
					if err != nil || line != "STORED\r\n" {
						done <- fmt.Errorf("cache load: preload set %s: %q %v", ks.keys[i], line, err)
						return
					}
					ks.state[i].acked.Store(1)
				}
				done <- nil
			}()
			w := bufio.NewWriter(c)
			for _, i := range mine {
				ks.state[i].written.Store(1)
				fmt.Fprintf(w, "set %s 0 0 %d\r\n%s\r\n", ks.keys[i], ks.valueSize, ks.Value(i, 1))
				if ctx.Err() != nil {
					break
				}
			}
			if err := w.Flush(); err != nil {
				errs[ci] = fmt.Errorf("cache load: preload: %w", err)
				return
			}
			errs[ci] = <-done
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// LoadOptions configures a load run.
type LoadOptions struct {
	// Addr is memcached's address (UDP and TCP).
	Addr netip.AddrPort
	// Keys is the keyspace (NewKeyspace), preloaded (Keyspace.Preload).
	Keys *Keyspace
	// Clients is the number of concurrent clients (default 8, 1 to 256).
	Clients int
	// Depth is the gets each client keeps in flight on its UDP socket
	// (default DefaultDepth, 1 to MaxDepth).
	Depth int
	// GetWeight and SetWeight give the mix (default 30:1, as BMC).
	GetWeight, SetWeight int
	// Zipf is the keys' skew: 0 uniform, else Zipf with this exponent
	// (BMC used 0.99); key 0 is the most popular. 1 itself is refused.
	Zipf float64
	// Duration bounds the run (default 1s, at most 1h).
	Duration time.Duration
	// Ops, when not 0, ends the run after this many requests.
	Ops uint64
	// Timeout is how long a request waits for its reply (default 500ms).
	Timeout time.Duration
	// Seed makes the key and op sequence repeatable (0: a fixed seed).
	Seed uint64
}

func (o *LoadOptions) defaults() error {
	if o.Keys == nil {
		return errors.New("cache load: no keyspace")
	}
	if !o.Addr.IsValid() {
		return errors.New("cache load: no memcached address")
	}
	if o.Clients == 0 {
		o.Clients = 8
	}
	if o.Depth == 0 {
		o.Depth = DefaultDepth
	}
	if o.GetWeight == 0 && o.SetWeight == 0 {
		o.GetWeight, o.SetWeight = 30, 1
	}
	if o.Duration == 0 {
		o.Duration = time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 500 * time.Millisecond
	}
	switch {
	case o.Clients < 1 || o.Clients > 256:
		return fmt.Errorf("cache load: %d clients; 1 to 256", o.Clients)
	case o.Depth < 1 || o.Depth > MaxDepth:
		return fmt.Errorf("cache load: depth %d; 1 to %d gets in flight per client", o.Depth, MaxDepth)
	case o.GetWeight < 0 || o.SetWeight < 0 || o.GetWeight+o.SetWeight == 0:
		return fmt.Errorf("cache load: mix %d:%d; weights are 0 or more, not both 0", o.GetWeight, o.SetWeight)
	case o.Zipf < 0 || o.Zipf == 1 || o.Zipf > 10:
		return fmt.Errorf("cache load: Zipf skew %g; 0 (uniform), or above 0 and up to 10 except 1", o.Zipf)
	case o.Duration < 0 || o.Duration > time.Hour:
		return fmt.Errorf("cache load: duration %s; up to 1h", o.Duration)
	case o.Timeout < 0:
		return fmt.Errorf("cache load: timeout %s is negative", o.Timeout)
	}
	return nil
}

// OpStats is the count and latencies of one kind of reply.
type OpStats struct {
	Count   uint64        `json:"count"`
	Latency kv.Histogram  `json:"-"`
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
}

func (s *OpStats) add(d time.Duration) {
	s.Count++
	s.Latency.Add(d)
}

func (s *OpStats) merge(o *OpStats) {
	s.Count += o.Count
	s.Latency.Merge(&o.Latency)
}

func (s *OpStats) finish() {
	s.P50, s.P99, s.Max = s.Latency.Percentile(0.50), s.Latency.Percentile(0.99), s.Latency.Max()
}

// LoadResult is what a load run measured and found.
type LoadResult struct {
	Elapsed time.Duration `json:"elapsed_ns"`
	// Ops is the requests answered rightly (gets with a value, sets
	// STORED); OpsPerSec is Ops over Elapsed.
	Ops       uint64  `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// Get is every get answered; Hit those the cache answered (by the
	// reply's TTL), Server those memcached answered; Set the sets
	// STORED.
	Get    OpStats `json:"get"`
	Hit    OpStats `json:"hit"`
	Server OpStats `json:"server"`
	Set    OpStats `json:"set"`
	// Stale counts gets that returned an older version than one
	// acknowledged before the get was sent; StaleExamples shows a few.
	Stale         uint64   `json:"stale"`
	StaleHits     uint64   `json:"stale_hits"` // of Stale, those the cache answered
	StaleExamples []string `json:"stale_examples,omitempty"`
	// Wrong counts replies that do not parse, name another key or hold a
	// value never written; Missing gets of preloaded keys not found.
	Wrong   uint64 `json:"wrong"`
	Missing uint64 `json:"missing"`
	// Timeouts and Errors are requests with no reply in time and failed
	// sends or receives; Late replies to requests that had timed out.
	Timeouts uint64 `json:"timeouts"`
	Errors   uint64 `json:"errors"`
	Late     uint64 `json:"late"`
}
