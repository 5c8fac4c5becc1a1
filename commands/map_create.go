// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

// map create, map freeze and map getnext: bpftool's verbs, same words.

const mapCreateExample = "map create /sys/fs/bpf/mine/counts type hash key 4 value 8 entries 1024 name counts"

var mapCreateCmd = &Command{
	Name:  "create",
	Usage: "PATH type TYPE key KEY_SIZE value VALUE_SIZE entries MAX_ENTRIES name NAME [flags FLAGS] [inner_map MAPREF]",
	Short: "create a map and pin it at PATH, as bpftool map create",
	Long: "map create makes a map of TYPE (bpftool's names: hash, array, percpu_hash, lru_hash, lpm_trie, queue, stack, ringbuf, sockmap, sockhash, array_of_maps, hash_of_maps, ...) with the given key and value sizes in bytes and MAX_ENTRIES, and pins it at PATH (a relative PATH is under the pin root), as 'bpftool map create' does. " +
		"FLAGS is the BPF_F_* bits as a number (0x1 is no_prealloc, needed by lpm_trie) or their names joined by commas (no_prealloc,rdonly_prog); a map of maps takes an inner map as its template with inner_map. The map has no BTF, so its keys and values read and type as bytes (hex 01 00 00 00, or 1 0 0 0). Queues, stacks and bloom filters have key 0; ring buffers key 0, value 0 and a power-of-two page multiple of entries.",
	Example: mapCreateExample,
	Args:    []ArgKind{ArgPinPath, ArgMapRef},
	Run:     runMapCreate,
}

var mapFreezeCmd = &Command{
	Name:    "freeze",
	Usage:   "REF",
	Short:   "make a map read-only from user space, as bpftool map freeze",
	Long:    "map freeze makes the map read-only for user space for good: update, delete and push are refused afterwards, while programs may still write it (unless they were loaded to treat it as constant). 'map show' says frozen. It cannot be undone.",
	Example: "map freeze pinned /sys/fs/bpf/mine/counts",
	Args:    []ArgKind{ArgMapRef},
	Run:     runMapFreeze,
}

var mapGetnextCmd = &Command{
	Name:    "getnext",
	Usage:   "REF [key KEY]",
	Short:   "show the key after KEY (the first key without one), as bpftool map getnext",
	Long:    "map getnext asks the kernel for the key that follows KEY in the map's own order, or for the first key when KEY is left out or not in the map, and shows both, typed by the map's BTF, as 'bpftool map getnext' does. After the last key it says so. With -j: {key, next_key}.",
	Example: "map getnext kv/flows key {saddr: 10.0.0.1, sport: 80}",
	Args:    []ArgKind{ArgMapRef},
	Run:     runMapGetnext,
}

// mapTypeByName is the map type bpftool calls name.
func mapTypeByName(name string) (ebpf.MapType, bool) {
	for t := uint32(1); ; t++ {
		n := bpf.MapTypeName(t)
		if strings.HasPrefix(n, "type ") {
			return 0, false
		}
		if n == name {
			return ebpf.MapType(t), true
		}
	}
}

// mapTypeNames lists the type names map create takes.
func mapTypeNames() string {
	var out []string
	for t := uint32(1); ; t++ {
		n := bpf.MapTypeName(t)
		if strings.HasPrefix(n, "type ") {
			return strings.Join(out, ", ")
		}
		out = append(out, n)
	}
}

// parseMapFlags reads FLAGS: a number, or flag names joined by commas.
func parseMapFlags(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 0, 32); err == nil {
		return uint32(n), nil
	}
	var flags uint32
	for _, w := range strings.Split(s, ",") {
		found := false
		for bit := range 32 {
			if name := bpf.MapFlagNames(1 << bit); name == w {
				flags |= 1 << bit
				found = true
				break
			}
		}
		if !found {
			return 0, Usagef("map create: unknown flag %q; give a number (0x1) or BPF_F_ names without the prefix, as no_prealloc,rdonly_prog", clipWord(w))
		}
	}
	return flags, nil
}

func runMapCreate(s *Session, args []string) (Result, error) {
	const op = "map create"
	if len(args) == 0 || slices.Contains([]string{"type", "key", "value", "entries", "name", "flags"}, args[0]) {
		return nil, Usagef("map create needs the PATH to pin the map at first, e.g. %s", mapCreateExample)
	}
	path := pinPath(s, args[0])
	words := map[string]string{}
	var innerRef *bpf.Ref
	for rest := args[1:]; len(rest) > 0; {
		w := rest[0]
		switch w {
		case "type", "key", "value", "entries", "name", "flags", "offload_dev":
			if len(rest) < 2 {
				return nil, Usagef("%s: %s needs a value after it", op, w)
			}
			if _, dup := words[w]; dup {
				return nil, Usagef("%s: %s is given twice", op, w)
			}
			words[w], rest = rest[1], rest[2:]
		case "inner_map":
			ref, r, err := parseMapRef(s, op+" inner_map", rest[1:])
			if err != nil {
				return nil, err
			}
			innerRef, rest = &ref, r
		default:
			return nil, Usagef("%s: unexpected %q; it takes type, key, value, entries, name, flags and inner_map", op, clipWord(w))
		}
	}
	if _, ok := words["offload_dev"]; ok {
		return nil, Usagef("%s: bpfsh does not create offloaded maps (offload_dev); bpftool does", op)
	}
	for _, need := range []string{"type", "key", "value", "entries", "name"} {
		if _, ok := words[need]; !ok {
			return nil, Usagef("%s needs '%s', e.g. %s", op, need, mapCreateExample)
		}
	}
	typ, ok := mapTypeByName(words["type"])
	if !ok {
		return nil, Usagef("%s: unknown map type %q; one of %s", op, clipWord(words["type"]), mapTypeNames())
	}
	num := func(w string) (uint32, error) {
		n, err := strconv.ParseUint(words[w], 0, 32)
		if err != nil {
			return 0, Usagef("%s: %s %q is not a number from 0 to %d", op, w, clipWord(words[w]), uint32(1<<32-1))
		}
		return uint32(n), nil
	}
	spec := &ebpf.MapSpec{Name: words["name"], Type: typ}
	var err error
	if spec.KeySize, err = num("key"); err != nil {
		return nil, err
	}
	if spec.ValueSize, err = num("value"); err != nil {
		return nil, err
	}
	if spec.MaxEntries, err = num("entries"); err != nil {
		return nil, err
	}
	if f, ok := words["flags"]; ok {
		if spec.Flags, err = parseMapFlags(f); err != nil {
			return nil, err
		}
	}
	if len(spec.Name) >= unix.BPF_OBJ_NAME_LEN {
		return nil, Usagef("%s: name %q is longer than the kernel's %d characters", op, clipWord(spec.Name), unix.BPF_OBJ_NAME_LEN-1)
	}
	isOuter := typ == ebpf.ArrayOfMaps || typ == ebpf.HashOfMaps
	switch {
	case isOuter && innerRef == nil:
		return nil, Usagef("%s: a %s needs inner_map MAPREF, a map whose kind its members share", op, words["type"])
	case !isOuter && innerRef != nil:
		return nil, Usagef("%s: inner_map is only for array_of_maps and hash_of_maps", op)
	}
	if innerRef != nil {
		inner, err := bpf.Map(*innerRef)
		if err != nil {
			return nil, fmt.Errorf("%s: inner_map: %w", op, explainMapRef(*innerRef, err))
		}
		defer inner.Close()
		// cilium/ebpf wants the inner map's spec; take it from the kernel.
		info, err := inner.Info()
		if err != nil {
			return nil, fmt.Errorf("%s: inner_map: %w", op, err)
		}
		spec.InnerMap = &ebpf.MapSpec{Type: info.Type, KeySize: info.KeySize, ValueSize: info.ValueSize, MaxEntries: info.MaxEntries, Flags: info.Flags}
	}
	m, err := ebpf.NewMapWithOptions(spec, ebpf.MapOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: the kernel refused a %s with key %d, value %d, entries %d, flags %#x: %w", op, words["type"], spec.KeySize, spec.ValueSize, spec.MaxEntries, spec.Flags, explainCreate(typ, err))
	}
	defer m.Close()
	if err := bpf.PinFD(m.FD(), path); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	d, err := bpf.DescribeMap(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &Message{
		Text: fmt.Sprintf("created map %d (%s, %s) pinned at %s", d.ID, d.Name, words["type"], path),
		Data: map[string]any{"id": d.ID, "name": d.Name, "type": words["type"], "pinned": path},
	}, nil
}

// explainCreate adds the usual reasons to the kernel's EINVAL.
func explainCreate(typ ebpf.MapType, err error) error {
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	switch typ {
	case ebpf.LPMTrie:
		return fmt.Errorf("%w (an lpm_trie needs flags no_prealloc and a key of 4 bytes of prefix length plus the data)", err)
	case ebpf.Queue, ebpf.Stack, ebpf.BloomFilter:
		return fmt.Errorf("%w (this type takes key 0)", err)
	case ebpf.RingBuf, ebpf.UserRingbuf:
		return fmt.Errorf("%w (a ring buffer takes key 0, value 0 and entries a power of two multiple of the page size)", err)
	}
	return fmt.Errorf("%w (sizes or flags this map type does not take)", err)
}

func runMapFreeze(s *Session, args []string) (Result, error) {
	const op = "map freeze"
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s takes only a map, not %q", op, clipWord(rest[0]))
	}
	m, err := openMapRef(op, ref)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if m.d.Frozen {
		return nil, fmt.Errorf("%s: map %s is frozen already", op, m.name())
	}
	if err := m.Freeze(); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%s: map %s is mapped writable into some process's memory (mmap), so it cannot be frozen", op, m.name())
		}
		return nil, fmt.Errorf("%s: map %s: %w", op, m.name(), err)
	}
	return &Message{
		Text: fmt.Sprintf("froze map %d (%s): user space can only read it now", m.d.ID, m.name()),
		Data: map[string]any{"id": m.d.ID, "name": m.d.Name, "frozen": true},
	}, nil
}

func runMapGetnext(s *Session, args []string) (Result, error) {
	const op = "map getnext"
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	var keyWords []string
	if len(rest) > 0 {
		e, err := parseElemArgs(op, rest, []string{"key"}, nil)
		if err != nil {
			return nil, err
		}
		keyWords = e.key
	}
	m, err := openMapRef(op, ref)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := m.needKeys(op); err != nil {
		return nil, err
	}
	var key []byte // nil: the first key
	if keyWords != nil {
		if key, err = m.parseKey(op, keyWords); err != nil {
			return nil, err
		}
	}
	next := make([]byte, m.d.KeySize)
	var keyArg any
	if key != nil {
		keyArg = key
	}
	if err := m.NextKey(keyArg, next); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			if key == nil {
				return nil, fmt.Errorf("%s: map %s is empty", op, m.name())
			}
			return nil, fmt.Errorf("%s: key %s is the last in map %s", op, keyText(m.d, key), m.name())
		}
		return nil, m.opError(op, err, "")
	}
	rec := &Record{}
	obj := map[string]any{"key": nil}
	if key != nil {
		text, o := bpf.FormatValue(key, m.d.Key)
		rec.Fields = append(rec.Fields, Field{Name: "key", Value: text})
		obj["key"] = o
	} else {
		rec.Fields = append(rec.Fields, Field{Name: "key", Value: "(none: the first key follows)"})
	}
	text, o := bpf.FormatValue(next, m.d.Key)
	rec.Fields = append(rec.Fields, Field{Name: "next key", Value: text})
	obj["next_key"] = o
	rec.JSON = obj
	return rec, nil
}
