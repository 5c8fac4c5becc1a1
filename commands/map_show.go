// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/bpf"
)

// mapJSON is one map as "bpftool -j map show" prints it, plus the BTF
// types of keys and values.
type mapJSON struct {
	ID           uint32   `json:"id"`
	Type         string   `json:"type"`
	Name         string   `json:"name"`
	Flags        uint32   `json:"flags"`
	BytesKey     uint32   `json:"bytes_key"`
	BytesValue   uint32   `json:"bytes_value"`
	MaxEntries   uint32   `json:"max_entries"`
	BytesMemlock uint64   `json:"bytes_memlock"`
	Frozen       int      `json:"frozen"`
	BTFID        uint32   `json:"btf_id,omitempty"`
	KeyType      string   `json:"key_type,omitempty"`
	ValueType    string   `json:"value_type,omitempty"`
	Pinned       []string `json:"pinned,omitempty"`
}

func mapToJSON(d *bpf.MapDetails, pins []string) mapJSON {
	j := mapJSON{
		ID: uint32(d.ID), Type: bpf.MapTypeName(uint32(d.Type)), Name: d.Name, Flags: d.Flags,
		BytesKey: d.KeySize, BytesValue: d.ValueSize, MaxEntries: d.MaxEntries,
		BytesMemlock: d.Memlock, BTFID: uint32(d.BTFID), Pinned: pins,
	}
	if d.Frozen {
		j.Frozen = 1
	}
	if d.Key != nil {
		j.KeyType = bpf.CTypeName(d.Key)
	}
	if d.Value != nil {
		j.ValueType = bpf.CTypeName(d.Value)
	}
	return j
}

// flagsText is "0x0", or "0x81 (no_prealloc,rdonly_prog)".
func flagsText(flags uint32) string {
	if flags == 0 {
		return "0x0"
	}
	return fmt.Sprintf("%#x (%s)", flags, bpf.MapFlagNames(flags))
}

func runMapList(s *Session, args []string) (Result, error) {
	if len(args) > 0 {
		return nil, Usagef("map list takes no arguments; 'map show REF' shows one map")
	}
	return listMaps()
}

func listMaps() (Result, error) {
	ds, err := bpf.ListMaps()
	if err != nil {
		return nil, err
	}
	pins := bpf.MapPins(bpf.BPFFSPath)
	t := &Table{Columns: []string{"id", "type", "name", "key", "value", "max_entries", "flags", "memlock", "pinned"}}
	js := make([]mapJSON, 0, len(ds))
	for _, d := range ds {
		p := pins[d.ID]
		t.Rows = append(t.Rows, []string{
			strconv.Itoa(int(d.ID)), bpf.MapTypeName(uint32(d.Type)), d.Name,
			fmt.Sprintf("%dB", d.KeySize), fmt.Sprintf("%dB", d.ValueSize),
			strconv.Itoa(int(d.MaxEntries)), fmt.Sprintf("%#x", d.Flags),
			fmt.Sprintf("%dB", d.Memlock), strings.Join(p, " "),
		})
		js = append(js, mapToJSON(d, p))
	}
	t.JSON = js
	return t, nil
}

func runMapShow(s *Session, args []string) (Result, error) {
	const op = "map show"
	if len(args) == 0 {
		return listMaps()
	}
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s takes one map, not %q after it", op, rest[0])
	}
	ms, err := openMapRefs(op, ref)
	if err != nil {
		return nil, err
	}
	pins := bpf.MapPins(bpf.BPFFSPath)
	var out List
	for _, m := range ms {
		out = append(out, mapRecord(m.d, pins[m.d.ID]))
		m.Close()
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

// mapRecord is one map's "map show" record.
func mapRecord(d *bpf.MapDetails, pins []string) *Record {
	r := &Record{JSON: mapToJSON(d, pins)}
	add := func(name, value string) { r.Fields = append(r.Fields, Field{Name: name, Value: value}) }
	add("id", strconv.Itoa(int(d.ID)))
	add("type", bpf.MapTypeName(uint32(d.Type)))
	add("name", d.Name)
	add("flags", flagsText(d.Flags))
	add("key", describeType(d.Key, d.KeySize))
	add("value", describeType(d.Value, d.ValueSize))
	add("max_entries", strconv.Itoa(int(d.MaxEntries)))
	add("memlock", fmt.Sprintf("%d bytes", d.Memlock))
	if d.BTFID != 0 {
		add("btf_id", strconv.Itoa(int(d.BTFID)))
	}
	if d.BTFErr != nil {
		add("btf", fmt.Sprintf("unreadable, keys and values shown as bytes (%v)", d.BTFErr))
	}
	if d.Frozen {
		add("frozen", "yes (read-only from user space)")
	}
	if len(pins) > 0 {
		add("pinned", strings.Join(pins, " "))
	}
	return r
}
