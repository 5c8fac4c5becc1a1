// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

var mapCmd = &Command{
	Name:  "map",
	Short: "show, dump, look up and change maps",
	Long: "map works on the kernel's BPF maps as bpftool's map command does, with keys and values typed by the map's BTF: list and show maps, dump every entry, look up, update and delete one, pin a map, and push, peek and pop the values of queues and stacks. " +
		"Fields named like addresses (saddr, daddr, ..._addr, ..._ip) show as IPv4 or IPv6 addresses, fields named like ports (sport, dport, ..._port) and the kernel's __be16/__be32 as numbers in network byte order, and a BTF decl tag (bpfsh:ipv4, bpfsh:ipv6, bpfsh:port, bpfsh:be, bpfsh:raw) says so for others; what is shown types back as it is. --raw-numbers shows plain host-order numbers; JSON always does.",
	Example: "map dump kv/store",
	Subs: []*Command{
		{
			Name:    "list",
			Short:   "list every map: id, type, name, sizes, flags, memory and pins",
			Long:    "list shows every map in the kernel, one per line: its id, type, name, key and value sizes, max_entries, flags, locked memory and the paths it is pinned at under /sys/fs/bpf. With -j it prints bpftool's 'map show' objects.",
			Example: "map list",
			Run:     runMapList,
		},
		{
			Name:    "show",
			Usage:   "[REF]",
			Short:   "show one map (all maps without REF)",
			Long:    "show prints what the kernel knows about the map REF names: id, type, name, flags, key and value sizes and BTF types, max_entries, locked memory, BTF id, frozen state and pins. Without REF it lists every map, as 'map list'. A name that several maps share shows each of them.",
			Example: "map show kv/store",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapShow,
		},
		{
			Name:    "dump",
			Usage:   "REF",
			Short:   "show every entry, keys and values decoded by BTF",
			Long:    "dump shows every entry of the map, keys and values decoded by the map's BTF (hex bytes when it has none). It reads in batches and writes as it reads, so a million entries take well under a second and little memory. Per-CPU maps show each CPU's value and, for integers, their sum. A queue or stack shows only its head (the kernel reads nothing else without consuming it); a ring buffer shows its positions and pending records without consuming them.",
			Example: "map dump kv/store",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapDump,
		},
		{
			Name:    "lookup",
			Usage:   "REF key KEY",
			Short:   "show the value stored under one key",
			Long:    "lookup prints the value stored under KEY. KEY is typed by the map's BTF (42, 0x2a, 10.0.0.1, \"text\", {saddr: 10.0.0.1, sport: 80}, [1, 2]) or given as bytes the way bpftool takes them (hex 2a 00 00 00, or 42 0 0 0). A key that is not there is an error (bpftool's \"Not found\").",
			Example: "map lookup kv/counters key 0",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapLookup,
		},
		{
			Name:    "update",
			Usage:   "REF key KEY value VALUE [any|exist|noexist]",
			Short:   "store a value under a key",
			Long:    "update stores VALUE under KEY, both typed as for lookup; fields left out of a struct literal are zero. 'noexist' only adds a new key, 'exist' only replaces an existing one, 'any' (the default) does either. On a per-CPU map the value is stored on every CPU. In a program array the value is a program, in a map of maps a map (id N, pinned PATH, name NAME or NAME/OBJ), as in bpftool.",
			Example: "map update kv/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 1}",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapUpdate,
		},
		{
			Name:    "delete",
			Usage:   "REF key KEY",
			Short:   "remove one key",
			Long:    "delete removes KEY and its value from the map. Array maps always hold every index and cannot lose one: store zero there with update instead.",
			Example: "map delete kv/flows key {saddr: 10.0.0.1, sport: 80}",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapDelete,
		},
		{
			Name:    "pin",
			Usage:   "ID|REF PATH",
			Short:   "pin a map at a path under bpffs",
			Long:    "pin makes the map REF (or map id ID) reachable at PATH on a bpf file system, so that it outlives the programs using it. A relative PATH is taken under the pin root. Missing directories are made; bpffs is mounted at /sys/fs/bpf first when it is not.",
			Example: "map pin id 12 /sys/fs/bpf/mymap",
			Args:    []ArgKind{ArgMapRef, ArgPinPath},
			Run:     runMapPin,
		},
		{
			Name:    "peek",
			Usage:   "REF",
			Short:   "show the head of a queue or the top of a stack",
			Long:    "peek prints the value a pop would return (the oldest value of a queue, the newest of a stack) without removing it.",
			Example: "map peek app/jobs",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapPeek,
		},
		{
			Name:    "pop",
			Usage:   "REF",
			Short:   "remove and show the head of a queue or the top of a stack",
			Long:    "pop removes the value at the head of a queue (its oldest) or the top of a stack (its newest) and prints it. An empty map is an error.",
			Example: "map pop app/jobs",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapPop,
		},
		{
			Name:    "push",
			Usage:   "REF value VALUE [exist]",
			Short:   "add a value to a queue or stack",
			Long:    "push adds VALUE (typed by the map's BTF) to a queue or stack. A full map refuses it, unless 'exist' is given: then the oldest value makes room.",
			Example: "map push app/jobs value 7",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapPush,
		},
		{
			Name:    "enqueue",
			Usage:   "REF value VALUE [exist]",
			Short:   "bpftool's name for push",
			Long:    "enqueue is 'map push' under the name bpftool gives it.",
			Example: "map enqueue app/jobs value 7",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapPush,
		},
		{
			Name:    "dequeue",
			Usage:   "REF",
			Short:   "bpftool's name for pop",
			Long:    "dequeue is 'map pop' under the name bpftool gives it.",
			Example: "map dequeue app/jobs",
			Args:    []ArgKind{ArgMapRef},
			Run:     runMapPop,
		},
		mapCreateCmd,
		mapFreezeCmd,
		mapGetnextCmd,
	},
}

// openedMap is a map a command works on, with what the kernel says about it.
type openedMap struct {
	*ebpf.Map
	d *bpf.MapDetails
}

// name is how messages call the map: its name, or its id if unnamed.
func (m *openedMap) name() string {
	if m.d.Name != "" {
		return m.d.Name
	}
	return fmt.Sprintf("id %d", m.d.ID)
}

func (m *openedMap) typeName() string { return bpf.MapTypeName(uint32(m.d.Type)) }

// parseMapRef reads the REF at the front of args for the command op.
func parseMapRef(s *Session, op string, args []string) (bpf.Ref, []string, error) {
	if len(args) == 0 {
		return bpf.Ref{}, nil, Usagef("%s needs a map: id N, pinned PATH, name NAME or NAME/OBJ", op)
	}
	ref, rest, err := bpf.ParseRef(args, s.PinRoot)
	if err != nil {
		return ref, rest, Usagef("%s: %v", op, err)
	}
	return ref, rest, nil
}

// openMapRefs opens every map ref names, with the errors explained.
func openMapRefs(op string, ref bpf.Ref) ([]*openedMap, error) {
	ms, err := bpf.Maps(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, explainMapRef(ref, err))
	}
	out := make([]*openedMap, 0, len(ms))
	for _, m := range ms {
		d, err := bpf.DescribeMap(m)
		if err != nil {
			for _, m := range ms {
				m.Close()
			}
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, &openedMap{Map: m, d: d})
	}
	return out, nil
}

// openMapRef opens the one map ref names.
func openMapRef(op string, ref bpf.Ref) (*openedMap, error) {
	ms, err := openMapRefs(op, ref)
	if err != nil {
		return nil, err
	}
	if len(ms) > 1 {
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = strconv.Itoa(int(m.d.ID))
			m.Close()
		}
		return nil, fmt.Errorf("%s: %d maps match %s (ids %s); name one by id or pinned path", op, len(ms), ref, strings.Join(ids, ", "))
	}
	return ms[0], nil
}

// explainMapRef adds what bpf.Maps cannot know: that bpffs is not mounted
// at all, or that the name belongs to a program.
func explainMapRef(ref bpf.Ref, err error) error {
	switch ref.Kind {
	case bpf.RefPinned:
		path := ref.Value
		switch fi, serr := os.Stat(path); {
		case !bpf.OnBPFFS(path) && pathUnder(path, bpf.BPFFSPath):
			return fmt.Errorf("bpffs is not mounted at %s, so nothing is pinned at %s; mount it (mount -t bpf bpf %s) and pin the map again", bpf.BPFFSPath, path, bpf.BPFFSPath)
		case !bpf.OnBPFFS(path):
			return fmt.Errorf("%s is not on a bpffs, so it is not a map; pinned maps live under %s", path, bpf.BPFFSPath)
		case errors.Is(serr, os.ErrNotExist):
			return fmt.Errorf("nothing is pinned at %s; 'ls %s' shows what is", path, filepath.Dir(path))
		case serr == nil && fi.IsDir():
			return fmt.Errorf("%s is a directory, not a map; 'ls %s' shows what is pinned in it", path, path)
		}
	case bpf.RefName:
		if ps, perr := bpf.Programs(ref); perr == nil {
			for _, p := range ps {
				p.Close()
			}
			return fmt.Errorf("%s names a program, not a map; 'prog show %s' shows it", ref, ref)
		}
	}
	return err
}

// pathUnder reports whether path is dir or inside it.
func pathUnder(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// elemArgs are the "key K... value V... [flag]" words of an element command.
type elemArgs struct {
	key, value       []string
	hasKey, hasValue bool
	flag             string
}

// parseElemArgs splits args at the keywords allowed ("key", "value"); each
// part runs up to the next keyword. A last word in flags is the flag.
func parseElemArgs(op string, args []string, keywords []string, flags []string) (elemArgs, error) {
	var e elemArgs
	if n := len(args); n > 0 && slices.Contains(flags, args[n-1]) {
		e.flag, args = args[n-1], args[:n-1]
	}
	var cur *[]string
	for _, w := range args {
		switch {
		case w == "key" && slices.Contains(keywords, "key") && !e.hasKey:
			e.hasKey, cur = true, &e.key
		case w == "value" && slices.Contains(keywords, "value") && !e.hasValue:
			e.hasValue, cur = true, &e.value
		case cur == nil:
			return e, Usagef("%s: expected %s, found %q", op, strings.Join(quoteWords(keywords), " or "), w)
		default:
			*cur = append(*cur, w)
		}
	}
	for _, k := range keywords {
		if k == "key" && (!e.hasKey || len(e.key) == 0) {
			return e, Usagef("%s needs a key: key KEY (e.g. key 42, key hex 2a 00 00 00)", op)
		}
		if k == "value" && (!e.hasValue || len(e.value) == 0) {
			return e, Usagef("%s needs a value: value VALUE (e.g. value 1, value hex 01 00 00 00)", op)
		}
	}
	return e, nil
}

func quoteWords(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = "'" + w + "'"
	}
	return out
}

// parseKey turns key words into the map's key bytes.
func (m *openedMap) parseKey(op string, words []string) ([]byte, error) {
	return m.parse(op, "key", words, m.d.Key, m.d.KeySize)
}

// parseValue turns value words into the bytes of one value.
func (m *openedMap) parseValue(op string, words []string) ([]byte, error) {
	return m.parse(op, "value", words, m.d.Value, m.d.ValueSize)
}

// parse turns the words of a key or value (what) of type t into its size
// bytes; a mistake is a usage error that names the map and the type.
func (m *openedMap) parse(op, what string, words []string, t btf.Type, size uint32) ([]byte, error) {
	b, err := bpf.ParseValue(words, t, int(size))
	if err != nil {
		return nil, Usagef("%s: %s for map %s%s", op, what, m.name(), typeContext(err, t, size))
	}
	return b, nil
}

// parseUpdateValue is parseValue for update, where maps of programs and
// maps of maps take an object, as in bpftool ("value pinned PATH", "value
// id 7"): the kernel wants its file descriptor, and shows its id on
// lookup. release closes the object once the update is done.
func (m *openedMap) parseUpdateValue(s *Session, op string, words []string) (value []byte, release func(), err error) {
	var fd int
	switch m.d.Type {
	case ebpf.ProgramArray:
		ref, err := exactWords(s, op, "a program", words)
		if err != nil {
			return nil, nil, err
		}
		p, err := bpf.Program(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: value: %w", op, err)
		}
		fd, release = p.FD(), func() { p.Close() }
	case ebpf.ArrayOfMaps, ebpf.HashOfMaps:
		ref, err := exactWords(s, op, "a map", words)
		if err != nil {
			return nil, nil, err
		}
		inner, err := bpf.Map(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: value: %w", op, err)
		}
		fd, release = inner.FD(), func() { inner.Close() }
	default:
		v, err := m.parseValue(op, words)
		return v, func() {}, err
	}
	return binary.NativeEndian.AppendUint32(nil, uint32(fd)), release, nil
}

// exactWords parses words that must be one object reference.
func exactWords(s *Session, op, what string, words []string) (bpf.Ref, error) {
	ref, rest, err := bpf.ParseRef(words, s.PinRoot)
	if err != nil {
		return ref, Usagef("%s: the value is %s (id N, pinned PATH, name NAME or NAME/OBJ): %v", op, what, err)
	}
	if len(rest) > 0 {
		return ref, Usagef("%s: unexpected %q after the value %s", op, rest[0], ref)
	}
	return ref, nil
}

// typeContext is ": ERR", with the type and size put in front unless the
// literal parser's message already names the type.
func typeContext(err error, t btf.Type, size uint32) string {
	msg := err.Error()
	if t != nil && strings.Contains(msg, bpf.CTypeName(t)) {
		return ": " + msg
	}
	return " (" + describeType(t, size) + "): " + msg
}

// describeType is "struct flow_key, 8 bytes", or "8 bytes, no BTF".
func describeType(t btf.Type, size uint32) string {
	switch {
	case size == 0:
		return "none"
	case t == nil:
		return fmt.Sprintf("%d bytes, no BTF", size)
	}
	return fmt.Sprintf("%s, %d bytes", bpf.CTypeName(t), size)
}

// needKeys refuses the keyed commands on maps without keys, saying what
// to use instead.
func (m *openedMap) needKeys(op string) error {
	switch {
	case bpf.IsQueueOrStack(m.d.Type):
		return fmt.Errorf("%s: map %s is a %s and has no keys; use 'map peek', 'map pop' or 'map push'", op, m.name(), m.typeName())
	case bpf.IsRingBuf(m.d.Type):
		return fmt.Errorf("%s: map %s is a %s and has no keys; 'map dump' shows its pending records", op, m.name(), m.typeName())
	case m.d.KeySize == 0:
		return fmt.Errorf("%s: map %s (%s) has no keys", op, m.name(), m.typeName())
	}
	return nil
}

// opError explains the errno of a failed map operation in the map's terms.
func (m *openedMap) opError(op string, err error, keyText string) error {
	full := fmt.Sprintf("max_entries %d", m.d.MaxEntries)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		if bpf.IsQueueOrStack(m.d.Type) {
			return fmt.Errorf("%s: %s %s is empty", op, m.typeName(), m.name())
		}
		return fmt.Errorf("%s: key not found in map %s (key %s)", op, m.name(), keyText)
	case errors.Is(err, ebpf.ErrKeyExist):
		return fmt.Errorf("%s: key %s is already in map %s ('noexist' only adds new keys)", op, keyText, m.name())
	case errors.Is(err, unix.E2BIG):
		switch {
		case bpf.IsQueueOrStack(m.d.Type):
			return fmt.Errorf("%s: %s %s is full (%s); pop a value first, or push with 'exist' to drop the oldest", op, m.typeName(), m.name(), full)
		case isArray(m.d.Type):
			return fmt.Errorf("%s: index %s is past the end of array %s (%s; indexes run from 0 to %d)", op, keyText, m.name(), full, int64(m.d.MaxEntries)-1)
		}
		return fmt.Errorf("%s: map %s is full (%s); delete entries first", op, m.name(), full)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		if m.d.Frozen || m.d.Flags&unix.BPF_F_RDONLY != 0 {
			return fmt.Errorf("%s: map %s is read-only from user space (frozen or created read-only)", op, m.name())
		}
		return fmt.Errorf("%s: permission denied on map %s; run bpfsh as root (or with CAP_SYS_ADMIN)", op, m.name())
	case errors.Is(err, unix.EINVAL) && op == "map delete" && isArray(m.d.Type):
		return fmt.Errorf("%s: array %s always holds every index and cannot delete one; store zero with 'map update' instead", op, m.name())
	case errors.Is(err, unix.EINVAL) && isArray(m.d.Type):
		return fmt.Errorf("%s: array %s always holds every index: 'noexist' cannot add one; use 'any' or 'exist'", op, m.name())
	}
	return fmt.Errorf("%s: map %s: %w", op, m.name(), err)
}

func isArray(t ebpf.MapType) bool {
	switch t {
	case ebpf.Array, ebpf.PerCPUArray, ebpf.ProgramArray, ebpf.ArrayOfMaps, ebpf.CGroupArray, ebpf.PerfEventArray, ebpf.DevMap, ebpf.CPUMap, ebpf.XSKMap, ebpf.SockMap, ebpf.ReusePortSockArray:
		return true
	}
	return false
}

// openKeyed is the start of the keyed element commands (lookup, update,
// delete): it reads "REF key KEY ..." (keywords and flags as parseElemArgs
// takes them), opens the map and turns the key words into its bytes. The
// caller closes m.
func openKeyed(s *Session, op string, args, keywords, flags []string) (m *openedMap, e elemArgs, key []byte, err error) {
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, e, nil, err
	}
	if e, err = parseElemArgs(op, rest, keywords, flags); err != nil {
		return nil, e, nil, err
	}
	if m, err = openMapRef(op, ref); err != nil {
		return nil, e, nil, err
	}
	if err = m.needKeys(op); err == nil {
		key, err = m.parseKey(op, e.key)
	}
	if err != nil {
		m.Close()
		return nil, e, nil, err
	}
	return m, e, key, nil
}

func runMapLookup(s *Session, args []string) (Result, error) {
	const op = "map lookup"
	m, _, key, err := openKeyed(s, op, args, []string{"key"}, nil)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	value, err := bpf.LookupElem(m.Map, key)
	if err != nil {
		return nil, m.opError(op, err, keyText(m.d, key))
	}
	f := newEntryFormatter(m.d, s.JSON)
	f.text, f.obj = true, true
	row, obj := f.entry(key, value)
	rec := &Record{JSON: obj}
	for i, c := range f.columns() {
		rec.Fields = append(rec.Fields, Field{Name: c, Value: row[i]})
	}
	return rec, nil
}

func keyText(d *bpf.MapDetails, key []byte) string {
	text, _ := bpf.FormatValue(key, d.Key)
	return text
}

func runMapUpdate(s *Session, args []string) (Result, error) {
	const op = "map update"
	m, e, key, err := openKeyed(s, op, args, []string{"key", "value"}, []string{"any", "exist", "noexist"})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	value, release, err := m.parseUpdateValue(s, op, e.value)
	if err != nil {
		return nil, err
	}
	defer release()
	flags := map[string]ebpf.MapUpdateFlags{"": ebpf.UpdateAny, "any": ebpf.UpdateAny, "exist": ebpf.UpdateExist, "noexist": ebpf.UpdateNoExist}[e.flag]
	if err := bpf.UpdateElem(m.Map, key, value, flags); err != nil {
		return nil, m.opError(op, err, keyText(m.d, key))
	}
	return &Message{}, nil
}

func runMapDelete(s *Session, args []string) (Result, error) {
	const op = "map delete"
	m, _, key, err := openKeyed(s, op, args, []string{"key"}, nil)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := m.Delete(key); err != nil {
		return nil, m.opError(op, err, keyText(m.d, key))
	}
	return &Message{}, nil
}

// openQueue opens a queue or stack for peek, pop and push.
func openQueue(op string, ref bpf.Ref) (*openedMap, error) {
	m, err := openMapRef(op, ref)
	if err != nil {
		return nil, err
	}
	if !bpf.IsQueueOrStack(m.d.Type) {
		m.Close()
		return nil, fmt.Errorf("%s works on queue and stack maps; map %s is a %s (use 'map lookup' or 'map dump')", op, m.name(), m.typeName())
	}
	return m, nil
}

// runQueueRead is peek and pop: they take only the map.
func runQueueRead(s *Session, op string, args []string, read func(*ebpf.Map) ([]byte, error)) (Result, error) {
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s takes only a map, not %q", op, rest[0])
	}
	m, err := openQueue(op, ref)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	v, err := read(m.Map)
	if err != nil {
		return nil, m.opError(op, err, "")
	}
	return valueResult(m, v), nil
}

// valueResult shows a popped or peeked value: "value: ..." and
// {"value": ...} as bpftool prints them.
func valueResult(m *openedMap, value []byte) Result {
	text, obj := bpf.FormatValue(value, m.d.Value)
	return &Record{Fields: []Field{{Name: "value", Value: text}}, JSON: map[string]any{"value": obj}}
}

func runMapPeek(s *Session, args []string) (Result, error) {
	return runQueueRead(s, "map peek", args, bpf.PeekElem)
}

func runMapPop(s *Session, args []string) (Result, error) {
	return runQueueRead(s, "map pop", args, bpf.PopElem)
}

func runMapPush(s *Session, args []string) (Result, error) {
	const op = "map push"
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	e, err := parseElemArgs(op, rest, []string{"value"}, []string{"any", "exist"})
	if err != nil {
		return nil, err
	}
	m, err := openQueue(op, ref)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	v, err := m.parseValue(op, e.value)
	if err != nil {
		return nil, err
	}
	flags := ebpf.UpdateAny
	if e.flag == "exist" {
		flags = ebpf.UpdateExist
	}
	if err := bpf.PushElem(m.Map, v, flags); err != nil {
		return nil, m.opError(op, err, "")
	}
	return &Message{}, nil
}

func runMapPin(s *Session, args []string) (Result, error) {
	const op = "map pin"
	if len(args) > 0 {
		if _, err := strconv.ParseUint(args[0], 10, 32); err == nil {
			args = append([]string{"id"}, args...) // bpftool's "map pin ID PATH"
		}
	}
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	if len(rest) != 1 {
		return nil, Usagef("%s needs one PATH after the map, e.g. %s/NAME/map", op, s.PinRoot)
	}
	path := pinPath(s, rest[0])
	m, err := openMapRef(op, ref)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := bpf.PinFD(m.FD(), path); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &Message{Text: fmt.Sprintf("pinned map %d (%s) at %s", m.d.ID, m.name(), path)}, nil
}
