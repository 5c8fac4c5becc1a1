// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"debug/elf"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
)

// Object is a BPF ELF the engine runs programs of: its programs decoded on
// demand, its maps' specs (for types and initial contents) and, when it
// was built with clang -g and not stripped, its DWARF.
type Object struct {
	// Source names the object in messages: a file, or "builtin kv".
	Source string

	elf  []byte
	spec *ebpf.CollectionSpec

	mu    sync.Mutex
	progs map[string]*Program

	dwarfOnce sync.Once
	dwarf     *debugInfo
	dwarfErr  error
}

// LoadObject parses a BPF ELF. source names it in messages.
func LoadObject(source string, data []byte) (*Object, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read %s: not an ELF: %w", source, err)
	}
	machine := f.Machine
	f.Close()
	if machine != elf.EM_BPF {
		return nil, fmt.Errorf("read %s: an ELF for %s, not for BPF", source, machine)
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	return &Object{Source: source, elf: data, spec: spec, progs: map[string]*Program{}}, nil
}

// Spec returns a copy of the object's collection spec, as cilium/ebpf
// reads it (the kernel check loads the program again from it).
func (o *Object) Spec() *ebpf.CollectionSpec { return o.spec.Copy() }

// ELF returns the object's bytes.
func (o *Object) ELF() []byte { return o.elf }

// Programs lists the object's programs, sorted.
func (o *Object) Programs() []string {
	names := make([]string, 0, len(o.spec.Programs))
	for n := range o.spec.Programs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Program decodes one of the object's programs.
func (o *Object) Program(name string) (*Program, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p, ok := o.progs[name]; ok {
		return p, nil
	}
	ps, ok := o.spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("%s has no program %q; its programs: %v", o.Source, name, o.Programs())
	}
	p, err := newProgram(o, ps)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Source, err)
	}
	o.progs[name] = p
	return p, nil
}

// programByTag finds the program whose kernel tag is tag.
func (o *Object) programByTag(tag, name string) (*Program, bool) {
	names := o.Programs()
	// The name first: tags cost a hash each.
	slices.SortStableFunc(names, func(a, b string) int {
		if a == name {
			return -1
		}
		if b == name {
			return 1
		}
		return 0
	})
	for _, n := range names {
		p, err := o.Program(n)
		if err != nil {
			continue
		}
		if p.hasTag(tag) {
			return p, true
		}
	}
	return nil, false
}
