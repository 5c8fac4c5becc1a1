// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Bounds of reading a map whole to compare it: a test map, not a
// production table.
const (
	snapMaxEntries = 20000
	snapMaxBytes   = 64 << 20
)

// snapshot reads the maps a comparison looks at: hash and array maps
// whole (or, over the bounds, marked partial), ring buffers' producer
// positions.
func snapshot(maps map[string]*ebpf.Map) (map[string]*mapSnap, map[string]uint64) {
	snaps := map[string]*mapSnap{}
	rings := map[string]uint64{}
	for name, m := range maps {
		switch t := m.Type(); {
		case isArray(t) || isHash(t):
			snaps[name] = readSnap(name, m)
		case t == ebpf.RingBuf:
			if st, err := bpf.PeekRingBuf(m, 0, 0); err == nil {
				rings[name] = st.ProducerPos
			}
		}
	}
	return snaps, rings
}

func readSnap(name string, m *ebpf.Map) *mapSnap {
	s := &mapSnap{name: name, entries: map[string][]byte{}}
	vs := int(m.ValueSize())
	if isPerCPU(m.Type()) {
		n, _ := ebpf.PossibleCPU()
		vs *= max(n, 1)
	}
	if int64(vs)*int64(min(m.MaxEntries(), snapMaxEntries)) > snapMaxBytes {
		s.partial = true
		return s
	}
	err := bpf.ReadMapChunks(m, func(c *bpf.MapChunk) error {
		size := c.ValueSize * c.CPUs
		for i := range c.N {
			v := bytes.Clone(c.Values[i*size : (i+1)*size])
			s.entries[string(c.Key(i))] = v
		}
		if len(s.entries) > snapMaxEntries {
			return errTooMany
		}
		return nil
	})
	switch {
	case errors.Is(err, errTooMany):
		s.partial, s.entries = true, map[string][]byte{}
	case err != nil:
		s.note = fmt.Sprintf("could not be read (%v)", err)
	}
	return s
}

// readKeys fills a partial snapshot with the keys given.
func (s *mapSnap) readKeys(m *ebpf.Map, keys [][]byte) {
	for _, k := range keys {
		v, err := bpf.LookupElem(m, k)
		if err == nil {
			s.entries[string(k)] = v
		}
	}
}

// kernelAfter reads what the kernel left: the maps snapped before, the
// records submitted to ring buffers since, and queues' contents (read by
// popping them and pushing them back).
func kernelAfter(maps map[string]*ebpf.Map, before map[string]*mapSnap, rings map[string]uint64, emu *Result, k *kernelRun) {
	k.maps = map[string]*mapSnap{}
	k.rings = map[string][]RingRecord{}
	k.ringEnd = map[string]uint64{}
	k.ringStart = rings
	k.queues = map[string][][]byte{}
	for name, m := range maps {
		switch t := m.Type(); {
		case isArray(t) || isHash(t):
			b := before[name]
			if b == nil {
				continue
			}
			if b.partial {
				a := &mapSnap{name: name, entries: map[string][]byte{}, partial: true}
				var keys [][]byte
				for _, c := range emu.Maps {
					if c.Map == name {
						keys = append(keys, c.Key)
					}
				}
				a.readKeys(m, keys)
				b.readKeys(m, nil)
				k.maps[name] = a
				continue
			}
			k.maps[name] = readSnap(name, m)
		case t == ebpf.RingBuf:
			pos, ok := rings[name]
			if !ok {
				continue
			}
			st, err := bpf.PeekRingBuf(m, 1<<16, 1<<20)
			if err != nil {
				continue
			}
			var recs []RingRecord
			for _, r := range st.Records {
				if r.Pos >= pos && !r.Discarded && !r.Busy {
					recs = append(recs, RingRecord{Map: name, Pos: r.Pos, Data: r.Data})
				}
			}
			k.rings[name] = recs
			k.ringEnd[name] = st.ProducerPos
		case t == ebpf.Queue || t == ebpf.Stack:
			touched := false
			for _, q := range emu.Queues {
				touched = touched || q.Map == name
			}
			if !touched {
				continue
			}
			src := &kernelSource{m: m, name: name}
			if vals, err := src.queue(); err == nil {
				k.queues[name] = vals
			}
		}
	}
}
