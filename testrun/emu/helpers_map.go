// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func init() {
	register(
		helper{id: int32(asm.FnMapLookupElem), args: 2, fn: hMapLookup},
		helper{id: int32(asm.FnMapUpdateElem), args: 4, fn: hMapUpdate},
		helper{id: int32(asm.FnMapDeleteElem), args: 2, fn: hMapDelete},
		helper{id: int32(asm.FnMapPushElem), args: 3, fn: hMapPush},
		helper{id: int32(asm.FnMapPopElem), args: 2, fn: hMapPop},
		helper{id: int32(asm.FnMapPeekElem), args: 2, fn: hMapPeek},
		helper{id: int32(asm.FnMapLookupPercpuElem), args: 3, fn: hMapLookupPercpu},
		helper{id: int32(asm.FnForEachMapElem), args: 4, fn: hForEachMapElem},
		helper{id: int32(asm.FnTailCall), args: 3, fn: hTailCall},
		helper{id: int32(asm.FnSkRelease), args: 1, fn: hSkRelease},
	)
}

func (m *machine) keyArg(c *hcall, v *mapView, i int) ([]byte, bool) {
	k, ok := m.memArg(c.a[i], v.keySize)
	if ok {
		c.ev.Data = k
	}
	return k, ok
}

func (m *machine) helperErr(err error) bool {
	m.fault(err.Error())
	return false
}

func hMapLookup(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	k, ok := m.keyArg(c, v, 1)
	if !ok {
		return false
	}
	a, err := m.mapLookup(v, k)
	if err != nil {
		return m.helperErr(err)
	}
	c.ret = a
	return true
}

func hMapUpdate(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	k, ok := m.keyArg(c, v, 1)
	if !ok {
		return false
	}
	if v.typ == ebpf.SockMap || v.typ == ebpf.SockHash {
		return m.helperErr(fmt.Errorf("bpf_map_update_elem on %s map %s (adding a socket) is not emulated", v.typ, v.name))
	}
	val, ok := m.memArg(c.a[2], v.valueSize)
	if !ok {
		return false
	}
	r, err := m.mapUpdate(v, k, val, c.a[3])
	if err != nil {
		return m.helperErr(err)
	}
	c.ret = r
	return true
}

func hMapDelete(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	k, ok := m.keyArg(c, v, 1)
	if !ok {
		return false
	}
	r, err := m.mapDelete(v, k)
	if err != nil {
		return m.helperErr(err)
	}
	c.ret = r
	return true
}

func hMapLookupPercpu(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	k, ok := m.keyArg(c, v, 1)
	if !ok {
		return false
	}
	cpu := int(uint32(c.a[2]))
	if !isPerCPU(v.typ) || cpu >= m.env.ncpu {
		c.ret = 0
		return true
	}
	if isArray(v.typ) && binary.LittleEndian.Uint32(k) >= v.maxEntries {
		return true
	}
	e, err := v.get(k)
	if err != nil {
		return m.helperErr(err)
	}
	if !e.ok {
		return true
	}
	// Another CPU's value: a region of its own over the entry's bytes.
	r := &region{kind: RegionMapValue, buf: e.val[cpu*int(v.valueSize) : (cpu+1)*int(v.valueSize)], hi: v.valueSize, mp: v, key: e.key, cpu: cpu, typ: v.valueType, name: v.name}
	c.ret = regionAddr(m.newRegion(r), 0)
	return true
}

// queue loads a queue's or stack's values into the view.
func (m *machine) queueOf(v *mapView) (*queueState, error) {
	if v.q == nil {
		v.q = &queueState{}
	}
	q := v.q
	if !q.loaded {
		vals, err := v.src.queue()
		if pq, ok := err.(*partialQueueError); ok {
			return nil, fmt.Errorf("map %s: %v; start the session without NoDrain to let the emulator read the queue (it pops the values and pushes them back)", v.name, pq)
		}
		if err != nil {
			return nil, err
		}
		q.base, q.vals, q.loaded = vals, append([][]byte(nil), vals...), true
	}
	return q, nil
}

func (m *machine) setQueue(q *queueState, vals [][]byte) {
	old := q.vals
	if m.j.on {
		m.j.fn(func() { q.vals = old })
	}
	q.vals = vals
}

func hMapPush(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	if v.typ != ebpf.Queue && v.typ != ebpf.Stack {
		return m.helperErr(fmt.Errorf("bpf_map_push_elem on a %s map", v.typ))
	}
	val, ok := m.memArg(c.a[1], v.valueSize)
	if !ok {
		return false
	}
	c.ev.Data = val
	q, err := m.queueOf(v)
	if err != nil {
		return m.helperErr(err)
	}
	flags := c.a[2]
	if flags&^uint64(bpfExist) != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	vals := append([][]byte(nil), q.vals...)
	if len(vals) >= int(v.maxEntries) {
		if flags&bpfExist == 0 {
			c.ret = negErr(errE2BIG)
			return true
		}
		// BPF_EXIST on a full queue or stack drops the oldest value.
		vals = vals[1:]
	}
	m.setQueue(q, append(vals, val))
	c.ret = 0
	return true
}

func popPeek(m *machine, c *hcall, pop bool) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	if v.typ != ebpf.Queue && v.typ != ebpf.Stack {
		return m.helperErr(fmt.Errorf("%s on a %s map is not emulated", c.name, v.typ))
	}
	q, err := m.queueOf(v)
	if err != nil {
		return m.helperErr(err)
	}
	if len(q.vals) == 0 {
		c.ret = negErr(errENOENT)
		return true
	}
	i := 0 // a queue gives its oldest value
	if v.typ == ebpf.Stack {
		i = len(q.vals) - 1
	}
	val := q.vals[i]
	if !m.writeBytes(c.a[1], val) {
		return false
	}
	c.ev.Data = val
	if pop {
		rest := append(append([][]byte(nil), q.vals[:i]...), q.vals[i+1:]...)
		m.setQueue(q, rest)
	}
	c.ret = 0
	return true
}

func hMapPop(m *machine, c *hcall) bool  { return popPeek(m, c, true) }
func hMapPeek(m *machine, c *hcall) bool { return popPeek(m, c, false) }

// forEach is bpf_for_each_map_elem's state while its callback runs.
type forEach struct {
	v     *mapView
	keys  [][]byte
	i     int
	n     uint64 // elements visited
	mp    uint64 // the map's address, the callback's first argument
	fn    int32
	ctx   uint64
	retPC int32
}

func (f *forEach) helper() string { return "bpf_for_each_map_elem" }

func hForEachMapElem(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 0)
	if !ok {
		return false
	}
	fn, ok := m.funcArg(c.a[1])
	if !ok {
		return false
	}
	if c.a[3] != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	if !isArray(v.typ) && !isHash(v.typ) {
		return m.helperErr(fmt.Errorf("bpf_for_each_map_elem over a %s map is not emulated", v.typ))
	}
	keys, err := m.iterKeys(v)
	if err != nil {
		return m.helperErr(err)
	}
	st := &forEach{v: v, keys: keys, fn: fn, ctx: c.a[2], retPC: m.pc + 1, mp: c.a[0]}
	c.ev.Text = fmt.Sprintf("%d elements to visit", len(keys))
	if !st.advance(m) {
		c.ret = 0
		return true
	}
	if !m.pushFrame(frame{prog: m.prog, fn: fn, retPC: m.pc + 1, cb: st}) {
		return false
	}
	m.pc = fn
	c.entered = true
	return true
}

// advance finds the next element still in the map and sets the
// callback's arguments; false when there is none.
func (f *forEach) advance(m *machine) bool {
	for f.i < len(f.keys) {
		k := f.keys[f.i]
		m.setForEach(f, f.i+1, f.n)
		e, err := f.v.get(k)
		if err != nil {
			m.fault(err.Error())
			return false
		}
		if !e.ok {
			continue // deleted meanwhile: the kernel's walk no longer finds it
		}
		m.setReg(1, f.mp)
		m.setReg(2, m.keyRegion(f.v, e))
		m.setReg(3, m.valueRegion(f.v, e))
		m.setReg(4, f.ctx)
		return true
	}
	return false
}

func (m *machine) setForEach(f *forEach, i int, n uint64) {
	old, oldN := f.i, f.n
	if m.j.on {
		m.j.fn(func() { f.i, f.n = old, oldN })
	}
	f.i, f.n = i, n
}

func (f *forEach) next(m *machine, r0 uint64) bool {
	m.setForEach(f, f.i, f.n+1)
	if r0 == 0 && m.stop == StopNone && f.advance(m) {
		return true
	}
	if m.stop != StopNone {
		return false
	}
	// Done: the helper returns the number of elements visited.
	m.setReg(0, f.n)
	m.addEvent(Event{Kind: EventCallback, Helper: f.helper(), Ret: f.n, HasRet: true, Map: f.v.name, Text: fmt.Sprintf("visited %d elements", f.n)})
	return false
}

// funcArg resolves a callback argument (a subprogram's address).
func (m *machine) funcArg(addr uint64) (int32, bool) {
	if addr&addrTagMsk != addrTag || (addr>>idShift)&idMask != codeRegion {
		m.fault(fmt.Sprintf("a helper was given %s where it takes a function", m.describeAddr(addr)))
		return 0, false
	}
	pc := int32(addr & offMask)
	if int(pc) >= len(m.insns) {
		m.fault(fmt.Sprintf("a callback at slot %d, past the program's end", pc))
		return 0, false
	}
	return pc, true
}

// hTailCall is bpf_tail_call: on success the target program replaces the
// current one in the current frame; on failure execution goes on after
// the call and r0 is left as it was, as the kernel's inlined tail call
// leaves it.
func hTailCall(m *machine, c *hcall) bool {
	v, ok := m.mapArg(c, 1)
	if !ok {
		return false
	}
	idx := uint32(c.a[2])
	c.noEvent = true
	fallThrough := func(why string) bool {
		c.ret = m.r[0]
		m.addEvent(Event{Kind: EventTailCall, Map: v.name, Args: c.a[:3], Text: why})
		return true
	}
	if v.typ != ebpf.ProgramArray {
		return m.helperErr(fmt.Errorf("bpf_tail_call through a %s map", v.typ))
	}
	if idx >= v.maxEntries {
		return fallThrough(fmt.Sprintf("index %d is past the array's %d slots: falls through", idx, v.maxEntries))
	}
	if m.env.tailCalls >= maxTailCalls {
		return fallThrough(fmt.Sprintf("over %d tail calls: falls through", maxTailCalls))
	}
	key := binary.LittleEndian.AppendUint32(nil, idx)
	e, err := v.get(key)
	if err != nil {
		return m.helperErr(err)
	}
	if !e.ok {
		return fallThrough(fmt.Sprintf("slot %d is empty: falls through", idx))
	}
	target, err := m.env.tailTarget(m, v, e)
	if err != nil {
		return m.helperErr(err)
	}
	n := m.env.tailCalls
	if m.j.on {
		m.j.fn(func() { m.env.tailCalls = n })
	}
	m.env.tailCalls++
	m.addEvent(Event{Kind: EventTailCall, Map: v.name, Args: c.a[:3], Text: fmt.Sprintf("enters %s", target.Name)})
	f := &m.frames[len(m.frames)-1]
	oldProg, oldFn := f.prog, f.fn
	if m.j.on {
		m.j.fn(func() { f.prog, f.fn = oldProg, oldFn })
	}
	f.prog, f.fn = target, 0
	m.switchProg(target)
	m.pc = 0
	c.entered = true
	return true
}

// maxTailCalls is MAX_TAIL_CALL_CNT.
const maxTailCalls = 33

// tailTarget finds the program a program array slot holds.
func (e *env) tailTarget(m *machine, v *mapView, en *entry) (*Program, error) {
	id := binary.LittleEndian.Uint32(en.val)
	if e.maps.Programs == nil {
		return nil, fmt.Errorf("slot of %s holds program id %d, and the session has no way to find its instructions", v.name, id)
	}
	p, maps, err := e.maps.Programs(ebpf.ProgramID(id))
	if err != nil {
		return nil, fmt.Errorf("tail call into program id %d: %w", id, err)
	}
	if maps != nil {
		if e.maps.ByProgram == nil {
			e.maps.ByProgram = map[*Program][]*ebpf.Map{}
		}
		e.maps.ByProgram[p] = maps
	}
	if _, err := e.bind(m, p); err != nil {
		return nil, err
	}
	return p, nil
}

// sockLookup is a map lookup in a sockmap or sockhash: a socket or NULL.
func (m *machine) sockLookup(v *mapView, key []byte) (uint64, error) {
	e, err := v.get(key)
	if err != nil {
		return 0, err
	}
	if !e.ok {
		return 0, nil
	}
	r := &region{kind: RegionSocket, mp: v, key: e.key, name: "socket of " + v.name}
	return regionAddr(m.newRegion(r), 0), nil
}

func hSkRelease(m *machine, c *hcall) bool {
	c.ret = 0
	return true
}
