// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Load runs the load described by o. It returns an error only when it
// could not run (bad options, no socket); what requests got is in the
// result.
func Load(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	clients := make([]*loadClient, o.Clients)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.close()
			}
		}
	}()
	seed := o.Seed
	if seed == 0 {
		seed = 0x6d63
	}
	for i := range clients {
		cl, err := newLoadClient(&o, i, seed)
		if cl != nil {
			clients[i] = cl
		}
		if err != nil {
			return nil, err
		}
	}
	// Each client is two goroutines that wait in blocking system calls
	// (recvmmsg, TCP read). With fewer Ps than those, a goroutine whose
	// reply came waits for sysmon to take a P back from one still
	// blocked (20us to 10ms) while CPUs idle: measured, that starved
	// the clients and made runs vary twofold. With a P each, the kernel
	// alone schedules them, like threads.
	if procs := runtime.GOMAXPROCS(0); procs < 2*o.Clients+1 {
		runtime.GOMAXPROCS(2*o.Clients + 1)
		defer runtime.GOMAXPROCS(procs)
	}
	var budget atomic.Int64
	budget.Store(int64(o.Ops))
	var wg sync.WaitGroup
	start := time.Now()
	for _, cl := range clients {
		wg.Go(func() { cl.run(ctx, &budget, start, o.Duration) })
	}
	wg.Wait()
	res := &LoadResult{Elapsed: time.Since(start)}
	for _, cl := range clients {
		for _, r := range []*LoadResult{&cl.res, &cl.setRes} {
			res.Get.merge(&r.Get)
			res.Hit.merge(&r.Hit)
			res.Server.merge(&r.Server)
			res.Set.merge(&r.Set)
			res.Stale += r.Stale
			res.StaleHits += r.StaleHits
			for _, e := range r.StaleExamples {
				if len(res.StaleExamples) < 5 {
					res.StaleExamples = append(res.StaleExamples, e)
				}
			}
			res.Wrong += r.Wrong
			res.Missing += r.Missing
			res.Timeouts += r.Timeouts
			res.Errors += r.Errors
			res.Late += r.Late
		}
	}
	for _, s := range []*OpStats{&res.Get, &res.Hit, &res.Server, &res.Set} {
		s.finish()
	}
	res.Ops = res.Get.Count - res.Missing + res.Set.Count
	if res.Elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / res.Elapsed.Seconds()
	}
	return res, nil
}

// inflight is a get sent and not yet answered (or timed out).
type inflight struct {
	busy bool
	id   uint16
	key  int
	lo   uint64        // the key's acknowledged version when it was sent
	sent time.Duration // since the run's start
}

// loadClient is one client of a run, with its own sockets and counters:
// res is its get loop's, setRes its set goroutine's.
type loadClient struct {
	o     *LoadOptions
	udp   *udpBatch
	tcp   *TCPClient
	rng   *rand.Rand
	keys  keyDist
	value []byte
	res   LoadResult

	setRes LoadResult

	// The window: slot i holds the get whose request id has i in its low
	// idBits bits (the high bits count requests, so that a late reply
	// to an earlier occupant of the slot is told apart); free lists the
	// slots without a get.
	start  time.Time // the run's
	slots  []inflight
	free   []int
	idBits uint
	nextID uint16
	reqs   [][]byte // a datagram buffer per slot
	batch  [][]byte // the datagrams of the batch being sent
	sentTo []int    // their slots
}

func newLoadClient(o *LoadOptions, i int, seed uint64) (*loadClient, error) {
	// A receive waits at most a fraction of the timeout, so that gets
	// that got no reply are found soon after their time is up.
	wait := min(max(o.Timeout/4, time.Millisecond), 50*time.Millisecond)
	u, err := dialUDPBatch(o.Addr, o.Depth, wait)
	if err != nil {
		return nil, err
	}
	cl := &loadClient{o: o, udp: u, rng: rand.New(rand.NewPCG(seed, uint64(i)+1)), value: make([]byte, MaxValue),
		slots: make([]inflight, o.Depth), free: make([]int, 0, o.Depth), reqs: make([][]byte, o.Depth),
		batch: make([][]byte, 0, o.Depth), sentTo: make([]int, 0, o.Depth),
		idBits: uint(bits.Len(uint(o.Depth - 1))), nextID: uint16(seed>>3) + uint16(i)<<7}
	for s := o.Depth - 1; s >= 0; s-- {
		cl.free = append(cl.free, s)
		cl.reqs[s] = make([]byte, 0, FrameHeaderLen+len("get \r\n")+MaxKey)
	}
	cl.keys = newKeyDist(rand.New(rand.NewPCG(seed^0x9e3779b9, uint64(i)+1)), o.Keys.Len(), o.Zipf)
	if cl.tcp, err = DialTCP(o.Addr); err != nil {
		return cl, err
	}
	return cl, nil
}

func (cl *loadClient) close() {
	cl.udp.close()
	if cl.tcp != nil {
		cl.tcp.Close()
	}
}

// run draws requests until the duration is over (or ctx is done, or the
// budget spent), keeping the window full, then waits for the gets still
// in flight (each up to the timeout).
func (cl *loadClient) run(ctx context.Context, budget *atomic.Int64, start time.Time, dur time.Duration) {
	o, r := cl.o, &cl.res
	cl.start = start
	sets := make(chan int, o.Depth)
	setsDone := make(chan struct{})
	go func() {
		defer close(setsDone)
		for k := range sets {
			cl.set(k)
		}
	}()
	defer func() { close(sets); <-setsDone }()
	done := ctx.Done()
	total := o.GetWeight + o.SetWeight
	sweepEvery := min(max(o.Timeout/8, time.Millisecond), 25*time.Millisecond)
	lastSweep := time.Duration(0)
	stopping := false
	for {
		now := time.Since(start)
		if !stopping {
			select {
			case <-done:
				stopping = true
			default:
				stopping = now >= dur
			}
		}
		// Fill the window.
		for !stopping && len(cl.free) > 0 {
			if o.Ops > 0 && budget.Add(-1) < 0 {
				stopping = true
				break
			}
			k := cl.keys.next()
			if cl.rng.IntN(total) >= o.GetWeight {
				sets <- k
				continue
			}
			cl.queueGet(k)
		}
		if len(cl.batch) > 0 {
			cl.sendBatch()
		}
		if len(cl.free) == len(cl.slots) {
			if stopping {
				return
			}
			continue
		}
		n, err := cl.udp.recv()
		now = time.Since(start)
		switch {
		case errors.Is(err, errWait):
		case err != nil:
			// e.g. ECONNREFUSED after an ICMP error: the gets in
			// flight time out.
			r.Errors++
		}
		for i := range n {
			data, ttl := cl.udp.reply(i)
			cl.check(data, ttl, now)
		}
		if now-lastSweep >= sweepEvery {
			cl.sweep(now)
			lastSweep = now
		}
	}
}

// queueGet takes a free slot for a get of key k and adds its datagram to
// the batch. The key's acknowledged version is read now, before the
// send: the reply must hold it or a newer one.
func (cl *loadClient) queueGet(k int) {
	ks := cl.o.Keys
	s := cl.free[len(cl.free)-1]
	cl.free = cl.free[:len(cl.free)-1]
	cl.nextID++
	id := cl.nextID<<cl.idBits | uint16(s)
	cl.slots[s] = inflight{busy: true, id: id, key: k, lo: ks.Acked(k)}
	req := cl.reqs[s][:FrameHeaderLen]
	binary.BigEndian.PutUint16(req[0:], id)
	binary.BigEndian.PutUint16(req[2:], 0) // sequence
	binary.BigEndian.PutUint16(req[4:], 1) // datagrams
	binary.BigEndian.PutUint16(req[6:], 0) // reserved
	req = append(req, ks.gets[k]...)
	cl.reqs[s] = req
	cl.batch = append(cl.batch, req)
	cl.sentTo = append(cl.sentTo, s)
}

// sendBatch sends the batch; each get's time starts now. Gets that could
// not be sent are errors and free their slots.
func (cl *loadClient) sendBatch() {
	now := time.Since(cl.start)
	for _, s := range cl.sentTo {
		cl.slots[s].sent = now
	}
	n, err := cl.udp.send(cl.batch)
	if err != nil {
		for _, s := range cl.sentTo[n:] {
			cl.res.Errors++
			cl.release(s)
		}
	}
	cl.batch, cl.sentTo = cl.batch[:0], cl.sentTo[:0]
}

func (cl *loadClient) release(s int) {
	cl.slots[s].busy = false
	cl.free = append(cl.free, s)
}

// sweep counts the gets in flight longer than the timeout as timed out
// and frees their slots (a reply coming later is Late).
func (cl *loadClient) sweep(now time.Duration) {
	for s := range cl.slots {
		if p := &cl.slots[s]; p.busy && now-p.sent > cl.o.Timeout {
			cl.res.Timeouts++
			cl.release(s)
		}
	}
}

// check matches a reply to its get by request id and checks it: a
// value that parses, of the key asked, of a version written and not
// older than the one acknowledged when the get was sent.
func (cl *loadClient) check(data []byte, ttl int, now time.Duration) {
	ks, r := cl.o.Keys, &cl.res
	if len(data) < FrameHeaderLen {
		r.Errors++ // a reply shorter than the frame header
		return
	}
	id := binary.BigEndian.Uint16(data)
	s := int(id & (1<<cl.idBits - 1))
	if s >= len(cl.slots) || !cl.slots[s].busy || cl.slots[s].id != id {
		r.Late++
		return
	}
	p := cl.slots[s]
	cl.release(s)
	if seq, total := binary.BigEndian.Uint16(data[2:]), binary.BigEndian.Uint16(data[4:]); seq != 0 || total != 1 {
		r.Errors++ // only single-datagram replies are expected
		return
	}
	rep := GetReply{Text: data[FrameHeaderLen:], TTL: ttl}
	k, elapsed := p.key, now-p.sent
	r.Get.add(elapsed)
	if rep.Hit() {
		r.Hit.add(elapsed)
	} else {
		r.Server.add(elapsed)
	}
	value, _, found, err := ParseGet(rep.Text, ks.keys[k])
	if err != nil {
		r.Wrong++
		return
	}
	if !found {
		if p.lo > 0 {
			r.Missing++
		}
		return
	}
	ver, ok := ks.version(k, value)
	switch {
	case !ok || ver > ks.state[k].written.Load():
		r.Wrong++
	case ver < p.lo:
		r.Stale++
		if rep.Hit() {
			r.StaleHits++
		}
		if len(r.StaleExamples) < 5 {
			by := "memcached"
			if rep.Hit() {
				by = "the cache (XDP)"
			}
			r.StaleExamples = append(r.StaleExamples, fmt.Sprintf("get %s answered by %s: version %d, but version %d was acknowledged before the get was sent", ks.keys[k], by, ver, p.lo))
		}
	}
}

// set writes the next version of key k (on the client's set goroutine:
// its counters are setRes); a connection that failed is replaced (its
// late reply would be read as the next set's).
func (cl *loadClient) set(k int) {
	o, r := cl.o, &cl.setRes
	start := time.Now()
	_, err := cl.o.Keys.Set(cl.tcp, k, o.Timeout, cl.value)
	elapsed := time.Since(start)
	if err == nil {
		r.Set.add(elapsed)
		return
	}
	if errors.Is(err, errTimeout) {
		r.Timeouts++
	} else {
		r.Errors++
	}
	cl.tcp.Close()
	if c, derr := DialTCP(o.Addr); derr == nil {
		cl.tcp = c
	}
}
