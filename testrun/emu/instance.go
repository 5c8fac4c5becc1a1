// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun"
)

// Instance is a private copy of a loaded program: the maps it uses cloned
// with their contents, the program loaded again from its object against
// the clones, nothing pinned. Running it changes none of the user's maps.
type Instance struct {
	Program *ebpf.Program
	// Maps are the clones, by the object's map names.
	Maps map[string]*ebpf.Map
	// Notes say what could not be copied (a queue's values, a socket
	// map's sockets): where the clone starts empty.
	Notes []string

	coll *ebpf.Collection
	// owned are what a rebuilt program's instance made (newXlatedInstance).
	owned []interface{ Close() error }
}

// NewInstance clones the maps bound in maps (the real ones the program
// uses) and loads p again from its object against the clones.
func NewInstance(p *Program, maps *Maps) (*Instance, error) {
	if p.reload != nil {
		return newXlatedInstance(p, maps)
	}
	if p.Object == nil {
		return nil, errors.New("the program was rebuilt from the kernel's translated instructions: there is no object to load it again from")
	}
	spec := p.Object.Spec()
	ps, ok := spec.Programs[p.Name]
	if !ok {
		return nil, fmt.Errorf("%s has no program %s", p.Object.Source, p.Name)
	}
	spec.Programs = map[string]*ebpf.ProgramSpec{p.Name: ps}
	used := map[string]bool{}
	for _, ins := range ps.Instructions {
		if r := ins.Reference(); r != "" && spec.Maps[r] != nil {
			used[r] = true
		}
	}
	for name := range spec.Maps {
		if !used[name] {
			delete(spec.Maps, name)
		}
	}
	inst := &Instance{Maps: map[string]*ebpf.Map{}}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	var copies []func() error
	for _, name := range names {
		ms := spec.Maps[name]
		ms.Pinning = ebpf.PinNone
		real := maps.ByName[name]
		if real == nil {
			continue // private to the session: made from the spec, as the session makes it
		}
		ms.MaxEntries = real.MaxEntries()
		switch t := real.Type(); {
		case t == ebpf.ProgramArray:
			if n := countEntries(real); n > 0 {
				return nil, fmt.Errorf("the program tail-calls through %s (%d programs): the kernel would run them on your real maps", name, n)
			}
		case isArray(t) || isHash(t):
			if ms.Flags&bpfFRdonlyProg != 0 && t == ebpf.Array && ms.MaxEntries == 1 {
				v, err := bpf.LookupElem(real, make([]byte, 4))
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", name, err)
				}
				ms.Contents = []ebpf.MapKV{{Key: uint32(0), Value: v}}
				continue
			}
			ms.Contents = nil
			copies = append(copies, func() error { return copyMap(real, inst.Maps[name]) })
		case t == ebpf.RingBuf:
			// A fresh ring: the check compares records from its start.
		default:
			inst.Notes = append(inst.Notes, fmt.Sprintf("map %s (%s) starts empty in the kernel's private copy", name, t))
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load %s again on copies of its maps: %w", p.Name, err)
	}
	inst.coll, inst.Program = coll, coll.Programs[p.Name]
	for n, m := range coll.Maps {
		inst.Maps[n] = m
	}
	for _, c := range copies {
		if err := c(); err != nil {
			inst.Close()
			return nil, err
		}
	}
	return inst, nil
}

// Close unloads the instance.
func (i *Instance) Close() {
	if i.coll != nil {
		i.coll.Close()
	}
	for j := len(i.owned) - 1; j >= 0; j-- {
		i.owned[j].Close()
	}
}

func countEntries(m *ebpf.Map) int {
	n := 0
	var k, v uint32
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n
}

// copyMap copies every entry of from into to (a fresh map of the same
// kind), per-CPU values CPU by CPU.
func copyMap(from, to *ebpf.Map) error {
	if to == nil {
		return nil
	}
	perCPU := isPerCPU(from.Type())
	err := bpf.ReadMapChunks(from, func(c *bpf.MapChunk) error {
		for i := range c.N {
			var err error
			if perCPU {
				vals := make([][]byte, c.CPUs)
				for cpu := range vals {
					vals[cpu] = bytes.Clone(c.Value(i, cpu))
				}
				err = to.Update(c.Key(i), vals, ebpf.UpdateAny)
			} else {
				err = to.Update(c.Key(i), c.Value(i, 0), ebpf.UpdateAny)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy map %s: %w", from.String(), err)
	}
	return nil
}

// KernelCheck is the kernel's run of one input on a private instance,
// held against the emulator's run of it.
type KernelCheck struct {
	// Case is the verdict: the emulator's run (Case.Config, Case.Emu)
	// against the kernel's, on the instance's maps.
	Case *DiffCase
	// Outcome is the kernel's run as bpfsh's run shows it.
	Outcome *testrun.Outcome
	// Notes say what the private instance could not copy.
	Notes []string
}

// CheckInKernel runs opts (the input as bpfsh's run takes it) through
// BPF_PROG_TEST_RUN on a private instance of p (its maps, bound in maps,
// cloned), with the emulator running the same input just before on the
// same clones; then removes the instance. The user's maps are not
// changed. answers are results for the calls the emulator does not
// emulate, in turn (a debug session's Answers): the kernel makes the real
// calls, so the check also says whether the answers were right.
func CheckInKernel(p *Program, maps *Maps, opts testrun.Options, answers []uint64) (*KernelCheck, error) {
	inst, err := NewInstance(p, maps)
	if err != nil {
		return nil, err
	}
	defer inst.Close()
	d := &Differential{Objects: []*Object{p.Object}, Answers: answers}
	if p.reload != nil {
		d.Objects = nil
		d.fixed = p
		d.fixedMaps = func() (*Maps, error) { return xlatedDiffMaps(inst) }
	}
	old := testrun.SetRunObserver(d)
	opts.Program = inst.Program
	opts.Repeat, opts.Bench, opts.LiveFrames = 0, false, false
	o, err := testrun.Run(opts)
	testrun.SetRunObserver(old)
	if err != nil {
		return nil, fmt.Errorf("the kernel's run: %w", err)
	}
	cases := d.Cases()
	if len(cases) == 0 {
		return nil, errors.New("the kernel's run was not observed")
	}
	c := cases[len(cases)-1]
	if c.Err != nil {
		return nil, c.Err
	}
	if c.Skipped != "" {
		return nil, errors.New(c.Skipped)
	}
	return &KernelCheck{Case: c, Outcome: o, Notes: inst.Notes}, nil
}

// SameRun compares a session's result with the emulated run the kernel
// was checked against: they differ only when the session was changed
// (set) or its maps changed underneath. It returns the first difference,
// "" when there is none.
func SameRun(a, b *Result) string {
	switch {
	case a.Retval != b.Retval:
		return fmt.Sprintf("retval %d, the checked run %d", int64(int32(a.Retval)), int64(int32(b.Retval)))
	case !bytes.Equal(a.DataOut, b.DataOut):
		return fmt.Sprintf("the output packet differs at byte %d", firstDiff(a.DataOut, b.DataOut))
	case !bytes.Equal(a.CtxOut, b.CtxOut):
		return fmt.Sprintf("the context differs at byte %d", firstDiff(a.CtxOut, b.CtxOut))
	case len(a.Trace) != len(b.Trace):
		return fmt.Sprintf("%d trace line(s), the checked run %d", len(a.Trace), len(b.Trace))
	case len(a.Maps) != len(b.Maps):
		return fmt.Sprintf("%d map change(s), the checked run %d", len(a.Maps), len(b.Maps))
	}
	for i := range a.Trace {
		if a.Trace[i] != b.Trace[i] {
			return fmt.Sprintf("trace line %d: %q, the checked run %q", i+1, a.Trace[i], b.Trace[i])
		}
	}
	for i := range a.Maps {
		x, y := a.Maps[i], b.Maps[i]
		if x.Map != y.Map || !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.After, y.After) {
			return fmt.Sprintf("map %s key %x: %x, the checked run %x", x.Map, x.Key, x.After, y.After)
		}
	}
	return ""
}
