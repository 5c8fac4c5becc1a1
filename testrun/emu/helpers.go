// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"
	"sort"

	"github.com/cilium/ebpf/asm"
)

// hcall is one helper call in progress.
type hcall struct {
	id   int32
	name string
	a    [5]uint64
	ret  uint64
	// entered is set by helpers that call a BPF function back (bpf_loop):
	// they set the pc themselves and report their result later.
	entered bool
	ev      Event
	// noEvent suppresses the helper event (bpf_trace_printk makes its
	// own).
	noEvent bool
}

// helper is one helper function the engine emulates.
type helper struct {
	id   int32
	name string
	args int
	fn   func(m *machine, c *hcall) bool
	// incomparable, when set, says why runs calling it cannot be
	// compared with the kernel's in full: for time and randomness the
	// comparison leaves out what differs between two emulated runs with
	// different clocks and seeds; hard makes the whole run incomparable.
	incomparable string
	hard         bool
}

var helpers [256]*helper

// register adds helper implementations; each file of helpers registers
// its own in an init function.
func register(hs ...helper) {
	for i := range hs {
		h := hs[i]
		if h.name == "" {
			h.name = helperName(h.id)
		}
		if helpers[h.id] != nil {
			panic(fmt.Sprintf("emu: helper %d registered twice", h.id))
		}
		helpers[h.id] = &h
	}
}

// SupportedHelpers lists the helpers the engine emulates, by name,
// sorted: what `help debug` shows.
func SupportedHelpers() []string {
	var out []string
	for _, h := range helpers {
		if h != nil {
			out = append(out, h.name)
		}
	}
	sort.Strings(out)
	return out
}

// HelperSupported reports whether the engine emulates helper id.
func HelperSupported(id asm.BuiltinFunc) bool {
	return int(id) < len(helpers) && id >= 0 && helpers[id] != nil
}

// callHelper runs a helper call instruction.
func (m *machine) callHelper(in *insn) bool {
	pc := m.pc
	var h *helper
	if in.imm >= 0 && int(in.imm) < len(helpers) {
		h = helpers[in.imm]
	}
	if h == nil || m.skipCallAt == pc {
		if m.skipCallAt == pc {
			// The user answered this call by setting r0.
			m.setSkip(-1)
			m.addEvent(Event{Kind: EventHelper, Helper: helperName(in.imm), HelperID: in.imm, Ret: m.r[0], HasRet: true, Text: "answered by hand"})
			m.pc = pc + 1
			return true
		}
		m.abortStep()
		m.stop = StopUnknownHelper
		m.stopCall = fmt.Sprintf("%s (#%d)", helperName(in.imm), in.imm)
		m.stopMsg = fmt.Sprintf("helper %s is not emulated; set r0 to the value it would return and step on", m.stopCall)
		return false
	}
	c := hcall{id: h.id, name: h.name}
	copy(c.a[:], m.r[1:6])
	c.ev = Event{Kind: EventHelper, Helper: h.name, HelperID: h.id, Args: append([]uint64(nil), c.a[:h.args]...)}
	for _, a := range c.ev.Args {
		c.ev.ArgText = append(c.ev.ArgText, m.valueText(a))
	}
	switch {
	case h.incomparable != "" && h.hard:
		m.env.noteIncomparable(h.incomparable)
	case h.incomparable != "":
		m.env.noteSoft(h.incomparable)
	}
	if !h.fn(m, &c) {
		m.abortStep()
		if m.stop == StopNone {
			m.stop = StopFault
		}
		return false
	}
	if c.entered {
		// The helper entered a callback; its event is recorded now, with
		// the result reported when the callbacks are done.
		if !c.noEvent {
			m.addEvent(c.ev)
		}
		return m.stop == StopNone
	}
	m.r[0] = c.ret
	c.ev.Ret, c.ev.HasRet = c.ret, true
	c.ev.RetText = m.valueText(c.ret)
	m.pc = pc + 1
	if !c.noEvent {
		m.addEvent(c.ev)
	}
	return m.stop == StopNone
}

// setSkip sets which call the user answered, journaled.
func (m *machine) setSkip(pc int32) {
	old := m.skipCallAt
	if m.j.on {
		m.j.fn(func() { m.skipCallAt = old })
	}
	m.skipCallAt = pc
}

// callKfunc runs a call of a kernel function. None is emulated yet: the
// session stops at it like at an unknown helper.
func (m *machine) callKfunc(in *insn) bool {
	pc := m.pc
	name := "a kernel function"
	if in.ref >= 0 && int(in.ref) < len(m.prog.kfuncs) {
		name = m.prog.kfuncs[in.ref]
	}
	if m.skipCallAt == pc {
		m.setSkip(-1)
		m.addEvent(Event{Kind: EventHelper, Helper: name, Ret: m.r[0], HasRet: true, Text: "answered by hand"})
		m.pc = pc + 1
		return true
	}
	m.abortStep()
	m.stop = StopUnknownHelper
	m.stopCall = "kernel function " + name
	m.stopMsg = fmt.Sprintf("%s is not emulated; set r0 to the value it would return and step on", m.stopCall)
	return false
}

// arg helpers.

// mapArg resolves a helper's map argument.
func (m *machine) mapArg(c *hcall, i int) (*mapView, bool) {
	v, ok := m.viewOf(c.a[i])
	if ok {
		c.ev.Map = v.name
	}
	return v, ok
}

// memArg reads n bytes a helper argument points to.
func (m *machine) memArg(addr uint64, n uint32) ([]byte, bool) {
	return m.readBytes(addr, n)
}

// valueText shows a value as the front end shows registers: its
// provenance when it points somewhere, else the number (negative when it
// looks like an errno).
func (m *machine) valueText(v uint64) string {
	if p, ok := m.pointer(v); ok {
		return p.Text
	}
	if int64(v) < 0 && int64(v) > -4096 {
		return fmt.Sprint(int64(v))
	}
	return fmt.Sprint(v)
}
