// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Layer is one decoded layer of a packet.
type Layer struct {
	// Name is the layer's registered name ("IPv4").
	Name string
	// Offset is where the layer starts in the packet; Len is how many
	// bytes its header covers (for Raw and Padding, all of their bytes).
	Offset, Len int
	// Fields are the header's fields in header order.
	Fields []Field
	// Note says what is odd about the layer: truncated, or why the bytes
	// could not be decoded as the layer the one below announced.
	Note string
}

// Field is one decoded field.
type Field struct {
	Name string
	// Value is the value in expression syntax, in the field's canonical
	// form: what Match compares and what Format writes.
	Value string
	// Start and End are the bytes of the packet the field covers (End
	// exclusive); a field of a few bits covers the bytes holding them.
	Start, End int
	// Note flags a problem with the value, e.g. "bad checksum, want 0x1c46".
	Note string

	val any
}

// Val returns the value in its kind's Go type (uint64, net.IP, []byte...).
func (f *Field) Val() any { return f.val }

// Field returns the named field, or nil.
func (l *Layer) Field(name string) *Field {
	for i := range l.Fields {
		if strings.EqualFold(l.Fields[i].Name, name) {
			return &l.Fields[i]
		}
	}
	return nil
}

// jsonValue is the field as JSON shows it: a number for a number (ttl,
// ports, lengths, checksums, even those written in hex), the expression
// text for the rest (addresses, names of flags and enum values, payloads).
func (f *Field) jsonValue() any {
	if n, ok := f.val.(uint64); ok {
		if p, err := strconv.ParseUint(f.Value, 0, 64); err == nil && p == n {
			return n
		}
	}
	return f.Value
}

// MarshalJSON writes {"name", "offset", "length", "fields": {name: value},
// "notes": {name: note}, "note"} with the fields in header order.
func (l Layer) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	name, _ := json.Marshal(l.Name)
	fmt.Fprintf(&b, `{"name":%s,"offset":%d,"length":%d,"fields":{`, name, l.Offset, l.Len)
	var notes []string
	for i, f := range l.Fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.Name)
		v, _ := json.Marshal(f.jsonValue())
		fmt.Fprintf(&b, "%s:%s", k, v)
		if f.Note != "" {
			n, _ := json.Marshal(f.Note)
			notes = append(notes, string(k)+":"+string(n))
		}
	}
	b.WriteByte('}')
	if len(notes) > 0 {
		fmt.Fprintf(&b, `,"notes":{%s}`, strings.Join(notes, ","))
	}
	if l.Note != "" {
		n, _ := json.Marshal(l.Note)
		fmt.Fprintf(&b, `,"note":%s`, n)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Decoded is what a layer's Decode function reports.
type Decoded struct {
	// Fields are the header's fields in header order, offsets relative to
	// the layer's start. Values have the Go type of their FieldKind.
	Fields []FieldValue
	// HeaderLen is how many bytes the header takes; its payload follows.
	HeaderLen int
	// End is where the payload ends, counted from the layer's start, when
	// the header says (IPv4's total length); bytes beyond it are padding.
	// 0 means the payload runs to the end of data.
	End int
	// Next names the next layer when the header decides it outright.
	// Empty: the next layer is the one whose Bind matches this layer's
	// fields, or Raw.
	Next string
	// Note is a remark on the whole layer.
	Note string
}

// FieldValue is one field as Decode reports it.
type FieldValue struct {
	Name  string
	Value any
	// Off and Len are the field's bytes relative to the layer's start.
	Off, Len int
	Note     string
}

// maxLayers bounds decoding; no real packet nests deeper.
const maxLayers = 64

// Decode splits data into layers, starting with the layer named first
// ("Ether" for XDP and TC packets; "IPv4", "Raw"...; an unknown name
// decodes as Raw). It never fails: bytes that cannot be decoded as the
// layer announced become a Raw layer whose Note says why, and bytes
// beyond a length the header gives (IPv4's total length) become a Padding
// layer at the end.
func Decode(data []byte, first string) []Layer {
	var out []Layer
	def := Lookup(first)
	if def == nil {
		def = Lookup("Raw")
	}
	off, end := 0, len(data)
	var pads [][2]int // regions beyond a header's length, outermost first
	for off < end {
		var lower *Layer
		if len(out) > 0 {
			lower = &out[len(out)-1]
		}
		d, err := decodeLayer(def, data[off:end], lower)
		if err == nil && (d.HeaderLen <= 0 || d.HeaderLen > end-off) {
			err = fmt.Errorf("header of %d bytes in %d", d.HeaderLen, end-off)
		}
		if err != nil || len(out) == maxLayers-1 {
			if err == nil {
				err = fmt.Errorf("more than %d layers", maxLayers)
			}
			raw := rawLayer("Raw", data[off:end], off)
			raw.Note = fmt.Sprintf("not decoded as %s: %v", def.Name, err)
			out = append(out, raw)
			break
		}
		l := makeLayer(def, d, off)
		if d.End > 0 {
			switch payloadEnd := off + max(d.End, d.HeaderLen); {
			case payloadEnd < end:
				pads = append(pads, [2]int{payloadEnd, end})
				end = payloadEnd
			case payloadEnd > end:
				l.Note = joinNote(l.Note, fmt.Sprintf("truncated: the header says %d bytes, %d are here", d.End, end-off))
			}
		}
		out = append(out, l)
		off += d.HeaderLen
		def = nextDef(&out[len(out)-1], d.Next)
	}
	for i := len(pads) - 1; i >= 0; i-- {
		out = append(out, rawLayer("Padding", data[pads[i][0]:pads[i][1]], pads[i][0]))
	}
	return out
}

// decodeLayer runs def.Decode, turning a panic in a registered layer's
// code into an error.
func decodeLayer(def *LayerDef, data []byte, lower *Layer) (d *Decoded, err error) {
	if def.Decode == nil {
		return nil, fmt.Errorf("%s has no decoder", def.Name)
	}
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, fmt.Errorf("internal error in the %s decoder: %v (please report this)", def.Name, p)
		}
	}()
	d, err = def.Decode(data, lower)
	if err == nil && d == nil {
		err = fmt.Errorf("%s decoder returned nothing", def.Name)
	}
	return d, err
}

func nextDef(l *Layer, named string) *LayerDef {
	if named != "" {
		if d := Lookup(named); d != nil {
			return d
		}
	}
	if d := nextLayer(l); d != nil {
		return d
	}
	return Lookup("Raw")
}

func makeLayer(def *LayerDef, d *Decoded, off int) Layer {
	l := Layer{Name: def.Name, Offset: off, Len: d.HeaderLen, Note: d.Note}
	for _, fv := range d.Fields {
		// Decoders may hand out slices of the packet; keep values that do
		// not change when the caller reuses its buffer.
		switch v := fv.Value.(type) {
		case []byte:
			fv.Value = bytes.Clone(v)
		case net.IP:
			fv.Value = net.IP(bytes.Clone(v))
		case net.HardwareAddr:
			fv.Value = net.HardwareAddr(bytes.Clone(v))
		}
		text := fmt.Sprint(fv.Value)
		if f := def.Field(fv.Name); f != nil {
			text = f.format(fv.Value)
		}
		l.Fields = append(l.Fields, Field{
			Name: fv.Name, Value: text, Note: fv.Note, val: fv.Value,
			Start: off + fv.Off, End: off + fv.Off + fv.Len,
		})
	}
	return l
}

// rawLayer is name (Raw or Padding) covering data at off.
func rawLayer(name string, data []byte, off int) Layer {
	def := Lookup(name)
	d, _ := def.Decode(data, nil)
	return makeLayer(def, d, off)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Summary is the layer names joined by '/', e.g. "Ether/IPv4/UDP/Raw".
func Summary(layers []Layer) string {
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = l.Name
	}
	return strings.Join(names, "/")
}

// Format writes decoded layers back as an expression that builds the same
// bytes: every field is written, lengths and checksums included.
func Format(layers []Layer) string {
	parts := make([]string, len(layers))
	for i, l := range layers {
		args := make([]string, len(l.Fields))
		for j, f := range l.Fields {
			args[j] = f.Name + "=" + f.Value
		}
		parts[i] = l.Name + "(" + strings.Join(args, ", ") + ")"
	}
	return strings.Join(parts, "/")
}
