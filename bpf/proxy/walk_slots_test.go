// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
)

// setBusy sets every CPU's walk_busy word to bits.
func setBusy(t *testing.T, objs *ProxyObjects, bits uint32) {
	t.Helper()
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	v := make([]uint32, n)
	for i := range v {
		v[i] = bits
	}
	if err := objs.WalkBusy.Put(uint32(0), v); err != nil {
		t.Fatal(err)
	}
}

// checkSlots checks that every CPU's walk_busy word is bits and that
// every slot is zero again: walks release what they claim, and only that.
func checkSlots(t *testing.T, objs *ProxyObjects, bits uint32) {
	t.Helper()
	var busy []uint32
	if err := objs.WalkBusy.Lookup(uint32(0), &busy); err != nil {
		t.Fatal(err)
	}
	for cpu, b := range busy {
		if b != bits {
			t.Errorf("walk_busy of CPU %d: %#x, want %#x", cpu, b, bits)
		}
	}
	for s := range uint32(8) {
		var slots []ProxyPgWalkSlot
		if err := objs.WalkSlots.Lookup(s, &slots); err != nil {
			t.Fatal(err)
		}
		for cpu, w := range slots {
			if w != (ProxyPgWalkSlot{}) {
				t.Errorf("walk_slots[%d] of CPU %d after the walks: %+v, want zero", s, cpu, w)
			}
		}
	}
}

// A walk takes the first free slot of its CPU: with slots 0-6 taken it
// walks in slot 7, exactly as in slot 0. With all 8 taken the chunk is
// not walked: malformed, and the stream lost.
func TestWalkSlots(t *testing.T) {
	objs := loadObjs(t)
	data := serverStream(t)

	setBusy(t, objs, 0x7f)
	w := serverWalker(t, objs, 44000)
	m := &modelWalk{server: true}
	for _, seg := range [][]byte{data[:7], data[7:30], data[30:]} {
		got, want := w.chunk(seg), m.walk(seg)
		if got.Msgs != want.msgs || got.Ready != want.ready || got.Rfq != want.rfq || got.Malformed != 0 || got.BoundHit != 0 {
			t.Fatalf("walked in slot 7: %+v, model %+v", got, want)
		}
	}
	if st := w.state().Walk; !walkBoundary(st) || st.Status != 'I' {
		t.Fatalf("walked in slot 7: state %+v", st)
	}
	checkSlots(t, objs, 0x7f)

	setBusy(t, objs, 0xff)
	w = serverWalker(t, objs, 44001)
	r := w.chunk(data)
	if r.Malformed != 1 || r.Msgs != 0 || r.Bytes != uint32(len(data)) {
		t.Fatalf("no slot free: %+v, want malformed, nothing counted, %d bytes", r, len(data))
	}
	if st := w.state().Walk; st.Flags&WalkBroken == 0 {
		t.Fatalf("no slot free: the stream should be lost: %+v", st)
	}
	checkSlots(t, objs, 0xff)

	setBusy(t, objs, 0)
	w = serverWalker(t, objs, 44002)
	if r := w.chunk(data); r.Msgs != 7 || r.Ready != 2 || r.Rfq != 'I' || r.Malformed != 0 {
		t.Fatalf("slots free again: %+v", r)
	}
	checkSlots(t, objs, 0)
}

// Walks from several threads at once, each on its own flow, through the
// same maps: every flow's totals and state agree with the model, and the
// slots are released. (walk_last is shared: the flows' entries in walks
// are what each thread checks.)
func TestWalkConcurrent(t *testing.T) {
	objs := loadObjs(t)
	streams := []struct {
		server bool
		data   []byte
	}{{false, clientStream(t)}, {true, serverStream(t)}}
	const goroutines, rounds = 8, 40
	type flow struct {
		w      *walker
		cut    int
		frames [2][]byte
	}
	var flows [goroutines][rounds]flow
	for g := range goroutines {
		side := streams[g%2]
		for round := range rounds {
			w := &walker{t: t, objs: objs, sport: uint16(45000 + g*100 + round), dport: Port}
			if side.server {
				w.sport, w.dport = Port, w.sport
			}
			w.reset()
			cut := 1 + (g*7+round*13)%(len(side.data)-1)
			flows[g][round] = flow{w, cut, [2][]byte{tcpFrame(t, w.sport, w.dport, side.data[:cut]), tcpFrame(t, w.sport, w.dport, side.data[cut:])}}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			side := streams[g%2]
			for round := range rounds {
				w, cut := flows[g][round].w, flows[g][round].cut
				m := &modelWalk{server: side.server}
				var sum modelResult
				for i, seg := range [][]byte{side.data[:cut], side.data[cut:]} {
					if ret, err := objs.TcPgWalk.Run(&ebpf.RunOptions{Data: flows[g][round].frames[i]}); err != nil || ret != 0 {
						errs <- fmt.Errorf("goroutine %d round %d: test-run: %d, %v", g, round, ret, err)
						return
					}
					r := m.walk(seg)
					sum.msgs += r.msgs
					sum.queries += r.queries
					sum.syncs += r.syncs
					sum.ready += r.ready
				}
				var fw ProxyPgFlowWalk
				if err := objs.Walks.Lookup(w.key(), &fw); err != nil {
					errs <- fmt.Errorf("goroutine %d round %d: %v", g, round, err)
					return
				}
				if fw.Chunks != 2 || fw.Msgs != uint64(sum.msgs) || fw.Queries != uint64(sum.queries) || fw.Syncs != uint64(sum.syncs) ||
					fw.Ready != uint64(sum.ready) || fw.Malformed != 0 || fw.BoundHit != 0 || !walkBoundary(fw.Walk) || fw.Walk.Last != m.last {
					errs <- fmt.Errorf("goroutine %d round %d cut %d: flow %+v, model totals %+v", g, round, cut, fw, sum)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkSlots(t, objs, 0)
}
