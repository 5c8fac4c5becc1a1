// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Entries print in JSON as bpftool's "formatted" objects:
//
//	{"key": K, "value": V}
//	{"key": K, "values": [{"cpu": 0, "value": V}, ...], "sum": S}  (per-CPU)
//
// They are built as json.RawMessage with bpf.AppendValueJSON (see
// bpf/value_json.go): the shell writes those as they are.

// entryFormatter turns raw entries into table rows and JSON objects.
type entryFormatter struct {
	d    *bpf.MapDetails
	cpus int
	// sumInt is the value's integer type when per-CPU values can be summed.
	sumInt *btf.Int
	// text and obj say which of the two forms to build: a dump of a
	// million entries builds only the one the shell will print.
	text, obj bool
	// jsonCap is room for one entry's JSON (bytes shown as "0x2a" take
	// seven characters each), so that a chunk's JSON is one allocation.
	jsonCap int
}

func newEntryFormatter(d *bpf.MapDetails, json bool) *entryFormatter {
	f := &entryFormatter{d: d, cpus: 1, text: !json, obj: json}
	if bpf.IsPerCPU(d.Type) {
		f.cpus, _ = ebpf.PossibleCPU()
		f.cpus = max(f.cpus, 1)
		if i, ok := btf.UnderlyingType(d.Value).(*btf.Int); ok && d.Value != nil {
			switch i.Size {
			case 1, 2, 4, 8:
				f.sumInt = i
			}
		}
	}
	f.jsonCap = 48 + 8*int(d.KeySize) + f.cpus*(24+8*int(d.ValueSize))
	return f
}

func (f *entryFormatter) perCPU() bool { return bpf.IsPerCPU(f.d.Type) }

// columns are the table's columns: key and value, or key, sum and the
// per-CPU values.
func (f *entryFormatter) columns() []string {
	switch {
	case !f.perCPU():
		return []string{"key", "value"}
	case f.sumInt != nil:
		return []string{"key", "sum", "per_cpu"}
	}
	return []string{"key", "per_cpu"}
}

// entry formats one entry; values holds one value, or one per CPU packed
// at the value size.
func (f *entryFormatter) entry(key, values []byte) (row []string, obj any) {
	var arena []byte
	return f.entryIn(key, values, &arena)
}

// entryIn is entry with the JSON written at the end of *arena, so that
// the entries of a chunk share one allocation.
func (f *entryFormatter) entryIn(key, values []byte, arena *[]byte) (row []string, obj any) {
	if !f.perCPU() {
		if f.text {
			row = []string{bpf.FormatText(key, f.d.Key), bpf.FormatText(values, f.d.Value)}
		}
		if f.obj {
			start := len(*arena)
			b := append(*arena, `{"key":`...)
			b = bpf.AppendValueJSON(b, key, f.d.Key)
			b = append(b, `,"value":`...)
			b = bpf.AppendValueJSON(b, values, f.d.Value)
			b = append(b, '}')
			*arena = b
			obj = json.RawMessage(b[start:len(b):len(b)])
		}
		return row, obj
	}
	vs := int(f.d.ValueSize)
	n := len(values) / vs
	var sum *big.Int
	if f.sumInt != nil {
		sum = new(big.Int)
	}
	var texts []string
	start := len(*arena)
	b := *arena
	if f.obj {
		b = append(b, `{"key":`...)
		b = bpf.AppendValueJSON(b, key, f.d.Key)
		b = append(b, `,"values":[`...)
	}
	for cpu := range n {
		v := values[cpu*vs : (cpu+1)*vs]
		if f.text {
			texts = append(texts, "cpu"+strconv.Itoa(cpu)+"="+bpf.FormatText(v, f.d.Value))
		}
		if f.obj {
			if cpu > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"cpu":`...)
			b = strconv.AppendInt(b, int64(cpu), 10)
			b = append(b, `,"value":`...)
			b = bpf.AppendValueJSON(b, v, f.d.Value)
			b = append(b, '}')
		}
		if sum != nil {
			sum.Add(sum, intValue(v, f.sumInt))
		}
	}
	if f.text {
		row = []string{bpf.FormatText(key, f.d.Key)}
		if sum != nil {
			row = append(row, sum.String())
		}
		row = append(row, strings.Join(texts, " "))
	}
	if f.obj {
		b = append(b, ']')
		if sum != nil {
			b = append(b, `,"sum":`...)
			b = sum.Append(b, 10)
		}
		b = append(b, '}')
		*arena = b
		obj = json.RawMessage(b[start:len(b):len(b)])
	}
	return row, obj
}

// formattedEntry is one entry ready for the shell.
type formattedEntry struct {
	row []string
	obj any
}

// chunk formats every entry of c.
func (f *entryFormatter) chunk(c *bpf.MapChunk) []formattedEntry {
	out := make([]formattedEntry, c.N)
	var arena []byte
	if f.obj {
		arena = make([]byte, 0, c.N*f.jsonCap)
	}
	for i := range c.N {
		vals := c.Values[i*c.CPUs*c.ValueSize : (i+1)*c.CPUs*c.ValueSize]
		out[i].row, out[i].obj = f.entryIn(c.Key(i), vals, &arena)
	}
	return out
}

// intValue reads an integer of type t in the machine's byte order, as
// the kernel stores it.
func intValue(b []byte, t *btf.Int) *big.Int {
	var u uint64
	switch t.Size {
	case 1:
		u = uint64(b[0])
	case 2:
		u = uint64(binary.NativeEndian.Uint16(b))
	case 4:
		u = uint64(binary.NativeEndian.Uint32(b))
	case 8:
		u = binary.NativeEndian.Uint64(b)
	}
	if t.Encoding&btf.Signed != 0 {
		shift := 64 - 8*t.Size
		return big.NewInt(int64(u<<shift) >> shift)
	}
	return new(big.Int).SetUint64(u)
}

func runMapDump(s *Session, args []string) (Result, error) {
	const op = "map dump"
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s takes one map, not %q after it", op, rest[0])
	}
	m, err := openMapRef(op, ref)
	if err != nil {
		return nil, err
	}
	switch {
	case bpf.IsQueueOrStack(m.d.Type):
		defer m.Close()
		return dumpQueue(m)
	case m.d.Type == ebpf.RingBuf:
		defer m.Close()
		return dumpRingBuf(m)
	case m.d.KeySize == 0:
		defer m.Close()
		return nil, fmt.Errorf("%s: map %s is a %s, which has no entries to list", op, m.name(), m.typeName())
	}
	// The stream is read after this returns, when the shell renders it;
	// it reopens the map by id then, so that no file descriptor is held
	// by a result that may never be rendered (or rendered twice).
	d := m.d
	m.Close()
	f := newEntryFormatter(d, s.JSON)
	return &Stream{
		Columns: f.columns(),
		Each: func(emit func(row []string, obj any) error) error {
			mm, err := ebpf.NewMapFromID(d.ID)
			if err != nil {
				return fmt.Errorf("%s: map %d (%s) is gone: %w", op, d.ID, d.Name, err)
			}
			defer mm.Close()
			// Entries are formatted by the goroutines that read them, in
			// parallel; emit writes them out in this one.
			err = bpf.ReadMapPrepared(mm, f.chunk, func(rows []formattedEntry) error {
				for _, r := range rows {
					if err := emit(r.row, r.obj); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s: map %s: %w", op, d.Name, err)
			}
			return nil
		},
	}, nil
}

// dumpQueue shows what a queue or stack lets one read without taking it:
// the value a pop would return.
func dumpQueue(m *openedMap) (Result, error) {
	where, note := "head", "a queue can be read only at its head (the oldest value) without consuming it; 'map pop' takes values off"
	if m.d.Type == ebpf.Stack {
		where, note = "top", "a stack can be read only at its top (the newest value) without consuming it; 'map pop' takes values off"
	}
	rec := &Record{Fields: []Field{
		{Name: "map", Value: fmt.Sprintf("%s (%s, max_entries %d)", m.name(), m.typeName(), m.d.MaxEntries)},
	}}
	j := map[string]any{"type": m.typeName(), "name": m.d.Name, where: nil, "note": note}
	v, err := bpf.PeekElem(m.Map)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		rec.Fields = append(rec.Fields, Field{Name: where, Value: "(empty)"})
	case err != nil:
		return nil, m.opError("map dump", err, "")
	default:
		text, obj := bpf.FormatValue(v, m.d.Value)
		rec.Fields = append(rec.Fields, Field{Name: where, Value: text})
		j[where] = obj
	}
	rec.Fields = append(rec.Fields, Field{Name: "note", Value: note})
	rec.JSON = j
	return rec, nil
}

// ringRecordsShown and ringBytesShown bound what a ring buffer dump shows.
const (
	ringRecordsShown = 64
	ringBytesShown   = 32
)

// ringJSON is a ring buffer's state in JSON.
type ringJSON struct {
	Type         string           `json:"type"`
	Name         string           `json:"name"`
	Size         uint64           `json:"size"`
	ConsumerPos  uint64           `json:"consumer_pos"`
	ProducerPos  uint64           `json:"producer_pos"`
	PendingBytes uint64           `json:"pending_bytes"`
	Records      []ringRecordJSON `json:"records"`
	More         bool             `json:"more,omitempty"`
	Note         string           `json:"note"`
}

type ringRecordJSON struct {
	Pos       uint64 `json:"pos"`
	Len       int    `json:"len"`
	Busy      bool   `json:"busy,omitempty"`
	Discarded bool   `json:"discarded,omitempty"`
	Data      string `json:"data"`
}

// dumpRingBuf shows a ring buffer's positions and pending records
// without consuming any: reading one moves the consumer position, which
// would steal records from the program's real reader.
func dumpRingBuf(m *openedMap) (Result, error) {
	st, err := bpf.PeekRingBuf(m.Map, ringRecordsShown, ringBytesShown)
	if err != nil {
		return nil, fmt.Errorf("map dump: ringbuf %s: %w", m.name(), err)
	}
	note := "records are shown, not consumed; a reader still gets every one"
	j := ringJSON{
		Type: m.typeName(), Name: m.d.Name, Size: st.Size, ConsumerPos: st.ConsumerPos,
		ProducerPos: st.ProducerPos, PendingBytes: st.Pending(), Records: []ringRecordJSON{}, More: st.More, Note: note,
	}
	rec := &Record{Fields: []Field{
		{Name: "map", Value: fmt.Sprintf("%s (ringbuf, %d bytes)", m.name(), st.Size)},
		{Name: "consumer_pos", Value: strconv.FormatUint(st.ConsumerPos, 10)},
		{Name: "producer_pos", Value: strconv.FormatUint(st.ProducerPos, 10)},
		{Name: "pending", Value: fmt.Sprintf("%d bytes in %d records", st.Pending(), len(st.Records))},
		{Name: "note", Value: note},
	}}
	if st.More {
		rec.Fields[3].Value = fmt.Sprintf("%d bytes; the first %d records:", st.Pending(), len(st.Records))
	}
	for i, r := range st.Records {
		state := "ready"
		switch {
		case r.Busy:
			state = "busy (reserved, not yet submitted)"
		case r.Discarded:
			state = "discarded"
		}
		data := hex.EncodeToString(r.Data)
		if r.Len > len(r.Data) && !r.Busy {
			data += "..."
		}
		rec.Fields = append(rec.Fields, Field{
			Name:  fmt.Sprintf("record %d", i),
			Value: fmt.Sprintf("pos %d, %d bytes, %s: %s", r.Pos, r.Len, state, data),
		})
		j.Records = append(j.Records, ringRecordJSON{Pos: r.Pos, Len: r.Len, Busy: r.Busy, Discarded: r.Discarded, Data: hex.EncodeToString(r.Data)})
	}
	rec.JSON = j
	return rec, nil
}
