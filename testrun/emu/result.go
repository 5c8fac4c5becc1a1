// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"github.com/cilium/ebpf"
)

// Result is what a finished run did, in the form BPF_PROG_TEST_RUN
// reports it, so that the two compare byte for byte.
type Result struct {
	Retval uint64 `json:"retval"`
	// DataOut is the kernel's data_out: for XDP from data_meta (metadata
	// first), for skb programs from skb->data (L3 programs get 14 zero
	// bytes first, as the kernel pushes back a zeroed Ethernet header),
	// for flow dissectors struct bpf_flow_keys; nil for types without
	// output data.
	DataOut []byte `json:"data_out,omitempty"`
	// Meta and Packet split DataOut the way bpfsh's run shows it: the
	// XDP metadata, and the packet (for L3 programs with the input's
	// Ethernet header in place of the zeroed one).
	Meta   []byte `json:"meta,omitempty"`
	Packet []byte `json:"packet,omitempty"`
	// CtxOut is the context handed back (ctx_out), nil when the kernel
	// hands none back.
	CtxOut []byte `json:"ctx_out,omitempty"`
	// Trace are the bpf_printk lines, in order.
	Trace []string `json:"trace,omitempty"`
	// Maps are the entries the run changed; Queues what it left in the
	// queues and stacks it touched; Rings the ring buffer records it
	// submitted.
	Maps   []MapChange   `json:"maps,omitempty"`
	Queues []QueueChange `json:"queues,omitempty"`
	Rings  []RingRecord  `json:"rings,omitempty"`
	// RingEnd is each ring buffer's producer position after the run.
	RingEnd map[string]uint64 `json:"-"`
	// Steps is the number of instructions run.
	Steps  uint64  `json:"steps"`
	Events []Event `json:"events,omitempty"`
	// Notes say what makes this run not comparable with the kernel's.
	Notes []string `json:"notes,omitempty"`
}

// QueueChange is a queue or stack the run changed: its values before and
// after, oldest first.
type QueueChange struct {
	Map    string   `json:"map"`
	Before [][]byte `json:"before"`
	After  [][]byte `json:"after"`
}

// RingRecord is a record a run submitted to a ring buffer. Written marks
// the bytes the program wrote: the others hold whatever the ring held.
type RingRecord struct {
	Map     string `json:"map"`
	Pos     uint64 `json:"pos"`
	Data    []byte `json:"data"`
	Written []bool `json:"-"`
}

// Result reports what the run did. It is complete once the program has
// returned; before, it is the state so far.
func (s *Session) Result() *Result {
	m := s.m
	e := m.env
	res := &Result{Retval: m.retval, Steps: m.steps, Events: slices.Clone(e.events), Notes: slices.Concat(e.notes, e.soft)}
	for _, ev := range e.events {
		if ev.Kind == EventPrintk {
			res.Trace = append(res.Trace, ev.Text)
		}
	}
	s.packetOut(res)
	res.CtxOut = s.ctxOut()
	var views []*mapView
	for _, v := range e.views {
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return views[i].name < views[j].name })
	for _, v := range views {
		res.Maps = append(res.Maps, v.changes()...)
		if v.q != nil && v.q.loaded && !queuesEqual(v.q.base, v.q.vals) {
			res.Queues = append(res.Queues, QueueChange{Map: v.name, Before: v.q.base, After: v.q.vals})
		}
		if v.ring != nil && v.ring.loaded {
			if res.RingEnd == nil {
				res.RingEnd = map[string]uint64{}
			}
			res.RingEnd[v.name] = v.ring.cur
			for _, r := range v.ring.recs {
				if r.state == ringSubmitted {
					res.Rings = append(res.Rings, RingRecord{Map: v.name, Pos: r.pos, Data: r.data, Written: slices.Clone(m.regions[r.region].written)})
				}
			}
		}
	}
	return res
}

func queuesEqual(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

// packetOut fills DataOut, Meta and Packet.
func (s *Session) packetOut(res *Result) {
	m := s.m
	e := m.env
	p := e.pkt
	switch {
	case e.progType == ebpf.FlowDissector:
		res.DataOut = slices.Clone(m.regions[e.flowKeys].buf)
		return
	case p == nil:
		return
	}
	buf := m.regions[p.region].buf
	if p.xdp {
		res.DataOut = slices.Concat(buf[p.meta:p.end], p.frags)
		res.Meta = slices.Clone(buf[p.meta:p.data])
		res.Packet = slices.Concat(buf[p.data:p.end], p.frags)
		return
	}
	if p.l2 != nil {
		res.DataOut = slices.Concat(make([]byte, ethHeaderLen), buf[p.data:p.end])
		res.Packet = slices.Concat(p.l2, buf[p.data:p.end])
		return
	}
	res.DataOut = slices.Clone(buf[p.data:p.end])
	res.Packet = res.DataOut
}

// ctxOut is the context as the kernel hands it back after the run.
func (s *Session) ctxOut() []byte {
	m := s.m
	e := m.env
	switch {
	case e.progType == ebpf.XDP:
		out := slices.Clone(e.ctxIn)
		p := e.pkt
		binary.LittleEndian.PutUint32(out[0:], p.data-p.meta)
		binary.LittleEndian.PutUint32(out[4:], p.end-p.meta)
		return out
	case e.skb != nil && !e.skb.dissect:
		// convert_skb_to___skb: these fields come back from the skb; the
		// rest is the context as sent.
		out := slices.Clone(e.ctxIn)
		buf := m.regions[e.ctx].buf
		for _, f := range [][2]int{{skbMark, 4}, {skbPriority, 4}, {skbIngressIf, 4}, {skbIfindex, 4},
			{skbTstamp, 8}, {skbCB, 20}, {skbWireLen, 4}, {skbGsoSegs, 4}, {skbHwtstamp, 8}} {
			copy(out[f[0]:f[0]+f[1]], buf[f[0]:f[0]+f[1]])
		}
		return out
	case e.progType == ebpf.Syscall:
		return slices.Clone(m.regions[e.ctx].buf)
	case e.progType == ebpf.SkLookup, e.progType == ebpf.FlowDissector:
		return slices.Clone(e.ctxIn)
	}
	return nil
}

// Run runs a program to its end on cfg's input and reports what it did:
// the engine as a plain runner (no reverse execution unless cfg asks).
func Run(cfg Config) (*Result, error) {
	s, err := NewSession(cfg)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	st := s.Run()
	switch st.Reason {
	case StopExit:
		return s.Result(), nil
	case StopLimit:
		return nil, fmt.Errorf("run %s: over %d instructions without returning", cfg.Program.Name, s.cfg.MaxSteps)
	}
	return s.Result(), &RunError{Stop: st}
}

// RunError is a run the engine could not finish: an emulator fault, a
// helper it does not emulate.
type RunError struct {
	Stop Stop
}

func (e *RunError) Error() string {
	return fmt.Sprintf("stopped at instruction %d (step %d): %s: %s", e.Stop.PC, e.Stop.Step, e.Stop.Reason, e.Stop.Message)
}
