// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

var btfCmd = &Command{
	Name:    "btf",
	Short:   "show BPF Type Format information as C",
	Long:    "btf shows the type information (BTF) the kernel keeps for maps and programs, written as C declarations.",
	Example: "btf dump kv/store",
	Subs: []*Command{
		{
			Name:  "dump",
			Usage: "REF | map REF | prog REF | id BTF_ID | file FILE [format c]",
			Short: "show a map's key and value types, or a program's types, as C",
			Long: "dump writes BTF as C declarations. For a map it writes the types of its keys and values and every type they are built from; for a program, every type, function prototype and global variable of the object it was loaded from. " +
				"REF is a pinned path, NAME/OBJ or 'name NAME' (a map or a program); 'map REF' and 'prog REF' say which one an 'id N' means, and 'id N' alone is a BTF object's id, as in bpftool. 'file FILE' reads the BTF of an ELF object.",
			Example: "btf dump kv/flows",
			Args:    []ArgKind{ArgAnyRef},
			Run:     runBTFDump,
		},
	},
}

// btfDumpJSON is "btf dump -j": the C text and what it describes.
type btfDumpJSON struct {
	Map       string `json:"map,omitempty"`
	Program   string `json:"program,omitempty"`
	BTFID     uint32 `json:"btf_id,omitempty"`
	KeyType   string `json:"key_type,omitempty"`
	ValueType string `json:"value_type,omitempty"`
	C         string `json:"c"`
}

func runBTFDump(s *Session, args []string) (Result, error) {
	const op = "btf dump"
	// bpftool ends the line with "format c" (or raw, which bpfsh lacks).
	if n := len(args); n >= 2 && args[n-2] == "format" {
		if args[n-1] != "c" {
			return nil, Usagef("%s: only 'format c' is supported", op)
		}
		args = args[:n-2]
	}
	if len(args) == 0 {
		return nil, Usagef("%s needs a map, a program, 'id BTF_ID' or 'file FILE'", op)
	}
	switch args[0] {
	case "map":
		ref, err := exactRef(s, op, args[1:])
		if err != nil {
			return nil, err
		}
		return dumpMapBTF(op, ref)
	case "prog":
		ref, err := exactRef(s, op, args[1:])
		if err != nil {
			return nil, err
		}
		return dumpProgBTF(op, ref)
	case "id":
		if len(args) != 2 {
			return nil, Usagef("%s id takes one BTF id (as 'map show' prints in btf_id)", op)
		}
		id, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil {
			return nil, Usagef("%s: BTF id %q is not a number", op, args[1])
		}
		return dumpBTFID(op, btf.ID(id))
	case "file":
		if len(args) != 2 {
			return nil, Usagef("%s file takes one FILE", op)
		}
		spec, err := btf.LoadSpec(args[1])
		if err != nil {
			return nil, fmt.Errorf("%s: read BTF from %s: %w", op, args[1], err)
		}
		return specText(op, spec, btfDumpJSON{})
	}
	ref, err := exactRef(s, op, args)
	if err != nil {
		return nil, err
	}
	switch ref.Kind {
	case bpf.RefPinned:
		// A pin is a program or not; if not, the map path explains
		// whatever else it is (nothing, a directory, a link).
		if p, err := ebpf.LoadPinnedProgram(ref.Value, &ebpf.LoadPinOptions{ReadOnly: true}); err == nil {
			p.Close()
			return dumpProgBTF(op, ref)
		}
		return dumpMapBTF(op, ref)
	case bpf.RefName:
		if ms, err := bpf.Maps(ref); err == nil {
			for _, m := range ms {
				m.Close()
			}
			return dumpMapBTF(op, ref)
		}
		return dumpProgBTF(op, ref)
	case bpf.RefTag:
		return dumpProgBTF(op, ref)
	}
	return nil, Usagef("%s: %s could be a map or a program; write 'btf dump map %s' or 'btf dump prog %s'", op, ref, ref, ref)
}

// exactRef parses a REF that must be all of args.
func exactRef(s *Session, op string, args []string) (bpf.Ref, error) {
	ref, rest, err := bpf.ParseRef(args, s.PinRoot)
	if err != nil {
		return ref, Usagef("%s: %v", op, err)
	}
	if len(rest) > 0 {
		return ref, Usagef("%s: unexpected %q after %s", op, rest[0], ref)
	}
	return ref, nil
}

func dumpMapBTF(op string, ref bpf.Ref) (Result, error) {
	m, err := openMapRef(op, ref)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	d := m.d
	j := btfDumpJSON{Map: d.Name, BTFID: uint32(d.BTFID)}
	if d.Key == nil && d.Value == nil {
		j.C = fmt.Sprintf("/* map %s (%s) has no BTF: keys are %d bytes, values %d bytes, shown as hex */\n", m.name(), m.typeName(), d.KeySize, d.ValueSize)
		return &Text{Body: j.C, JSON: j}, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "/* map %s (%s): key %s, value %s */\n\n", m.name(), m.typeName(), describeType(d.Key, d.KeySize), describeType(d.Value, d.ValueSize))
	var roots []btf.Type
	if d.Key != nil {
		roots = append(roots, d.Key)
		j.KeyType = bpf.CTypeName(d.Key)
	}
	if d.Value != nil {
		roots = append(roots, d.Value)
		j.ValueType = bpf.CTypeName(d.Value)
	}
	b.WriteString(bpf.CDefinitions(roots...))
	j.C = strings.TrimRight(b.String(), "\n") + "\n"
	return &Text{Body: j.C, JSON: j}, nil
}

func dumpProgBTF(op string, ref bpf.Ref) (Result, error) {
	p, err := bpf.Program(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return nil, fmt.Errorf("%s: program %s: %w", op, ref, err)
	}
	h, err := p.Handle()
	if errors.Is(err, ebpf.ErrNotSupported) {
		return nil, fmt.Errorf("%s: program %s was loaded without BTF; there are no types to show", op, info.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: program %s: %w", op, info.Name, err)
	}
	defer h.Close()
	spec, err := bpf.HandleSpec(h)
	if err != nil {
		return nil, fmt.Errorf("%s: program %s: read its BTF: %w", op, info.Name, err)
	}
	j := btfDumpJSON{Program: info.Name}
	if id, ok := info.BTFID(); ok {
		j.BTFID = uint32(id)
	}
	return specText(op, spec, j)
}

func dumpBTFID(op string, id btf.ID) (Result, error) {
	h, err := btf.NewHandleFromID(id)
	if err != nil {
		return nil, fmt.Errorf("%s: BTF id %d: %w", op, id, explainBTFOpen(err))
	}
	defer h.Close()
	spec, err := bpf.HandleSpec(h)
	if err != nil {
		return nil, fmt.Errorf("%s: BTF id %d: %w", op, id, err)
	}
	return specText(op, spec, btfDumpJSON{BTFID: uint32(id)})
}

func explainBTFOpen(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errors.New("no such BTF object; 'map show' and 'prog show' print the btf_id of theirs")
	case errors.Is(err, os.ErrPermission):
		return errors.New("permission denied; run bpfsh as root (or with CAP_SYS_ADMIN)")
	}
	return err
}

func specText(op string, spec *btf.Spec, j btfDumpJSON) (Result, error) {
	c, err := bpf.CSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	j.C = strings.TrimRight(c, "\n") + "\n"
	return &Text{Body: j.C, JSON: j}, nil
}
