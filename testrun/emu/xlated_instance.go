// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// newXlatedInstance loads a program rebuilt from the kernel's translated
// instructions again, on clones of its maps: the verifier accepting it is
// also the check that the rebuilding undid the kernel's rewrites.
func newXlatedInstance(p *Program, maps *Maps) (*Instance, error) {
	rl := p.reload
	inst := &Instance{Maps: map[string]*ebpf.Map{}}
	clones := map[ebpf.MapID]*ebpf.Map{}
	fail := func(err error) (*Instance, error) {
		inst.Close()
		return nil, err
	}
	for i, ref := range p.maps {
		real := maps.ByName[ref.Name]
		if real == nil {
			return fail(fmt.Errorf("map %s is not open", ref.Name))
		}
		ms := ref.Spec.Copy()
		ms.Pinning = ebpf.PinNone
		frozen := false
		switch t := real.Type(); {
		case t == ebpf.ProgramArray:
			if n := countEntries(real); n > 0 {
				return fail(fmt.Errorf("the program tail-calls through %s (%d programs): the kernel would run them on your real maps", ref.Name, n))
			}
		case isArray(t) || isHash(t):
			frozen = ms.Flags&bpfFRdonlyProg != 0
		case t == ebpf.RingBuf:
		default:
			inst.Notes = append(inst.Notes, fmt.Sprintf("map %s (%s) starts empty in the kernel's private copy", ref.Name, t))
		}
		if frozen {
			// cilium/ebpf freezes a map the program may only read as it
			// makes it: its contents go in with it.
			kvs, err := mapContents(real)
			if err != nil {
				return fail(fmt.Errorf("read %s: %w", ref.Name, err))
			}
			ms.Contents = kvs
		}
		m, err := ebpf.NewMap(ms)
		if err != nil && (ms.Key != nil || ms.Value != nil) {
			// Without the map's BTF, if the kernel refuses the types.
			ms.Key, ms.Value = nil, nil
			m, err = ebpf.NewMap(ms)
		}
		if err != nil {
			return fail(fmt.Errorf("clone map %s: %w", ref.Name, err))
		}
		inst.Maps[ref.Name] = m
		inst.owned = append(inst.owned, m)
		clones[rl.mapIDs[i]] = m
		if !frozen && (isArray(real.Type()) || isHash(real.Type())) {
			if err := copyMap(real, m); err != nil {
				return fail(err)
			}
		}
	}
	insns, err := asm.AppendInstructions(nil, bytes.NewReader(rl.code), binary.LittleEndian, "linux")
	if err != nil {
		return fail(fmt.Errorf("decode the rebuilt program: %w", err))
	}
	li, fi := 0, 0
	for iter := insns.Iterate(); iter.Next(); {
		off := iter.Offset
		ins := iter.Ins
		for fi < len(rl.funcs) && rl.funcs[fi].Offset < off {
			fi++
		}
		if fi < len(rl.funcs) && rl.funcs[fi].Offset == off && rl.funcs[fi].Func != nil {
			*ins = btf.WithFuncMetadata(ins.WithSymbol(rl.funcs[fi].Func.Name), rl.funcs[fi].Func)
		}
		for li < len(rl.lines) && rl.lines[li].Offset < off {
			li++
		}
		if li < len(rl.lines) && rl.lines[li].Offset == off && rl.lines[li].Line != nil {
			*ins = ins.WithSource(rl.lines[li].Line)
		}
		if ins.IsLoadFromMap() {
			m := clones[ebpf.MapID(uint32(ins.Constant))]
			if m == nil {
				return fail(fmt.Errorf("instruction %d loads map id %d, which the program's maps do not hold", off, uint32(ins.Constant)))
			}
			if err := ins.AssociateMap(m); err != nil {
				return fail(err)
			}
		}
	}
	if insns[0].Symbol() == "" {
		insns[0] = insns[0].WithSymbol(p.Name)
	}
	name := p.Name
	if len(name) > 15 {
		name = name[:15]
	}
	spec := &ebpf.ProgramSpec{Name: name, Type: p.Type, Instructions: insns, License: "GPL"}
	// The kernel does not report a program's expected attach type; these
	// types need one to load.
	switch p.Type {
	case ebpf.SkLookup:
		spec.AttachType = ebpf.AttachSkLookup
	case ebpf.FlowDissector:
		spec.AttachType = ebpf.AttachFlowDissector
	case ebpf.CGroupSKB:
		spec.AttachType = ebpf.AttachCGroupInetIngress
	case ebpf.Syscall:
		spec.Flags = unix.BPF_F_SLEEPABLE // the only kind there is
	}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) && len(ve.Log) > 0 {
			err = fmt.Errorf("%w (last verifier line: %s)", err, ve.Log[len(ve.Log)-1])
		}
		return fail(fmt.Errorf("load %s, rebuilt from the kernel's translated instructions, again on copies of its maps: %w", p.Name, err))
	}
	inst.Program = prog
	inst.owned = append(inst.owned, prog)
	return inst, nil
}

// xlatedDiffMaps binds the instance's clones for the emulated half of a
// kernel check of a rebuilt program (duplicates: the check closes them).
func xlatedDiffMaps(inst *Instance) (*Maps, error) {
	ms := &Maps{ByName: map[string]*ebpf.Map{}, PrivateReadOnly: true}
	for n, m := range inst.Maps {
		c, err := m.Clone()
		if err != nil {
			ms.Close()
			return nil, fmt.Errorf("reopen map %s: %w", n, err)
		}
		ms.ByName[n] = c
	}
	return ms, nil
}

// Rebuilt reports whether p was rebuilt from the kernel's translated
// instructions (FromKernel) rather than read from an object.
func (p *Program) Rebuilt() bool { return p.xlated }

// mapContents reads every entry of a map that is neither per-CPU nor
// special.
func mapContents(m *ebpf.Map) ([]ebpf.MapKV, error) {
	var out []ebpf.MapKV
	k, v := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, ebpf.MapKV{Key: bytes.Clone(k), Value: bytes.Clone(v)})
	}
	return out, it.Err()
}
