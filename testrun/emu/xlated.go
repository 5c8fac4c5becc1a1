// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Programs someone else loaded (bpftool, another loader) come with no ELF:
// what the kernel keeps of them is their translated instructions
// (BPF_OBJ_GET_INFO_BY_FD's xlated_prog_insns), the BTF, func info and
// line info they were loaded with, and the ids of their maps. The verifier
// rewrote the instructions on the way in:
//
//   - ctx field accesses became loads from the kernel's own structs
//     (xdp_md->data is xdp_buff->data, a u64; xdp_md->ingress_ifindex is
//     rxq->dev->ifindex, three loads);
//   - helper calls carry the helper's address relative to __bpf_call_base,
//     and map helpers call the map's own operation (htab_map_update_elem);
//   - array lookups, hash lookups (around __htab_map_lookup_elem),
//     bpf_get_smp_processor_id, bpf_jiffies64 and bpf_loop are inlined
//     into instruction sequences;
//   - bpf_timer_set_callback gets a hidden third argument (prog->aux).
//
// FromKernel undoes these, slot for slot: a sequence the kernel inlined
// becomes the helper call at its first slot, followed by a jump over the
// rest, so that the kernel's line info and func info still apply to the
// same slots. For the kernel check the program is loaded again with the
// jumped-over slots removed (the verifier refuses unreachable code).

// ErrNotRebuilt wraps why a program cannot be rebuilt from its translated
// instructions.
var ErrNotRebuilt = errors.New("cannot be rebuilt from the kernel's translated instructions")

// xlatedError is a rewrite FromKernel cannot undo, at a slot.
type xlatedError struct {
	pc  int
	why string
}

func (e *xlatedError) Error() string {
	return fmt.Sprintf("instruction %d: %s", e.pc, e.why)
}

func (e *xlatedError) Unwrap() error { return ErrNotRebuilt }

// xlatedReload is what loading a rebuilt program again needs.
type xlatedReload struct {
	// code is the rebuilt program without the jumped-over slots; lines
	// and funcs are remapped to it.
	code  []byte
	lines btf.LineOffsets
	funcs btf.FuncOffsets
	// mapIDs are the kernel ids of p.maps, in order.
	mapIDs []ebpf.MapID
}

// Helper ids by the kernel's function name, for the names that are not
// "bpf_" + the helper's name.
var helperAliases = map[string]asm.BuiltinFunc{
	"bpf_get_raw_cpu_id":    asm.FnGetSmpProcessorId,
	"bpf_user_rnd_u32":      asm.FnGetPrandomU32,
	"bpf_xdp_redirect":      asm.FnRedirect,
	"bpf_xdp_event_output":  asm.FnPerfEventOutput,
	"bpf_skb_event_output":  asm.FnPerfEventOutput,
	"bpf_get_numa_node_id":  asm.FnGetNumaNodeId,
	"bpf_ktime_get_ns":      asm.FnKtimeGetNs,
	"bpf_skb_load_helper_8": asm.FnSkbLoadBytes,
}

// mapOpSuffixes name the map operations the kernel calls directly for
// map helpers ("htab_map_update_elem", "array_map_lookup_elem").
var mapOpSuffixes = []struct {
	suffix string
	fn     asm.BuiltinFunc
}{
	{"_map_lookup_percpu_elem", asm.FnMapLookupPercpuElem},
	{"_map_lookup_elem", asm.FnMapLookupElem},
	{"_map_update_elem", asm.FnMapUpdateElem},
	{"_map_delete_elem", asm.FnMapDeleteElem},
	{"_map_push_elem", asm.FnMapPushElem},
	{"_map_pop_elem", asm.FnMapPopElem},
	{"_map_peek_elem", asm.FnMapPeekElem},
	{"_map_redirect", asm.FnRedirectMap},
}

var (
	helpersByNameOnce sync.Once
	helpersByName     map[string]asm.BuiltinFunc
)

// helperOfSymbol is the helper a kernel function implements.
func helperOfSymbol(name string) (asm.BuiltinFunc, bool) {
	helpersByNameOnce.Do(func() {
		helpersByName = map[string]asm.BuiltinFunc{}
		for id := int32(1); id < 512; id++ {
			n := helperName(id)
			if strings.HasPrefix(n, "helper#") {
				continue
			}
			helpersByName[n] = asm.BuiltinFunc(id)
		}
	})
	if fn, ok := helperAliases[name]; ok {
		return fn, true
	}
	if fn, ok := helpersByName[name]; ok {
		return fn, true
	}
	if strings.HasPrefix(name, "bpf_for_each_") && strings.HasSuffix(name, "_elem") {
		return asm.FnForEachMapElem, true // bpf_for_each_hash_elem, bpf_for_each_array_elem
	}
	for _, s := range mapOpSuffixes {
		if strings.HasSuffix(name, s.suffix) {
			return s.fn, true
		}
	}
	return 0, false
}

// Raw opcodes the rebuilder matches.
const (
	opLdImm64  = 0x18
	opCall     = 0x85
	opJa       = 0x05
	opExit     = 0x95
	opMov64K   = 0xb7
	opMov64X   = 0xbf
	opMov32K   = 0xb4
	opMov32X   = 0xbc
	opAdd64K   = 0x07
	opLdxW     = 0x61
	opLdxDW    = 0x79
	opJgeK     = 0x35
	opJeqK     = 0x15
	opJleK     = 0xb5
	bpfMaxLoop = 1 << 23
)

// rebuild is a program being turned back from its translated form.
type rebuild struct {
	raw  []rawInsn
	dead []bool
	typ  ebpf.ProgramType
	// notes say what was undone at a slot, for the disassembly.
	notes map[int]string
	// kfuncs names the kernel functions kfunc calls reach, by slot.
	kfuncs map[int]string
}

func (r *rebuild) note(pc int, format string, args ...any) {
	if r.notes == nil {
		r.notes = map[int]string{}
	}
	r.notes[pc] = fmt.Sprintf(format, args...)
}

func (r *rebuild) wide(pc int) bool { return r.raw[pc].code == opLdImm64 }

// kill marks slots [from, to] as jumped over.
func (r *rebuild) kill(from, to int) {
	for i := from; i <= to && i < len(r.dead); i++ {
		r.dead[i] = true
	}
}

// FromKernel rebuilds a loaded program that no object bpfsh knows holds
// from the kernel's translated instructions, and opens the maps it uses.
// A rewrite it cannot undo is an error wrapping ErrNotRebuilt that names
// the instruction.
func FromKernel(prog *ebpf.Program) (*Program, *Maps, error) {
	info, err := prog.Info()
	if err != nil {
		return nil, nil, fmt.Errorf("read the program's info: %w", err)
	}
	x, err := bpf.ReadXlated(prog)
	if err != nil {
		return nil, nil, err
	}
	r := &rebuild{raw: splitRaw(x.Code), typ: info.Type}
	r.dead = make([]bool, len(r.raw))
	if err := r.calls(); err != nil {
		return nil, nil, err
	}
	if err := r.inlined(); err != nil {
		return nil, nil, err
	}
	if err := r.ctxAccesses(); err != nil {
		return nil, nil, err
	}
	p, maps, err := r.program(info, x)
	if err != nil {
		return nil, nil, err
	}
	maps.Programs = xlatedTailTarget
	return p, maps, nil
}

// xlatedTailTarget resolves a tail call's target among loaded programs:
// from the objects the engine knows, else rebuilt from the kernel's
// translated instructions too.
func xlatedTailTarget(id ebpf.ProgramID) (*Program, []*ebpf.Map, error) {
	tp, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return nil, nil, fmt.Errorf("open program id %d: %w", id, err)
	}
	defer tp.Close()
	if ti, err := tp.Info(); err == nil {
		if target, err := findProgram(ti, nil); err == nil {
			ms, err := programMaps(ti, target)
			return target, ms, err
		}
	}
	target, tmaps, err := FromKernel(tp)
	if err != nil {
		return nil, nil, err
	}
	ms := make([]*ebpf.Map, len(target.maps))
	for i, ref := range target.maps {
		ms[i] = tmaps.ByName[ref.Name]
	}
	return target, ms, nil
}

// calls names every helper call's target and turns it back into the
// helper's id; the hash lookups the kernel inlined around
// __htab_map_lookup_elem become bpf_map_lookup_elem again.
func (r *rebuild) calls() error {
	var offs []int32
	for pc := 0; pc < len(r.raw); pc++ {
		if in := &r.raw[pc]; in.code == opCall && in.src == pseudoCall {
			// The kernel dumps a bpf-to-bpf call with the relative offset
			// in off and the callee's index (among the JITed functions,
			// or an interpreter's entry) in imm.
			in.imm, in.off = int32(in.off), 0
		}
		if in := r.raw[pc]; in.code == opCall && (in.src == 0 || in.src == pseudoKfuncCall) {
			offs = append(offs, in.imm)
		}
		if r.wide(pc) {
			pc++
		}
	}
	if len(offs) == 0 {
		return nil
	}
	names := callTargets(offs)
	if names == nil {
		return &xlatedError{pc: 0, why: "the kernel hides its addresses (/proc/kallsyms, as root with kptr_restrict off), so the helpers the program calls cannot be named"}
	}
	for pc := 0; pc < len(r.raw); pc++ {
		in := &r.raw[pc]
		if r.wide(pc) {
			pc++
			continue
		}
		if in.code == opCall && in.src == pseudoKfuncCall {
			// A kfunc: named for the session, which stops at it.
			if r.kfuncs == nil {
				r.kfuncs = map[int]string{}
			}
			name, ok := names[in.imm]
			if !ok {
				name = fmt.Sprintf("at __bpf_call_base%+d", in.imm)
			}
			r.kfuncs[pc] = name
			continue
		}
		if in.code != opCall || in.src != 0 {
			continue
		}
		name, ok := names[in.imm]
		if !ok && in.imm == int32(asm.FnTailCall) {
			// The kernel dumps its tail-call instruction as this call.
			continue
		}
		if !ok {
			return &xlatedError{pc: pc, why: fmt.Sprintf("calls kernel address __bpf_call_base%+d, which /proc/kallsyms does not name", in.imm)}
		}
		if strings.HasPrefix(name, "__htab_map_lookup_elem") || name == "__htab_lru_map_lookup_elem" {
			// call; if r0 == 0 goto +k; ... (k slots the lookup added)
			if pc+1 >= len(r.raw) || r.raw[pc+1].code != opJeqK || r.raw[pc+1].dst != 0 || r.raw[pc+1].imm != 0 || r.raw[pc+1].off < 0 {
				return &xlatedError{pc: pc, why: "an inlined hash map lookup in a form the debugger does not know"}
			}
			in.imm = int32(asm.FnMapLookupElem)
			r.kill(pc+1, pc+1+int(r.raw[pc+1].off))
			r.note(pc, "the kernel inlined it around %s", name)
			continue
		}
		fn, ok := helperOfSymbol(name)
		if !ok {
			return &xlatedError{pc: pc, why: fmt.Sprintf("calls kernel function %s, which is no helper the debugger knows", name)}
		}
		in.imm = int32(fn)
		if fn == asm.FnTimerSetCallback && pc >= 2 && r.raw[pc-2].code == opLdImm64 && r.raw[pc-2].src == 0 && r.raw[pc-2].dst == 3 {
			// The verifier passes prog->aux as a hidden third argument.
			r.kill(pc-2, pc-1)
			r.note(pc, "the kernel adds a hidden argument before it")
		}
	}
	return nil
}

// inlined finds the other sequences the kernel inlined: array and
// per-CPU array lookups, bpf_get_smp_processor_id, bpf_jiffies64 and
// bpf_loop.
func (r *rebuild) inlined() error {
	var jiffies map[uint64]bool
	for pc := 0; pc < len(r.raw); pc++ {
		if r.dead[pc] {
			continue
		}
		in := r.raw[pc]
		at := func(i int) rawInsn {
			if pc+i < 0 || pc+i >= len(r.raw) {
				return rawInsn{code: 0xff}
			}
			return r.raw[pc+i]
		}
		switch {
		// Array lookups (array_map_gen_lookup, percpu_array_map_gen_lookup,
		// array_of_map_gen_lookup): r1 += offsetof(value); r0 = *(u32 *)(r2 +0);
		// if r0 >= max_entries goto END; ...; goto +1; END: r0 = 0.
		case in.code == opAdd64K && in.dst == 1 && at(1).code == opLdxW && at(1).dst == 0 && at(1).src == 2 && at(1).off == 0 &&
			at(2).code == opJgeK && at(2).dst == 0 && at(2).off > 0:
			end := pc + 3 + int(at(2).off)
			if end >= len(r.raw) || r.raw[end].code != opMov64K || r.raw[end].dst != 0 || r.raw[end].imm != 0 ||
				r.raw[end-1].code != opJa || r.raw[end-1].off != 1 {
				return &xlatedError{pc: pc, why: "an inlined array map lookup in a form the debugger does not know"}
			}
			r.raw[pc] = rawInsn{code: opCall, imm: int32(asm.FnMapLookupElem)}
			r.kill(pc+1, end)
			r.note(pc, "the kernel inlined this array lookup (%d instructions)", end-pc+1)
			pc = end
		// bpf_get_smp_processor_id: r0 = &cpu_number; r0 = per-CPU r0; r0 = *(u32 *)(r0 +0).
		case (in.code == opMov32K || in.code == opMov64K) && in.dst == 0 && at(1).code == opMov64X && at(1).off == -1 && at(1).dst == 0 &&
			at(2).code == opLdxW && at(2).dst == 0 && at(2).src == 0:
			r.raw[pc] = rawInsn{code: opCall, imm: int32(asm.FnGetSmpProcessorId)}
			r.kill(pc+1, pc+2)
			r.note(pc, "the kernel inlined it (a per-CPU read)")
			pc += 2
		// bpf_jiffies64: r0 = &jiffies; r0 = *(u64 *)(r0 +0).
		case in.code == opLdImm64 && in.src == 0 && in.dst == 0 && at(2).code == opLdxDW && at(2).dst == 0 && at(2).src == 0 && at(2).off == 0:
			if jiffies == nil {
				jiffies = map[uint64]bool{}
				for _, name := range []string{"jiffies_64", "jiffies"} {
					if a := kernelSymbol(name); a != 0 {
						jiffies[a] = true
					}
				}
			}
			addr := uint64(uint32(in.imm)) | uint64(uint32(at(1).imm))<<32
			if jiffies[addr] {
				r.raw[pc] = rawInsn{code: opCall, imm: int32(asm.FnJiffies64)}
				r.kill(pc+1, pc+2)
				r.note(pc, "the kernel inlined it (a read of jiffies)")
				pc += 2
				continue
			}
			pc++
		// bpf_loop (inline_bpf_loop): if r1 <= BPF_MAX_LOOPS goto +2; w0 = -E2BIG;
		// goto +16; 16 more slots calling the callback in a loop.
		case in.code == opJleK && in.dst == 1 && in.imm == bpfMaxLoop && in.off == 2 && at(1).code == opMov32K && at(1).dst == 0 &&
			at(2).code == opJa && at(2).off == 16 && at(12).code == opCall && at(12).src == pseudoCall:
			r.raw[pc] = rawInsn{code: opCall, imm: int32(asm.FnLoop)}
			r.kill(pc+1, pc+18)
			r.note(pc, "the kernel inlined it (19 instructions)")
			pc += 18
		// BPF_ZEXT_REG: w = w with imm 1, the verifier's explicit zero
		// extension (after a 32-bit cmpxchg): a plain w = w.
		case in.code == opMov32X && in.imm == 1 && in.src == in.dst:
			r.raw[pc].imm = 0
		case in.code == opMov64X && in.off == -1:
			return &xlatedError{pc: pc, why: "reads a per-CPU kernel address (a helper or per-CPU lookup the kernel inlined in a form the debugger does not know)"}
		case in.code == opLdImm64:
			pc++
		}
	}
	return nil
}

// ctxField is one field of the program's context as the kernel rewrote
// its accesses: a load or store of size at off in the kernel's struct.
type ctxField struct {
	size uint8 // bytes the kernel accesses
	off  int16 // in the kernel's struct
	// next are the loads that follow through pointers (rxq->dev->ifindex):
	// sizes and offsets, each based on the previous load's result.
	next []ctxHop
	// field is the offset of the field in the program's context struct;
	// fsize the size a program reads it with (0: 4).
	field int16
	fsize uint8
	name  string
}

type ctxHop struct {
	size uint8 // 0: a jump over the rest when the pointer is NULL
	off  int16
}

// ctxTable lists the context fields the debugger can map back for a
// program type, from vmlinux BTF.
func ctxTable(t ebpf.ProgramType) ([]ctxField, string, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, "", fmt.Errorf("read vmlinux BTF: %w", err)
	}
	off := func(typ string, path ...string) (int16, bool) {
		var s *btf.Struct
		if err := spec.TypeByName(typ, &s); err != nil {
			return 0, false
		}
		var t btf.Type = s
		total := 0
		for _, name := range path {
			o, mt, ok := memberOffset(t, name)
			if !ok {
				return 0, false
			}
			total += o
			t = mt
		}
		return int16(total), true
	}
	var out []ctxField
	add := func(f ctxField, ok ...bool) {
		for _, o := range ok {
			if !o {
				return
			}
		}
		out = append(out, f)
	}
	switch t {
	case ebpf.Syscall, ebpf.RawTracepoint, ebpf.RawTracepointWritable:
		// The context is the program's own memory: nothing is rewritten.
		return nil, "", errIdentityCtx
	case ebpf.SkLookup:
		sk := func(name string, size uint8, path ...string) {
			o, ok := off("bpf_sk_lookup_kern", path...)
			f, ok2 := off("bpf_sk_lookup", name)
			add(ctxField{size: size, off: o, field: f, name: name}, ok, ok2)
		}
		sk("family", 2, "family")
		sk("protocol", 2, "protocol")
		sk("remote_port", 2, "sport")
		sk("local_port", 2, "dport")
		sk("remote_ip4", 4, "v4", "saddr")
		sk("local_ip4", 4, "v4", "daddr")
		sk("ingress_ifindex", 4, "ingress_ifindex")
		return out, "struct bpf_sk_lookup_kern", nil
	case ebpf.FlowDissector:
		fd := func(name string, fsize uint8, kname string) {
			o, ok := off("bpf_flow_dissector", kname)
			f, ok2 := off("__sk_buff", name)
			add(ctxField{size: 8, off: o, field: f, fsize: fsize, name: name}, ok, ok2)
		}
		fd("flow_keys", 8, "flow_keys")
		fd("data", 4, "data")
		fd("data_end", 4, "data_end")
		return out, "struct bpf_flow_dissector", nil
	case ebpf.XDP:
		data, ok1 := off("xdp_buff", "data")
		end, ok2 := off("xdp_buff", "data_end")
		meta, ok3 := off("xdp_buff", "data_meta")
		rxq, ok4 := off("xdp_buff", "rxq")
		txq, ok5 := off("xdp_buff", "txq")
		rdev, ok6 := off("xdp_rxq_info", "dev")
		qidx, ok7 := off("xdp_rxq_info", "queue_index")
		tdev, ok8 := off("xdp_txq_info", "dev")
		ifx, ok9 := off("net_device", "ifindex")
		add(ctxField{size: 8, off: data, field: 0, name: "data"}, ok1)
		add(ctxField{size: 8, off: end, field: 4, name: "data_end"}, ok2)
		add(ctxField{size: 8, off: meta, field: 8, name: "data_meta"}, ok3)
		add(ctxField{size: 8, off: rxq, next: []ctxHop{{8, rdev}, {4, ifx}}, field: 12, name: "ingress_ifindex"}, ok4, ok6, ok9)
		add(ctxField{size: 8, off: rxq, next: []ctxHop{{4, qidx}}, field: 16, name: "rx_queue_index"}, ok4, ok7)
		add(ctxField{size: 8, off: txq, next: []ctxHop{{8, tdev}, {4, ifx}}, field: 20, name: "egress_ifindex"}, ok5, ok8, ok9)
		return out, "struct xdp_buff", nil
	case ebpf.SchedCLS, ebpf.SchedACT, ebpf.SocketFilter, ebpf.CGroupSKB:
		sk := func(name string, size uint8, path ...string) {
			o, ok := off("sk_buff", path...)
			f, ok2 := off("__sk_buff", name)
			add(ctxField{size: size, off: o, field: f, name: name}, ok, ok2)
		}
		sk("len", 4, "len")
		sk("mark", 4, "mark")
		sk("priority", 4, "priority")
		sk("protocol", 2, "protocol")
		sk("queue_mapping", 2, "queue_mapping")
		sk("tc_index", 2, "tc_index")
		sk("hash", 4, "hash")
		sk("data", 8, "data")
		sk("ingress_ifindex", 4, "skb_iif")
		sk("vlan_tci", 2, "vlan_tci")
		sk("vlan_proto", 2, "vlan_proto")
		if dev, ok := off("sk_buff", "dev"); ok {
			ifx, ok2 := off("net_device", "ifindex")
			f, ok3 := off("__sk_buff", "ifindex")
			// skb->dev ? skb->dev->ifindex : 0 on older kernels,
			// skb->dev->ifindex on newer ones.
			add(ctxField{size: 8, off: dev, next: []ctxHop{{0, 1}, {4, ifx}}, field: f, name: "ifindex"}, ok2, ok3)
			add(ctxField{size: 8, off: dev, next: []ctxHop{{4, ifx}}, field: f, name: "ifindex"}, ok2, ok3)
		}
		cb, ok := off("sk_buff", "cb")
		dend, ok2 := off("bpf_skb_data_end", "data_end")
		fend, ok3 := off("__sk_buff", "data_end")
		add(ctxField{size: 8, off: cb + dend, field: fend, name: "data_end"}, ok, ok2, ok3)
		qdata, ok4 := off("qdisc_skb_cb", "data")
		fcb, ok5 := off("__sk_buff", "cb")
		if plen, ok6 := off("qdisc_skb_cb", "pkt_len"); ok && ok6 {
			f, ok7 := off("__sk_buff", "wire_len")
			add(ctxField{size: 4, off: cb + plen, field: f, name: "wire_len"}, ok7)
		}
		if cls, ok6 := off("qdisc_skb_cb", "tc_classid"); ok && ok6 {
			f, ok7 := off("__sk_buff", "tc_classid")
			add(ctxField{size: 2, off: cb + cls, field: f, name: "tc_classid"}, ok7)
		}
		for i := int16(0); i < 5; i++ {
			add(ctxField{size: 4, off: cb + qdata + 4*i, field: fcb + 4*i, name: fmt.Sprintf("cb[%d]", i)}, ok, ok4, ok5)
		}
		return out, "struct sk_buff", nil
	}
	return nil, "", nil
}

// ctxAccesses finds the loads and stores through the context pointer
// (following it through moves, spills and calls, as the verifier does)
// and turns them back into accesses of the program's context struct.
func (r *rebuild) ctxAccesses() error {
	n := len(r.raw)
	type state struct {
		regs  uint16 // registers holding ctx
		stack uint64 // 8-byte stack slots (fp-8 is bit 0) holding ctx
		seen  bool
	}
	st := make([]state, n)
	var work []int
	push := func(pc int, s state) {
		if pc < 0 || pc >= n {
			return
		}
		old := st[pc]
		nw := state{regs: old.regs | s.regs, stack: old.stack | s.stack, seen: true}
		if old.seen && nw == old {
			return
		}
		st[pc] = nw
		work = append(work, pc)
	}
	slot := func(off int16) (uint, bool) {
		if off >= 0 || off < -512 || off%8 != 0 {
			return 0, false
		}
		return uint(-off/8 - 1), -off/8-1 < 64
	}
	isCtx := map[int]bool{}
	push(0, state{regs: 1 << 1})
	for len(work) > 0 {
		pc := work[len(work)-1]
		work = work[:len(work)-1]
		s := st[pc]
		s.seen = true
		in := r.raw[pc]
		if r.dead[pc] {
			// A jumped-over slot: go on after the run.
			end := pc
			for end < n && r.dead[end] {
				end++
			}
			push(end, s)
			continue
		}
		cls := in.code & 7
		bit := func(reg uint8) bool { return s.regs&(1<<reg) != 0 }
		set := func(reg uint8, v bool) {
			if v {
				s.regs |= 1 << reg
			} else {
				s.regs &^= 1 << reg
			}
		}
		next := pc + 1
		switch cls {
		case clsALU64, clsALU:
			if in.code == opMov64X && in.off == 0 {
				set(in.dst, bit(in.src))
			} else {
				set(in.dst, false)
			}
		case clsLDX:
			switch {
			case bit(in.src):
				isCtx[pc] = true
				set(in.dst, false)
			case in.src == 10 && in.code == opLdxDW:
				b, ok := slot(in.off)
				set(in.dst, ok && s.stack&(1<<b) != 0)
			default:
				set(in.dst, false)
			}
		case clsST, clsSTX:
			if bit(in.dst) && in.code&0xe0 == 0x60 { // MEM, not atomics
				isCtx[pc] = true
			}
			if in.dst == 10 {
				if b, ok := slot(in.off &^ 7); ok {
					s.stack &^= 1 << b
					if cls == clsSTX && in.code&0x18 == 0x18 && in.code&0xe0 == 0x60 && in.off%8 == 0 && bit(in.src) {
						s.stack |= 1 << b
					}
				}
			}
			if cls == clsSTX && in.code&0xe0 == 0xc0 { // atomics may write src or r0
				set(in.src, false)
				set(0, false)
			}
		case clsLD:
			set(in.dst, false)
			if in.code == opLdImm64 {
				next = pc + 2
			}
		case clsJMP, clsJMP32:
			op := in.code & 0xf0
			switch {
			case in.code == opExit:
				continue
			case in.code == opCall && in.src == pseudoCall:
				push(pc+1+int(in.imm), state{regs: s.regs & 0x3e})
				s.regs &^= 0x3f
			case in.code == opCall:
				s.regs &^= 0x3f
			case op == 0x00: // ja
				off := int(in.off)
				if cls == clsJMP32 {
					off = int(in.imm)
				}
				push(pc+1+off, s)
				continue
			default:
				push(pc+1+int(in.off), s)
			}
		}
		push(next, s)
	}
	if len(isCtx) == 0 {
		return nil
	}
	table, kstruct, err := ctxTable(r.typ)
	if errors.Is(err, errIdentityCtx) {
		return nil
	}
	if err != nil {
		return err
	}
	for pc := 0; pc < n; pc++ {
		if !isCtx[pc] {
			continue
		}
		in := r.raw[pc]
		size := sizeBytes[(in.code&0x18)>>3]
		cls := in.code & 7
		var match *ctxField
		for i := range table {
			f := &table[i]
			if f.off != in.off || f.size != size {
				continue
			}
			if len(f.next) > 0 && (cls != clsLDX || !r.hopsFollow(pc, in.dst, f.next)) {
				continue
			}
			if len(f.next) == 0 && match != nil {
				continue
			}
			match = f
			if len(f.next) > 0 {
				break
			}
		}
		if match == nil {
			what := "reads"
			if cls != clsLDX {
				what = "writes"
			}
			if table == nil {
				return &xlatedError{pc: pc, why: fmt.Sprintf("%s the context of a %s program, whose rewrites the debugger cannot undo", what, bpf.ProgTypeName(uint32(r.typ)))}
			}
			return &xlatedError{pc: pc, why: fmt.Sprintf("%s %d bytes at offset %d of %s (a context field the kernel rewrote), which the debugger cannot map back", what, size, in.off, kstruct)}
		}
		// The program's context fields are read and written as u32, but
		// for pointers (flow_keys).
		r.raw[pc].code = in.code &^ 0x18
		if match.fsize == 8 {
			r.raw[pc].code |= 0x18
		}
		r.raw[pc].off = match.field
		if len(match.next) > 0 {
			r.kill(pc+1, pc+len(match.next))
		}
		r.note(pc, "ctx->%s: the kernel accesses %s +%d", match.name, kstruct, in.off)
	}
	return nil
}

// hopsFollow reports whether the slots after pc load through dst as
// hops says (dst = *(size *)(dst + off), each in turn).
func (r *rebuild) hopsFollow(pc int, dst uint8, hops []ctxHop) bool {
	for i, h := range hops {
		q := pc + 1 + i
		if q >= len(r.raw) || r.dead[q] {
			return false
		}
		in := r.raw[q]
		if h.size == 0 { // if dst == 0 goto +off (a NULL pointer on the way)
			if in.code != opJeqK || in.dst != dst || in.imm != 0 || in.off != h.off {
				return false
			}
			continue
		}
		if in.code&7 != clsLDX || in.code&0xe0 != 0x60 || in.dst != dst || in.src != dst || in.off != h.off || sizeBytes[(in.code&0x18)>>3] != h.size {
			return false
		}
	}
	return true
}

// encode writes the slots back to bytes; jumped-over runs become a jump
// over the run (then jumps to the next slot) when pad is set, and are
// left out otherwise, with jumps, calls and callbacks retargeted.
func (r *rebuild) encode(pad bool) ([]byte, []int) {
	n := len(r.raw)
	newIdx := make([]int, n+1)
	live := 0
	for i := range n {
		newIdx[i] = live
		if pad || !r.dead[i] {
			live++
		}
	}
	newIdx[n] = live
	out := make([]byte, 0, live*8)
	put := func(in rawInsn) {
		var b [8]byte
		b[0] = in.code
		b[1] = in.dst&0xf | in.src<<4
		binary.LittleEndian.PutUint16(b[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(b[4:], uint32(in.imm))
		out = append(out, b[:]...)
	}
	retarget := func(pc, rel int) int {
		t := pc + 1 + rel
		if t < 0 || t > n {
			return rel
		}
		return newIdx[t] - newIdx[pc] - 1
	}
	for pc := 0; pc < n; pc++ {
		in := r.raw[pc]
		if r.dead[pc] {
			if pad {
				end := pc
				for end < n && r.dead[end] {
					end++
				}
				put(rawInsn{code: opJa, off: int16(end - pc - 1)})
				for q := pc + 1; q < end; q++ {
					put(rawInsn{code: opJa})
				}
				pc = end - 1
			}
			continue
		}
		cls := in.code & 7
		switch {
		case pad:
		case in.code == opLdImm64 && in.src == pseudoFunc:
			in.imm = int32(retarget(pc, int(in.imm)))
		case in.code == opCall && in.src == pseudoCall:
			in.imm = int32(retarget(pc, int(in.imm)))
		case cls == clsJMP32 && in.code&0xf0 == 0x00:
			in.imm = int32(retarget(pc, int(in.imm)))
		case (cls == clsJMP || cls == clsJMP32) && in.code != opCall && in.code != opExit:
			in.off = int16(retarget(pc, int(in.off)))
		}
		put(in)
		if in.code == opLdImm64 && pc+1 < n {
			put(r.raw[pc+1])
			pc++
		}
	}
	return out, newIdx
}

// program makes the rebuilt Program and opens its maps.
func (r *rebuild) program(info *ebpf.ProgramInfo, x *bpf.Xlated) (*Program, *Maps, error) {
	padded, _ := r.encode(true)
	dec, err := decodeInsns(splitRaw(padded))
	if err != nil {
		return nil, nil, &xlatedError{pc: 0, why: err.Error()}
	}
	name := info.Name
	if len(x.Funcs) > 0 && x.Funcs[0].Offset == 0 {
		name = x.Funcs[0].Func.Name
	}
	p := &Program{Name: name, Type: info.Type, insns: dec, xlated: true, raw: padded, disasm: &disasmText{}}
	p.lines = make([]*btf.Line, len(dec))
	p.lineStart = make([]bool, len(dec))
	p.funcAt = make([]int32, len(dec))
	var cur *btf.Line
	li := 0
	for pc := range dec {
		for li < len(x.Lines) && int(x.Lines[li].Offset) <= pc {
			if l := x.Lines[li].Line; l != nil && l.LineNumber() != 0 {
				cur = l
				if int(x.Lines[li].Offset) == pc {
					p.lineStart[pc] = true
				}
			}
			li++
		}
		p.lines[pc] = cur
	}
	for _, f := range x.Funcs {
		if f.Func != nil && int(f.Offset) < len(dec) {
			p.funcs = append(p.funcs, Func{Name: f.Func.Name, Start: int(f.Offset), BTF: f.Func})
		}
	}
	if len(x.Funcs) == 0 {
		// Without func info, bpf-to-bpf calls still mark functions.
		for pc, in := range dec {
			if in.op == xCallLocal || in.op == xLdFunc {
				t := int(in.target)
				if t > 0 && t < len(dec) && !p.hasFuncAt(t) {
					p.funcs = append(p.funcs, Func{Name: fmt.Sprintf("func_%d", t), Start: t})
				}
			}
			_ = pc
		}
	}
	maps := &Maps{ByName: map[string]*ebpf.Map{}, PrivateReadOnly: true}
	byID := map[ebpf.MapID]int32{}
	reload := &xlatedReload{}
	for pc := range dec {
		in := &dec[pc]
		if in.op != xLdMap && in.op != xLdMapValue {
			continue
		}
		if r.raw[pc].src != pseudoMapFD && r.raw[pc].src != pseudoMapValue {
			maps.Close()
			return nil, nil, &xlatedError{pc: pc, why: fmt.Sprintf("a map load with src %d", r.raw[pc].src)}
		}
		id := ebpf.MapID(uint32(r.raw[pc].imm))
		i, ok := byID[id]
		if !ok {
			km, err := ebpf.NewMapFromID(id)
			if err != nil {
				maps.Close()
				return nil, nil, fmt.Errorf("open map id %d of program %s: %w", id, name, err)
			}
			ref := MapRef{ID: id, Spec: &ebpf.MapSpec{Type: km.Type(), KeySize: km.KeySize(), ValueSize: km.ValueSize(), MaxEntries: km.MaxEntries(), Flags: km.Flags()}}
			if d, err := bpf.DescribeMap(km); err == nil {
				ref.Name, ref.Spec.Name = d.Name, d.Name
				ref.Spec.Key, ref.Spec.Value = d.Key, d.Value
			}
			if ref.Name == "" || maps.ByName[ref.Name] != nil {
				ref.Name = fmt.Sprintf("%s#%d", ref.Name, id)
			}
			i = int32(len(p.maps))
			byID[id] = i
			p.maps = append(p.maps, ref)
			maps.ByName[ref.Name] = km
			reload.mapIDs = append(reload.mapIDs, id)
		}
		in.ref = i
	}
	for pc, name := range r.kfuncs {
		if pc < len(dec) && dec[pc].op == xCallKfunc {
			dec[pc].ref = int32(len(p.kfuncs))
			p.kfuncs = append(p.kfuncs, name)
		}
	}
	p.index()
	code, newIdx := r.encode(false)
	reload.code = code
	for _, l := range x.Lines {
		o := newIdx[min(int(l.Offset), len(newIdx)-1)]
		if k := len(reload.lines); k > 0 && int(reload.lines[k-1].Offset) == o {
			reload.lines[k-1].Line = l.Line
			continue
		}
		reload.lines = append(reload.lines, btf.LineOffset{Offset: asm.RawInstructionOffset(o), Line: l.Line})
	}
	for _, f := range x.Funcs {
		reload.funcs = append(reload.funcs, btf.FuncOffset{Offset: asm.RawInstructionOffset(newIdx[min(int(f.Offset), len(newIdx)-1)]), Func: f.Func})
	}
	p.reload = reload
	p.notes = r.notes
	for pc := range r.dead {
		if r.dead[pc] && (pc == 0 || !r.dead[pc-1]) {
			if p.notes == nil {
				p.notes = map[int]string{}
			}
			p.notes[pc] = "over the instructions the kernel added here"
		}
	}
	return p, maps, nil
}

func (p *Program) hasFuncAt(pc int) bool {
	for _, f := range p.funcs {
		if f.Start == pc {
			return true
		}
	}
	return false
}

// errIdentityCtx says a program type's context accesses are not rewritten.
var errIdentityCtx = errors.New("the context is not rewritten")

// memberOffset finds a member by name in a struct or union, looking
// inside anonymous structs and unions (sk_buff's mark is in one).
func memberOffset(t btf.Type, name string) (int, btf.Type, bool) {
	var members []btf.Member
	switch s := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = s.Members
	case *btf.Union:
		members = s.Members
	default:
		return 0, nil, false
	}
	for _, m := range members {
		if m.Name == name {
			return int(m.Offset.Bytes()), m.Type, true
		}
	}
	for _, m := range members {
		if m.Name != "" {
			continue
		}
		if o, mt, ok := memberOffset(m.Type, name); ok {
			return int(m.Offset.Bytes()) + o, mt, true
		}
	}
	return 0, nil, false
}

// The kernel's text does not move while it runs: what /proc/kallsyms
// said about a helper's address (relative to __bpf_call_base) or a
// symbol's address is kept, so that rebuilding reads the 100k-line file
// once for each new question only.
var (
	ksymMu    sync.Mutex
	ksymCalls = map[int32]string{}
	ksymAddrs = map[string]uint64{}
)

// callTargets names the kernel functions of call offsets; nil when the
// kernel hides its addresses.
func callTargets(offs []int32) map[int32]string {
	ksymMu.Lock()
	defer ksymMu.Unlock()
	var missing []int32
	for _, o := range offs {
		if _, ok := ksymCalls[o]; !ok {
			missing = append(missing, o)
		}
	}
	if len(missing) > 0 {
		found := bpf.KernelCallTargets(missing)
		if found == nil {
			return nil
		}
		for _, o := range missing {
			ksymCalls[o] = found[o] // "" when it has no symbol
		}
	}
	out := map[int32]string{}
	for _, o := range offs {
		if n := ksymCalls[o]; n != "" {
			out[o] = n
		}
	}
	return out
}

// kernelSymbol is a kernel symbol's address, 0 if unknown.
func kernelSymbol(name string) uint64 {
	ksymMu.Lock()
	defer ksymMu.Unlock()
	a, ok := ksymAddrs[name]
	if !ok {
		a = bpf.KernelSymbolAddress(name)
		ksymAddrs[name] = a
	}
	return a
}
