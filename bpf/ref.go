// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// RefKind says how a Ref names its object.
type RefKind string

// The ways to name an object, as bpftool spells them, plus bpfsh's short form.
const (
	RefID     RefKind = "id"     // id 12
	RefPinned RefKind = "pinned" // pinned /sys/fs/bpf/x
	RefName   RefKind = "name"   // name foo (may match several)
	RefTag    RefKind = "tag"    // tag 0123456789abcdef (programs; may match several)
)

// Ref names a kernel object the way a user typed it.
type Ref struct {
	Kind  RefKind
	Value string
	// Typed is how the user wrote it, for messages ("kv/stats").
	Typed string
}

func (r Ref) String() string { return r.Typed }

// ErrNoRef is returned by ParseRef when the words do not start with a reference.
var ErrNoRef = errors.New("expected an object: id N, pinned PATH, name NAME, tag HEX or NAME/OBJ")

// ParseRef reads a reference from the front of words and returns the words
// after it. pinRoot resolves the short form NAME/OBJ to <pinRoot>/NAME/OBJ;
// an absolute path is taken as "pinned PATH".
func ParseRef(words []string, pinRoot string) (Ref, []string, error) {
	if len(words) == 0 {
		return Ref{}, words, ErrNoRef
	}
	switch kind := RefKind(words[0]); kind {
	case RefID, RefPinned, RefName, RefTag:
		if len(words) < 2 {
			return Ref{}, words, fmt.Errorf("%q needs a value after it, e.g. %s", kind, refExample(kind))
		}
		v := words[1]
		switch kind {
		case RefID:
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				return Ref{}, words, fmt.Errorf("id %q is not a number; ids are what 'prog list' and 'map list' show", v)
			}
		case RefTag:
			v = strings.ToLower(strings.ReplaceAll(v, ":", ""))
			if _, err := strconv.ParseUint(v, 16, 64); err != nil || len(v) != 16 {
				return Ref{}, words, fmt.Errorf("tag %q is not 8 bytes of hex (16 digits, as 'prog show' prints)", words[1])
			}
		case RefPinned:
			v = filepath.Clean(v)
		}
		return Ref{Kind: kind, Value: v, Typed: words[0] + " " + words[1]}, words[2:], nil
	}
	w := words[0]
	switch {
	case strings.HasPrefix(w, "/"):
		return Ref{Kind: RefPinned, Value: filepath.Clean(w), Typed: w}, words[1:], nil
	case strings.Count(w, "/") == 1 && !strings.HasPrefix(w, ".") && !strings.HasSuffix(w, "/"):
		return Ref{Kind: RefPinned, Value: filepath.Join(pinRoot, w), Typed: w}, words[1:], nil
	}
	if like := pinnedLike(pinRoot, w); like != "" {
		return Ref{}, words, fmt.Errorf("%q is not an object: did you mean %s? (%w)", w, like, ErrNoRef)
	}
	return Ref{}, words, fmt.Errorf("%q is not an object: %w", w, ErrNoRef)
}

// pinnedLike finds what a bare word most likely meant under pinRoot: the
// objects NAME/w of the loads that have one (people type the program's
// name), or NAME/OBJ when w is a load's NAME holding one object.
func pinnedLike(pinRoot, w string) string {
	if pinRoot == "" || w == "" || strings.ContainsAny(w, "/*?[\\") {
		return ""
	}
	m, _ := filepath.Glob(filepath.Join(pinRoot, "*", w))
	if len(m) == 0 {
		if m, _ = filepath.Glob(filepath.Join(pinRoot, w, "*")); len(m) != 1 {
			return ""
		}
	}
	var names []string
	for _, p := range m[:min(len(m), 3)] {
		rel, _ := filepath.Rel(pinRoot, p)
		names = append(names, rel)
	}
	if len(m) > 3 {
		names = append(names, fmt.Sprintf("%d more", len(m)-3))
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func refExample(k RefKind) string {
	switch k {
	case RefID:
		return "id 12"
	case RefPinned:
		return "pinned /sys/fs/bpf/bpfsh/kv/store"
	case RefName:
		return "name xdp_kv"
	}
	return "tag 3b185187f1855c4c"
}

// Programs opens every program ref names (name and tag may match several).
// The caller closes them. It fails when none matches.
func Programs(ref Ref) ([]*ebpf.Program, error) {
	switch ref.Kind {
	case RefID:
		id, _ := strconv.ParseUint(ref.Value, 10, 32)
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", ref, explainOpen(err, "'prog list' shows the loaded programs"))
		}
		return []*ebpf.Program{p}, nil
	case RefPinned:
		p, err := loadPinnedProgram(ref.Value)
		if err != nil {
			return nil, explainPinned(ref.Value, err, PinProg)
		}
		return []*ebpf.Program{p}, nil
	}
	var found []*ebpf.Program
	for id, err := ebpf.ProgramGetNextID(0); err == nil; id, err = ebpf.ProgramGetNextID(id) {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded since we saw its id
		}
		info, err := p.Info()
		if err == nil && ((ref.Kind == RefName && info.Name == ref.Value) || (ref.Kind == RefTag && info.Tag == ref.Value)) {
			found = append(found, p)
			continue
		}
		p.Close()
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("no program with %s; 'prog list' shows the loaded programs", ref)
	}
	return found, nil
}

// Program opens the one program ref names.
func Program(ref Ref) (*ebpf.Program, error) {
	ps, err := Programs(ref)
	if err != nil {
		return nil, err
	}
	if len(ps) > 1 {
		for _, p := range ps {
			p.Close()
		}
		return nil, fmt.Errorf("%d programs match %s; name one by id or pinned path", len(ps), ref)
	}
	return ps[0], nil
}

// Maps opens every map ref names (a name may match several). The caller
// closes them. It fails when none matches.
func Maps(ref Ref) ([]*ebpf.Map, error) {
	switch ref.Kind {
	case RefID:
		id, _ := strconv.ParseUint(ref.Value, 10, 32)
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			return nil, fmt.Errorf("map %s: %w", ref, explainOpen(err, "'map list' shows the maps"))
		}
		return []*ebpf.Map{m}, nil
	case RefPinned:
		m, err := ebpf.LoadPinnedMap(ref.Value, nil)
		if err != nil {
			return nil, explainPinned(ref.Value, err, PinMap)
		}
		return []*ebpf.Map{m}, nil
	case RefTag:
		return nil, fmt.Errorf("maps have no tag; name the map by id, pinned path or name")
	}
	var found []*ebpf.Map
	for id, err := ebpf.MapGetNextID(0); err == nil; id, err = ebpf.MapGetNextID(id) {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		info, err := m.Info()
		if err == nil && info.Name == ref.Value {
			found = append(found, m)
			continue
		}
		m.Close()
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("no map with %s; 'map list' shows the maps", ref)
	}
	return found, nil
}

// Map opens the one map ref names.
func Map(ref Ref) (*ebpf.Map, error) {
	ms, err := Maps(ref)
	if err != nil {
		return nil, err
	}
	if len(ms) > 1 {
		for _, m := range ms {
			m.Close()
		}
		return nil, fmt.Errorf("%d maps match %s; name one by id or pinned path", len(ms), ref)
	}
	return ms[0], nil
}

// explainOpen turns the errors of opening by id into advice.
func explainOpen(err error, hint string) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no such object; %s", hint)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("permission denied; run bpfsh as root (or with CAP_SYS_ADMIN)")
	}
	return err
}

// explainPinned turns the errors of opening a pin into advice: a missing
// pin, a pin of the other kind, or bpffs not being there at all.
func explainPinned(path string, err error, want string) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("nothing is pinned at %s; 'ls %s' shows what is", path, filepath.Dir(path))
	case !OnBPFFS(path):
		// The kernel answers EPERM for a path off bpffs, even for root.
		return fmt.Errorf("%s is not on a bpffs; pinned objects live under %s", path, BPFFSPath)
	}
	if pi, serr := StatPin(path); serr == nil && pi.Kind != want {
		return fmt.Errorf("%s is %s, not %s", path, pinKindPhrase[pi.Kind], wantPhrase[want])
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("permission denied; run bpfsh as root (or with CAP_SYS_ADMIN)")
	}
	return err
}

// pinKindPhrase names a pin's kind in a sentence.
var pinKindPhrase = map[string]string{
	PinProg: "a pinned program",
	PinMap:  "a pinned map",
	PinLink: "a pinned link",
	PinDir:  "a directory",
	PinFile: "a plain file",
}

// wantPhrase names the kind a command expected.
var wantPhrase = map[string]string{PinProg: "a program", PinMap: "a map"}
