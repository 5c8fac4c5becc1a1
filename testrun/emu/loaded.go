// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Objects the engine knows: every program loaded from one of them can be
// emulated from its instructions, found by the kernel's tag of the loaded
// program. Built-in objects (bpf.Builtins) are known without registering.
var (
	knownMu      sync.Mutex
	knownObjects []*Object
	builtinObjs  = map[string]*Object{}
)

// RegisterObject makes obj one the engine matches loaded programs
// against (ForProgram).
func RegisterObject(obj *Object) {
	knownMu.Lock()
	defer knownMu.Unlock()
	for _, o := range knownObjects {
		if o == obj {
			return
		}
	}
	knownObjects = append(knownObjects, obj)
}

// candidates calls yield with the objects to look for a program in, until
// it returns false: those given, the registered ones, then the built-ins,
// each parsed only when reached (parsing them all costs tens of
// milliseconds, more than a script of runs of a registered object takes).
func candidates(given []*Object, yield func(*Object) bool) {
	knownMu.Lock()
	first := append(append([]*Object(nil), given...), knownObjects...)
	knownMu.Unlock()
	for _, o := range first {
		if !yield(o) {
			return
		}
	}
	for _, name := range bpf.Builtins() {
		knownMu.Lock()
		o, ok := builtinObjs[name]
		knownMu.Unlock()
		if !ok {
			elf, _ := bpf.Builtin(name)
			var err error
			if o, err = LoadObject("builtin "+name, elf); err != nil {
				continue
			}
			knownMu.Lock()
			builtinObjs[name] = o
			knownMu.Unlock()
		}
		if !yield(o) {
			return
		}
	}
}

// ErrUnknownProgram is returned by ForProgram for a loaded program that
// none of the objects the engine knows holds.
var ErrUnknownProgram = errors.New("no object the emulator knows holds this program")

// ForProgram finds the object a loaded program came from (by the kernel's
// tag of it, among objs, the registered objects and the built-ins) and
// binds its maps to the maps the loaded program uses, so that a session
// reads exactly what the program would read. Tail calls into other loaded
// programs are resolved the same way.
func ForProgram(prog *ebpf.Program, objs ...*Object) (*Program, *Maps, error) {
	info, err := prog.Info()
	if err != nil {
		return nil, nil, fmt.Errorf("read the program's info: %w", err)
	}
	p, err := findProgram(info, objs)
	if err != nil {
		return nil, nil, err
	}
	ms, err := programMaps(info, p)
	if err != nil {
		return nil, nil, err
	}
	maps := &Maps{ByName: map[string]*ebpf.Map{}, PrivateReadOnly: true}
	for i, ref := range p.maps {
		maps.ByName[ref.Name] = ms[i]
	}
	maps.Programs = func(id ebpf.ProgramID) (*Program, []*ebpf.Map, error) {
		tp, err := ebpf.NewProgramFromID(id)
		if err != nil {
			return nil, nil, fmt.Errorf("open program id %d: %w", id, err)
		}
		defer tp.Close()
		ti, err := tp.Info()
		if err != nil {
			return nil, nil, err
		}
		target, err := findProgram(ti, append([]*Object{p.Object}, objs...))
		if err != nil {
			return nil, nil, err
		}
		tms, err := programMaps(ti, target)
		return target, tms, err
	}
	return p, maps, nil
}

func findProgram(info *ebpf.ProgramInfo, objs []*Object) (*Program, error) {
	// Tiny programs share tags across objects (return XDP_PASS): prefer
	// the program of the same name and type.
	var byTag, exact *Program
	candidates(objs, func(o *Object) bool {
		p, ok := o.programByTag(info.Tag, info.Name)
		if !ok {
			return true
		}
		if sameProgName(info.Name, p.Name) && p.Type == info.Type {
			exact = p
			return false
		}
		if byTag == nil || byTag.Type != info.Type && p.Type == info.Type {
			byTag = p
		}
		return true
	})
	if exact != nil {
		return exact, nil
	}
	if byTag == nil {
		return nil, fmt.Errorf("program %s (tag %s): %w; give the object it was loaded from", info.Name, info.Tag, ErrUnknownProgram)
	}
	if byTag.Type != info.Type {
		// Same instructions, another section: run it as the kernel's type.
		cp := *byTag
		cp.Type = info.Type
		byTag = &cp
	}
	return byTag, nil
}

// sameProgName compares a kernel program name (at most 15 bytes) with the
// object's.
func sameProgName(kernel, obj string) bool {
	return kernel == obj || len(kernel) == 15 && strings.HasPrefix(obj, kernel)
}

// programMaps opens the maps a loaded program uses, in p's order: the
// kernel keeps a program's maps in the order its instructions first refer
// to them, which is p's.
func programMaps(info *ebpf.ProgramInfo, p *Program) ([]*ebpf.Map, error) {
	ids, ok := info.MapIDs()
	if !ok {
		return nil, fmt.Errorf("the kernel does not say which maps program %s uses", info.Name)
	}
	if len(ids) != len(p.maps) {
		return nil, fmt.Errorf("program %s uses %d maps in the kernel but %d in %s", info.Name, len(ids), len(p.maps), p.Object.Source)
	}
	out := make([]*ebpf.Map, len(ids))
	for i, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return nil, fmt.Errorf("open map id %d of program %s: %w", id, info.Name, err)
		}
		mi, err := m.Info()
		if err == nil && !sameMapName(mi.Name, p.maps[i].Name) {
			m.Close()
			return nil, fmt.Errorf("program %s's map %d is %q in the kernel but %q in %s", info.Name, i, mi.Name, p.maps[i].Name, p.Object.Source)
		}
		out[i] = m
	}
	return out, nil
}

// sameMapName compares a kernel map name (at most 15 bytes, only
// [A-Za-z0-9_.]) with the object's.
func sameMapName(kernel, obj string) bool {
	if kernel == "" {
		return true
	}
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' {
			return r
		}
		return -1
	}, obj)
	if len(clean) > 15 {
		clean = clean[:15]
	}
	return kernel == clean || strings.HasSuffix(kernel, clean) || strings.HasSuffix(obj, kernel)
}

// Close closes the kernel maps ForProgram opened.
func (m *Maps) Close() {
	if m == nil {
		return
	}
	for _, km := range m.ByName {
		km.Close()
	}
	for _, ms := range m.ByProgram {
		for _, km := range ms {
			km.Close()
		}
	}
}
