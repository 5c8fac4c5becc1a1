// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// env is what a program runs in: its maps, its packet and context, the
// events it produced, and the inputs that make a run deterministic (the
// CPU, the time, the random seed).
type env struct {
	cfg      *Config
	progType ebpf.ProgramType
	cpu      int
	ncpu     int
	timeBase uint64
	seed     uint64

	maps  *Maps
	views map[string]*mapView
	// caches keep what kernel maps answered, across the machines of one
	// session (replays).
	caches map[string]*cachedSource // by kernel map id ("id 12") or private name
	bound  map[*Program][]*mapView

	pkt      *packet
	ctx      int32 // the context's region
	ctxIn    []byte
	skb      *skbCtx
	flowKeys int32

	events []Event
	notes  []string // why the run cannot be compared with the kernel's
	soft   []string // what only parts of the run cannot be compared for

	tailCalls int
	// timers records bpf_timer_init per timer address.
	timers map[uint64]*timerState

	// watchedMaps names the maps watchpoints look at.
	watchedMaps map[string]bool

	bpFor        func(*Program) []bool
	watchChanged func(m *machine) bool
	applyWatches func(r *region)
}

// loopbackIfindex is the loopback device's index, in every network
// namespace: the device BPF_PROG_TEST_RUN uses when the context names none.
const loopbackIfindex = 1

// newEnv binds prog's maps and lays out its input.
func newEnv(m *machine, cfg *Config, caches map[string]*cachedSource) (*env, error) {
	e := &env{cfg: cfg, progType: cfg.Program.Type, cpu: cfg.CPU, maps: cfg.Maps, views: map[string]*mapView{}, caches: caches,
		bound: map[*Program][]*mapView{}, timeBase: cfg.Time, seed: cfg.Seed, timers: map[uint64]*timerState{}}
	e.bpFor = func(*Program) []bool { return nil }
	e.watchChanged = func(*machine) bool { return false }
	e.applyWatches = func(*region) {}
	n, err := ebpf.PossibleCPU()
	if err != nil || n < 1 {
		n = 1
	}
	e.ncpu = n
	if e.cpu < 0 || e.cpu >= n {
		return nil, fmt.Errorf("CPU %d: this machine has CPUs 0 to %d", e.cpu, n-1)
	}
	if e.maps == nil {
		e.maps = &Maps{Private: true}
	}
	m.env = e
	if _, err := e.bind(m, cfg.Program); err != nil {
		return nil, err
	}
	if err := e.layout(m); err != nil {
		return nil, err
	}
	return e, nil
}

// bind makes the views of p's maps, once per program.
func (e *env) bind(m *machine, p *Program) ([]*mapView, error) {
	if vs, ok := e.bound[p]; ok {
		return vs, nil
	}
	var vs []*mapView
	for i, ref := range p.maps {
		v, err := e.view(p, i, ref)
		if err != nil {
			return nil, fmt.Errorf("map %s of %s: %w", ref.Name, p.Name, err)
		}
		vs = append(vs, v)
	}
	e.bound[p] = vs
	return vs, nil
}

// view finds or makes the view of a program's i-th map.
func (e *env) view(p *Program, i int, ref MapRef) (*mapView, error) {
	var km *ebpf.Map
	if e.maps.ByProgram != nil {
		if ms, ok := e.maps.ByProgram[p]; ok && i < len(ms) {
			km = ms[i]
		}
	}
	if km == nil && e.maps.ByName != nil && (p.Object == nil || p == e.cfg.Program || p.Object == e.cfg.Program.Object) {
		km = e.maps.ByName[ref.Name]
	}
	if km != nil {
		info, err := km.Info()
		if err != nil {
			return nil, fmt.Errorf("read the kernel map's info: %w", err)
		}
		id, _ := info.ID()
		key := fmt.Sprintf("id %d", id)
		if v, ok := e.views[key]; ok {
			return v, nil
		}
		src, ok := e.caches[key]
		if !ok {
			src = newCachedSource(&kernelSource{m: km, name: ref.Name, noDrain: e.maps.NoDrain, walkMax: e.maps.WalkLimit})
			e.caches[key] = src
		}
		v := &mapView{name: ref.Name, typ: km.Type(), keySize: km.KeySize(), valueSize: km.ValueSize(), maxEntries: km.MaxEntries(),
			flags: km.Flags(), id: id, src: src}
		if ref.Spec != nil {
			v.keyType, v.valueType = ref.Spec.Key, ref.Spec.Value
		}
		e.finishView(v)
		e.views[key] = v
		return v, nil
	}
	if !e.maps.Private && !(e.maps.PrivateReadOnly && ref.Spec != nil && isReadOnlyData(ref)) {
		return nil, fmt.Errorf("no kernel map is bound to it")
	}
	if ref.Spec == nil {
		return nil, fmt.Errorf("the object does not describe it")
	}
	key := "private " + ref.Name
	if p.Object != nil {
		key += " of " + p.Object.Source
	}
	if v, ok := e.views[key]; ok {
		return v, nil
	}
	src, err := newSpecSource(ref.Spec, e.ncpu)
	if err != nil {
		return nil, err
	}
	s := ref.Spec
	v := &mapView{name: ref.Name, typ: s.Type, keySize: s.KeySize, valueSize: s.ValueSize, maxEntries: s.MaxEntries,
		flags: s.Flags, src: src, keyType: s.Key, valueType: s.Value}
	if v.typ == ebpf.RingBuf || v.typ == ebpf.Queue || v.typ == ebpf.Stack {
		v.keySize = 0
	}
	e.finishView(v)
	e.views[key] = v
	return v, nil
}

func isReadOnlyData(ref MapRef) bool {
	return ref.Spec.Flags&bpfFRdonlyProg != 0
}

const bpfFRdonlyProg = 1 << 7

func (e *env) finishView(v *mapView) {
	v.ncpu = e.ncpu
	v.region = -1
	v.entries = map[string]*entry{}
	if v.valueType != nil {
		v.special = specialRanges(v.valueType)
	}
	if _, ok := v.keyType.(*btf.Void); ok {
		v.keyType = nil
	}
	if _, ok := v.valueType.(*btf.Void); ok {
		v.valueType = nil
	}
}

// mapAddr is the address of the running program's ref-th map.
func (e *env) mapAddr(m *machine, ref int32) (uint64, bool) {
	vs, err := e.bind(m, m.prog)
	if err != nil {
		m.fault(err.Error())
		return 0, false
	}
	v := vs[ref]
	if v.region < 0 || int(v.region) >= len(m.regions) || m.regions[v.region].mp != v || m.regions[v.region].kind != RegionMap {
		old := v.region
		id := m.newRegion(&region{kind: RegionMap, mp: v, name: v.name})
		if m.j.on {
			m.j.fn(func() { v.region = old })
		}
		v.region = id
	}
	return regionAddr(v.region, 0), true
}

// mapValueAddr is the address off bytes into the value of key 0 of the
// running program's ref-th map: global variables (.data, .bss, .rodata)
// and direct value loads.
func (e *env) mapValueAddr(m *machine, ref int32, off uint64) (uint64, bool) {
	vs, err := e.bind(m, m.prog)
	if err != nil {
		m.fault(err.Error())
		return 0, false
	}
	v := vs[ref]
	if !isArray(v.typ) || isPerCPU(v.typ) {
		m.fault(fmt.Sprintf("a direct value load of map %s, a %s map", v.name, v.typ))
		return 0, false
	}
	en, err := v.get(make([]byte, 4))
	if err != nil {
		m.fault(err.Error())
		return 0, false
	}
	if !en.ok {
		m.fault(fmt.Sprintf("map %s has no value at index 0", v.name))
		return 0, false
	}
	a := m.valueRegion(v, en)
	if v.flags&bpfFRdonlyProg != 0 || v.flags&bpfFRdonly != 0 {
		m.regions[(a>>idShift)&idMask].ro = true
	}
	return a + off, true
}

const bpfFRdonly = 1 << 3

// viewOf returns the map behind a map address a helper got.
func (m *machine) viewOf(addr uint64) (*mapView, bool) {
	r, _, ok := m.resolve(addr, 0)
	if r == nil || r.kind != RegionMap || !ok && r.kind != RegionMap {
		m.fault(fmt.Sprintf("a helper was given %s where it takes a map", m.describeAddr(addr)))
		return nil, false
	}
	return r.mp, true
}

// addEvent records an event, journaled.
func (m *machine) addEvent(ev Event) {
	e := m.env
	ev.Step, ev.PC, ev.Frame = m.steps, int(m.pc), len(m.frames)-1
	if f, ok := m.prog.FuncAt(int(m.pc)); ok {
		ev.Func = f.Name
	}
	n := len(e.events)
	if m.j.on {
		m.j.fn(func() { e.events = e.events[:n] })
	}
	e.events = append(e.events, ev)
}

// noteIncomparable records why a run cannot be compared with the
// kernel's (once per reason), journaled.
func (e *env) noteIncomparable(why string) {
	if slices.Contains(e.notes, why) {
		return
	}
	e.notes = append(e.notes, why)
}

// noteSoft records something that makes parts of the run differ from the
// kernel's (time, random numbers), once.
func (e *env) noteSoft(why string) {
	if !slices.Contains(e.soft, why) {
		e.soft = append(e.soft, why)
	}
}

// touchMap is called when a map view changes.
func (e *env) touchMap(v *mapView) {}

// layout builds the packet and the context for the program's type, as
// BPF_PROG_TEST_RUN builds them.
func (e *env) layout(m *machine) error {
	cfg := e.cfg
	t := e.progType
	ctxIn := cfg.Ctx
	switch {
	case t == ebpf.XDP:
		ctx := make([]byte, 24)
		copy(ctx, ctxIn)
		if len(ctxIn) == 0 {
			binary.LittleEndian.PutUint32(ctx[4:], uint32(len(cfg.Packet)))
		}
		meta := int(binary.LittleEndian.Uint32(ctx[0:]))
		if meta > xdpMetaMax || meta%4 != 0 || meta > len(cfg.Packet) {
			return fmt.Errorf("xdp_md.data %d: the metadata must be a multiple of 4 bytes, at most %d, within the input", meta, xdpMetaMax)
		}
		p, err := m.newXDPPacket(cfg.Packet, meta)
		if err != nil {
			return err
		}
		e.pkt, e.ctxIn = p, ctx
		c := &xdpCtx{}
		c.region = m.newRegion(&region{kind: RegionCtx, buf: slices.Clone(ctx), hi: 24, ctx: c, name: "ctx", typ: nil})
		e.ctx = c.region
	case isSKBType(t) || t == ebpf.FlowDissector:
		l3 := isSKBType(t) && !isL2Type(t)
		p, err := m.newSKBPacket(cfg.Packet, l3)
		if err != nil {
			return err
		}
		e.pkt = p
		c := &skbCtx{sock: -1}
		buf := make([]byte, skbSize)
		if t == ebpf.FlowDissector {
			c.dissect = true
			e.ctxIn = slices.Clone(ctxIn)
			keys := make([]byte, flowKeysSize)
			if len(ctxIn) >= 52 {
				copy(keys[48:52], ctxIn[48:52]) // flags
			}
			binary.LittleEndian.PutUint16(keys[0:], ethHeaderLen) // nhoff
			binary.LittleEndian.PutUint16(keys[2:], ethHeaderLen) // thoff
			copy(keys[10:12], cfg.Packet[12:14])                  // n_proto
			c.flowKeys = m.newRegion(&region{kind: RegionFlowKeys, buf: keys, hi: flowKeysSize, name: "flow_keys"})
			e.flowKeys = c.flowKeys
		} else {
			copy(buf, ctxIn)
			e.ctxIn = make([]byte, skbSize)
			copy(e.ctxIn, ctxIn)
			if err := e.initSKB(buf, cfg.Packet, p); err != nil {
				return err
			}
			switch {
			case t == ebpf.SchedCLS || t == ebpf.SchedACT:
				c.writable = skbWritable("tc")
			case t == ebpf.CGroupSKB:
				c.writable = skbWritable("cgroup")
			case t == ebpf.LWTIn || t == ebpf.LWTOut || t == ebpf.LWTXmit || t == ebpf.LWTSeg6Local:
				c.writable = skbWritable("lwt")
			default:
				c.writable = skbWritable("socket")
			}
		}
		c.region = m.newRegion(&region{kind: RegionCtx, buf: buf, hi: skbSize, ctx: c, name: "ctx"})
		e.ctx, e.skb = c.region, c
	case t == ebpf.SkLookup:
		buf := make([]byte, skLookupSize)
		copy(buf, ctxIn)
		e.ctxIn = slices.Clone(buf)
		c := &skLookupCtx{}
		c.region = m.newRegion(&region{kind: RegionCtx, buf: buf, hi: skLookupSize, ctx: c, name: "ctx"})
		e.ctx = c.region
	case t == ebpf.Syscall:
		e.ctxIn = slices.Clone(ctxIn)
		e.ctx = m.newRegion(&region{kind: RegionCtx, buf: slices.Clone(ctxIn), hi: uint32(len(ctxIn)), name: "ctx"})
	case t == ebpf.RawTracepoint:
		e.ctxIn = slices.Clone(ctxIn)
		e.ctx = m.newRegion(&region{kind: RegionCtx, buf: slices.Clone(ctxIn), hi: uint32(len(ctxIn)), ro: true, name: "ctx"})
	default:
		return fmt.Errorf("the emulator does not run %s programs yet", t)
	}
	m.r[1] = regionAddr(e.ctx, 0)
	return nil
}

const (
	flowKeysSize = 56
	skLookupSize = 72
)

// initSKB fills the fields BPF_PROG_TEST_RUN's skb has before the program
// runs: eth_type_trans sets protocol and pkt_type, the device is the
// loopback unless the context names one, and a socket stands in with the
// packet's IPv4 addresses.
func (e *env) initSKB(buf, frame []byte, p *packet) error {
	put := func(off uint32, v uint32) { binary.LittleEndian.PutUint32(buf[off:], v) }
	get := func(off uint32) uint32 { return binary.LittleEndian.Uint32(buf[off:]) }
	ifx := get(skbIfindex)
	dev := net.HardwareAddr(make([]byte, 6))
	if ifx <= 1 {
		ifx = loopbackIfindex
	} else if iface, err := net.InterfaceByIndex(int(ifx)); err == nil && len(iface.HardwareAddr) == 6 {
		dev = iface.HardwareAddr
	}
	put(skbIfindex, ifx)
	dst := frame[0:6]
	switch {
	case dst[0]&1 != 0 && string(dst) == "\xff\xff\xff\xff\xff\xff":
		put(skbPktType, 1) // PACKET_BROADCAST
	case dst[0]&1 != 0:
		put(skbPktType, 2) // PACKET_MULTICAST
	case string(dst) != string(dev):
		put(skbPktType, 3) // PACKET_OTHERHOST
	default:
		put(skbPktType, 0) // PACKET_HOST
	}
	proto := binary.BigEndian.Uint16(frame[12:14])
	switch {
	case proto >= 0x600:
		put(skbProtocol, uint32(binary.LittleEndian.Uint16(frame[12:14])))
	case len(frame) >= 16 && frame[14] == 0xff && frame[15] == 0xff:
		put(skbProtocol, 0x0100) // htons(ETH_P_802_3)
	default:
		put(skbProtocol, 0x0400) // htons(ETH_P_802_2)
	}
	// wire_len: the context's, or the skb's length then.
	if get(skbWireLen) == 0 {
		put(skbWireLen, p.end-p.data)
	}
	// The stand-in socket (family and addresses, read by socket filters
	// and cgroup programs).
	switch proto {
	case 0x0800:
		put(skbFamily, 2)
		if len(frame) >= ethHeaderLen+20 {
			put(skbLocalIP4, binary.LittleEndian.Uint32(frame[ethHeaderLen+12:]))
			put(skbRemoteIP4, binary.LittleEndian.Uint32(frame[ethHeaderLen+16:]))
		}
	case 0x86dd:
		put(skbFamily, 10)
		if len(frame) >= ethHeaderLen+40 {
			copy(buf[skbLocalIP6:skbLocalIP6+16], frame[ethHeaderLen+8:])
			copy(buf[skbRemoteIP6:skbRemoteIP6+16], frame[ethHeaderLen+24:])
		}
	}
	return nil
}

// isSKBType reports whether t runs on an skb built by bpf_prog_test_run_skb.
func isSKBType(t ebpf.ProgramType) bool {
	switch t {
	case ebpf.SocketFilter, ebpf.SchedCLS, ebpf.SchedACT, ebpf.CGroupSKB,
		ebpf.LWTIn, ebpf.LWTOut, ebpf.LWTXmit, ebpf.LWTSeg6Local:
		return true
	}
	return false
}

// isL2Type reports whether the program sees the Ethernet header.
func isL2Type(t ebpf.ProgramType) bool {
	return t == ebpf.XDP || t == ebpf.SchedCLS || t == ebpf.SchedACT
}
