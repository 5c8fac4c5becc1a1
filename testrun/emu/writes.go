// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Which maps can a program write?
//
// A run's map diff reads every map the program uses before and after the
// run. A map the program can never write needs neither reading: the run
// cannot change it. MapWrites answers from the program's instructions, by
// a forward data flow over every path (no path is ruled out by values), in
// which each register holds the set of maps it may point into:
//
//   - a 64-bit load of a map or of an address in a map's value points into
//     that map;
//   - arithmetic and moves carry the sets of their operands (32-bit ones
//     too: more than the verifier allows, never less);
//   - a load through a pointer yields the pointer's set (a map value holds
//     no pointer into a map, but saying so costs nothing), and the stack
//     is one cell for all frames that holds the union of everything ever
//     stored in it;
//   - a helper or kfunc call returns the union of its arguments' sets (a
//     lookup returns a pointer into the map it was given), and with a
//     stack pointer among them, the stack's too;
//   - BPF-to-BPF calls join the arguments of every call site into the
//     callee's entry and its returns into every call site's r0; callbacks
//     (bpf_loop, bpf_for_each_map_elem, timers) start with every set any
//     call was given.
//
// A map is written when a store or an atomic operation goes through a
// pointer that may point into it, or when a pointer that may point into it
// is given to a helper or kfunc as an argument that helper may write
// through: every argument of every call except the few read-only ones
// below (a lookup's map and key, an update's key and value, printk's
// arguments, ...). A tail call or bpf_sys_bpf, which can write maps the
// instructions never name, makes MapWrites give up: the caller then diffs
// every map.

// stackBit marks a set that may hold a stack pointer.
const stackBit = uint64(1) << 63

// readOnlyArgs are, per helper, the arguments (1-5) it only reads.
var readOnlyArgs = map[asm.BuiltinFunc][]int{
	asm.FnMapLookupElem:       {1, 2},
	asm.FnMapLookupPercpuElem: {1, 2},
	asm.FnMapUpdateElem:       {2, 3},
	asm.FnMapDeleteElem:       {2},
	asm.FnMapPushElem:         {2},
	asm.FnMapPeekElem:         {1},
	asm.FnTracePrintk:         {1, 2, 3, 4, 5},
	asm.FnTraceVprintk:        {1, 2, 3, 4, 5},
	asm.FnPerfEventOutput:     {4},
	asm.FnRingbufOutput:       {2},
	asm.FnCsumDiff:            {1, 3},
	asm.FnSkbStoreBytes:       {3},
	asm.FnXdpStoreBytes:       {3},
}

// opaqueHelpers can change maps the program's instructions do not name.
var opaqueHelpers = map[asm.BuiltinFunc]string{
	asm.FnTailCall: "it makes tail calls (the programs it jumps to may write any map)",
	asm.FnSysBpf:   "it calls bpf_sys_bpf (which can update any map by fd)",
}

// MapWrites says, for each map the program refers to (in the order of
// Maps, the kernel's order of its map ids), whether a run of it may write
// that map. err says why it cannot tell, in words for a user; the caller
// must then treat every map as written.
func (p *Program) MapWrites() ([]bool, error) {
	if len(p.maps) >= 63 {
		return nil, fmt.Errorf("it refers to %d maps (the check follows at most 62)", len(p.maps))
	}
	n := len(p.insns)
	type regs [11]uint64
	in := make([]regs, n)
	seen := make([]bool, n)
	var (
		written uint64 // maps written
		stack   uint64 // what the stack may hold
		escaped uint64 // everything any call was given
	)
	entry := map[int]*regs{}   // a function's entry state, by first slot
	ret := map[int]uint64{}    // what a function may return, by first slot
	callers := map[int][]int{} // call sites, by callee's first slot
	callbacks := map[int]bool{}
	funcStart := func(pc int) int {
		if f, ok := p.FuncAt(pc); ok {
			return f.Start
		}
		return 0
	}

	var work []int
	push := func(pc int, st *regs) {
		if pc < 0 || pc >= n {
			return
		}
		old := in[pc]
		changed := !seen[pc]
		for i := range st {
			if old[i]|st[i] != old[i] {
				changed = true
				old[i] |= st[i]
			}
		}
		if changed {
			seen[pc] = true
			in[pc] = old
			work = append(work, pc)
		}
	}
	var start regs
	start[10] = stackBit
	push(0, &start)

	// Globals (stack, escaped, ret, entries) only grow; each change
	// requeues what depends on it, and the whole pass repeats until
	// nothing changes.
	for round := 0; ; round++ {
		if round > 256 {
			return nil, fmt.Errorf("the check did not settle")
		}
		globals := func() [3]uint64 { return [3]uint64{written, stack, escaped} }
		before := globals()
		for len(work) > 0 {
			pc := work[len(work)-1]
			work = work[:len(work)-1]
			st := in[pc]
			ins := &p.insns[pc]
			next := pc + 1
			ptr := func(r uint8) uint64 { return st[r] &^ stackBit }
			load := func(r uint8) uint64 {
				v := ptr(r)
				if st[r]&stackBit != 0 {
					v |= stack
				}
				return v
			}
			store := func(base uint8, val uint64) {
				written |= ptr(base)
				if st[base]&stackBit != 0 {
					stack |= val
				}
			}
			call := func(readOnly []int) {
				var all uint64
				toStack := false
				for a := 1; a <= 5; a++ {
					v := st[a]
					all |= v
					escaped |= v
					ro := false
					for _, r := range readOnly {
						ro = ro || r == a
					}
					if !ro {
						written |= v &^ stackBit
						if v&stackBit != 0 {
							toStack = true
						}
					}
				}
				if toStack {
					// A helper writing through a stack pointer may leave
					// there anything it was given (bpf_dynptr_from_mem).
					stack |= all
				}
				r0 := all
				if all&stackBit != 0 {
					r0 |= stack
				}
				st[0] = r0
				for a := 1; a <= 5; a++ {
					st[a] = 0
				}
			}
			switch op := ins.op; {
			case op == xFiller:
				continue
			case op == xMov64K || op == xMov32K || op == xLdImm64 || op == xLdFunc || op == xLdBTFID:
				st[ins.dst] = 0
				if op == xLdFunc {
					callbacks[int(ins.target)] = true
				}
				if op >= xLdImm64 {
					next = pc + 2
				}
			case op == xMov64X || op == xMov32X || op >= xMovSX8to64 && op <= xMovSX32to64 || op == xMovSX8to32 || op == xMovSX16to32:
				st[ins.dst] = st[ins.src]
			case op >= xAdd64K && op <= xBe64:
				// K forms keep dst's set; X forms (odd distance from
				// the K form in both tables) add src's.
				if isALUX(op) {
					st[ins.dst] |= st[ins.src]
				}
			case op == xLdMap || op == xLdMapValue:
				if ins.ref < 0 || int(ins.ref) >= len(p.maps) {
					return nil, fmt.Errorf("instruction %d loads a map the check cannot name", pc)
				}
				st[ins.dst] = 1 << uint(ins.ref)
				next = pc + 2
			case op >= xLdxB && op <= xLdxSW || op == xLoadAcq:
				st[ins.dst] = load(ins.src)
			case op >= xStB && op <= xStDW:
				store(ins.dst, 0)
			case op >= xStxB && op <= xStxDW || op == xStoreRel:
				store(ins.dst, st[ins.src])
			case op == xAtomicW || op == xAtomicDW:
				old := load(ins.dst)
				store(ins.dst, st[ins.src])
				switch ins.aop {
				case aFetchAdd, aFetchOr, aFetchAnd, aFetchXor, aXchg:
					st[ins.src] = old
				case aCmpxchg:
					st[0] = old
				}
			case op == xLdAbs || op == xLdInd:
				for a := 0; a <= 5; a++ {
					st[a] = 0
				}
			case op == xCallHelper:
				fn := asm.BuiltinFunc(ins.imm)
				if why, ok := opaqueHelpers[fn]; ok {
					return nil, fmt.Errorf("%s", why)
				}
				call(readOnlyArgs[fn])
			case op == xCallKfunc:
				call(nil)
			case op == xCallLocal:
				callee := int(ins.target)
				e := entry[callee]
				if e == nil {
					e = &regs{}
					entry[callee] = e
				}
				for a := 1; a <= 5; a++ {
					e[a] |= st[a]
				}
				e[10] = stackBit
				if !contains(callers[callee], pc) {
					callers[callee] = append(callers[callee], pc)
				}
				push(callee, e)
				st[0] = ret[callee]
				for a := 1; a <= 5; a++ {
					st[a] = 0
				}
			case op == xExit:
				f := funcStart(pc)
				if f != 0 && ret[f]|st[0] != ret[f] {
					ret[f] |= st[0]
					for _, c := range callers[f] {
						after := in[c]
						after[0] = ret[f]
						for a := 1; a <= 5; a++ {
							after[a] = 0
						}
						push(c+1, &after)
					}
				}
				continue
			case op == xJa:
				push(int(ins.target), &st)
				continue
			case op >= xJeq64K && op <= xJset32X || op == xMayGoto:
				push(int(ins.target), &st)
			default:
				return nil, fmt.Errorf("instruction %d is one the check does not know", pc)
			}
			push(next, &st)
		}
		// Callbacks start with anything any call was given, and the stack.
		for cb := range callbacks {
			var e regs
			for a := 1; a <= 5; a++ {
				e[a] = escaped | stackBit
			}
			e[10] = stackBit
			push(cb, &e)
		}
		if globals() == before && len(work) == 0 {
			break
		}
		// The stack or the escaped set grew: every load may see more.
		for pc := range n {
			if seen[pc] {
				work = append(work, pc)
			}
		}
	}
	out := make([]bool, len(p.maps))
	for i := range out {
		out[i] = written&(1<<uint(i)) != 0
	}
	return out, nil
}

// isALUX reports whether an ALU operation takes a register operand.
func isALUX(op xop) bool {
	switch {
	case op >= xAdd64K && op <= xArsh64X:
		return (op-xAdd64K)%2 == 1
	case op >= xAdd32K && op <= xArsh32X:
		return (op-xAdd32K)%2 == 1
	}
	return false
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// WrittenMaps says which of a loaded program's maps a run of it may write,
// by the kernel's map id, from the instructions of the object it came from
// (found as ForProgram finds it). err says why it cannot tell.
func WrittenMaps(prog *ebpf.Program, objs ...*Object) (map[ebpf.MapID]bool, error) {
	info, err := prog.Info()
	if err != nil {
		return nil, fmt.Errorf("read the program's info: %w", err)
	}
	p, err := findProgram(info, objs)
	if err != nil {
		return nil, err
	}
	ids, ok := info.MapIDs()
	if !ok {
		return nil, fmt.Errorf("the kernel does not say which maps program %s uses", info.Name)
	}
	if len(ids) != len(p.maps) {
		return nil, fmt.Errorf("program %s uses %d maps in the kernel but %d in %s", info.Name, len(ids), len(p.maps), p.Object.Source)
	}
	w, err := p.MapWrites()
	if err != nil {
		return nil, err
	}
	out := make(map[ebpf.MapID]bool, len(ids))
	for i, id := range ids {
		out[id] = w[i]
	}
	return out, nil
}
