// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/gopacket/gopacket"
)

// BuildContext is what a layer's Build function sees: the fields written
// for it, with defaults applied, and its neighbours.
type BuildContext struct {
	// Layer is the layer being built, as written.
	Layer *LayerExpr
	// Next is the layer after this one, nil when it is the last.
	Next *LayerDef
	// Lower is the layer built just before (below) this one, nil when it
	// is the first; UDP and TCP take their checksum's pseudo-header from it.
	Lower gopacket.SerializableLayer
}

// Has reports whether the field was written in the expression.
func (c *BuildContext) Has(name string) bool { return c.Layer.Arg(c.field(name).Name) != nil }

// Value returns the field's value in its kind's Go type: the value
// written; else, for an omitted field of the layer below the next one's
// Bind, the bound value (UDP()/Memcached() gets dport=11211); else the
// field's Default; else its kind's zero value.
func (c *BuildContext) Value(name string) any {
	f := c.field(name)
	if a := c.Layer.Arg(f.Name); a != nil {
		return a.Val
	}
	if c.Next != nil {
		if v, ok := c.Next.bindFor(c.Layer.Def.Name, f.Name); ok {
			return v
		}
	}
	if f.def != nil {
		return f.def
	}
	return f.zero()
}

// Uint returns a KindUint, KindFlags or KindEnum field.
func (c *BuildContext) Uint(name string) uint64 { return c.Value(name).(uint64) }

// MAC returns a KindMAC field.
func (c *BuildContext) MAC(name string) net.HardwareAddr { return c.Value(name).(net.HardwareAddr) }

// IP returns a KindIPv4 or KindIPv6 field.
func (c *BuildContext) IP(name string) net.IP { return c.Value(name).(net.IP) }

// Bytes returns a KindBytes or KindHex field.
func (c *BuildContext) Bytes(name string) []byte { return c.Value(name).([]byte) }

// String returns a KindString field.
func (c *BuildContext) String(name string) string { return c.Value(name).(string) }

// Strings returns a KindStrings field.
func (c *BuildContext) Strings(name string) []string { return c.Value(name).([]string) }

// Bool returns a KindBool field.
func (c *BuildContext) Bool(name string) bool { return c.Value(name).(bool) }

// Given returns the field's value and true when it was written, for Auto
// fields (a length or checksum given is kept as typed).
func (c *BuildContext) Given(name string) (uint64, bool) {
	if a := c.Layer.Arg(c.field(name).Name); a != nil {
		v, ok := a.Val.(uint64)
		return v, ok
	}
	return 0, false
}

// Errorf returns an error about field name, pointing at where it was
// written (or at the layer when it was not): "UDP.chksum: ...".
func (c *BuildContext) Errorf(name, format string, args ...any) error {
	f := c.field(name)
	col := c.Layer.Col
	if a := c.Layer.Arg(f.Name); a != nil {
		col = a.Col
	}
	return &Error{Col: col, Msg: f.qualified() + ": " + fmt.Sprintf(format, args...)}
}

func (c *BuildContext) field(name string) *FieldDef {
	f := c.Layer.Def.Field(name)
	if f == nil {
		panic(fmt.Sprintf("packet: layer %s has no field %q", c.Layer.Def.Name, name))
	}
	if f.target != nil {
		return f.target
	}
	return f
}

// Build builds the packet e describes. Lengths and checksums not written
// are computed over the bytes actually built; values written are kept as
// typed, even when wrong. Nothing pads the frame unless asked (Ether's
// pad=true pads to the 60-byte minimum; a Padding layer appends zeros).
func (e *Expr) Build() ([]byte, error) {
	data, err := e.build()
	if err, ok := err.(*Error); ok {
		err.Expr = e.Text
	}
	return data, err
}

func (e *Expr) build() ([]byte, error) {
	if err := e.checkBuildable(); err != nil {
		return nil, err
	}
	built := make([]gopacket.SerializableLayer, len(e.Layers))
	var lower gopacket.SerializableLayer
	for i, l := range e.Layers {
		c := &BuildContext{Layer: l, Lower: lower}
		if i+1 < len(e.Layers) {
			c.Next = e.Layers[i+1].Def
		}
		if err := c.checkNextFields(); err != nil {
			return nil, err
		}
		sl, err := buildLayer(c)
		if err == nil && sl == nil {
			err = errors.New("internal error: the layer built nothing (please report this)")
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				err = &Error{Col: l.Col, Msg: l.Def.Name + ": " + err.Error()}
			}
			return nil, err
		}
		built[i], lower = sl, sl
	}
	frame := gopacket.NewSerializeBuffer()
	trailer := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	for i := len(e.Layers) - 1; i >= 0; i-- {
		buf := frame
		if e.Layers[i].Def.Trailer {
			buf = trailer
		}
		if err := serializeLayer(built[i], buf, opts); err != nil {
			l := e.Layers[i]
			var fe *fieldError
			switch {
			case errors.As(err, &fe):
				c := &BuildContext{Layer: l}
				err = c.Errorf(fe.field, "%s", fe.msg)
			case !errors.As(err, new(*Error)):
				err = &Error{Col: l.Col, Msg: l.Def.Name + ": " + err.Error()}
			}
			return nil, err
		}
	}
	out := append(bytes.Clone(frame.Bytes()), trailer.Bytes()...)
	return e.pad(out)
}

// buildLayer runs a layer's Build, turning a panic in a registered layer's
// code into an error: one bad layer must not take the shell down.
func buildLayer(c *BuildContext) (sl gopacket.SerializableLayer, err error) {
	defer func() {
		if p := recover(); p != nil {
			sl, err = nil, fmt.Errorf("internal error building the layer: %v (please report this)", p)
		}
	}()
	return c.Layer.Def.Build(c)
}

// serializeLayer runs SerializeTo, turning a panic into an error as
// buildLayer does.
func serializeLayer(sl gopacket.SerializableLayer, b gopacket.SerializeBuffer, opts gopacket.SerializeOptions) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error serializing the layer: %v (please report this)", p)
		}
	}()
	return sl.SerializeTo(b, opts)
}

// checkBuildable refuses wildcards, which only expect packet understands.
func (e *Expr) checkBuildable() error {
	for _, l := range e.Layers {
		for _, a := range l.Args {
			if a.Value.Kind == ValueAny {
				return &Error{Col: a.Value.Col, Msg: fmt.Sprintf("%s.%s: '*' matches any value in expect packet; give a value to build a packet", l.Def.Name, a.Name)}
			}
		}
	}
	return nil
}

// checkNextFields refuses to guess a field that names the next layer when
// that layer is announced by Binds but not by this field: Ether()/UDP()
// would otherwise get some unrelated EtherType. Layers with no Binds (Raw,
// Padding) are payload anywhere and take the field's Default.
func (c *BuildContext) checkNextFields() error {
	if c.Next == nil || len(c.Next.Binds) == 0 {
		return nil
	}
	for i := range c.Layer.Def.Fields {
		f := &c.Layer.Def.Fields[i]
		if !f.Next || c.Has(f.Name) {
			continue
		}
		if _, ok := c.Next.bindFor(c.Layer.Def.Name, f.Name); !ok {
			if kin := announcedKin(c.Layer.Def.Name, f.Name, c.Next.Name); kin != "" {
				return &Error{Col: c.Layer.Col, Msg: fmt.Sprintf("%s: no %s value announces %s after %s: did you mean %s()? (or write %s=N to put %s there anyway)", f.qualified(), f.Name, c.Next.Name, c.Layer.Def.Name, kin, f.Name, c.Next.Name)}
			}
			if mid := layerBetween(c.Layer.Def.Name, c.Next.Name); mid != "" {
				return &Error{Col: c.Layer.Col, Msg: fmt.Sprintf("%s: no %s value announces %s after %s: did you mean %s()/%s()/%s()? (or write %s=N to put %s there anyway)", f.qualified(), f.Name, c.Next.Name, c.Layer.Def.Name, c.Layer.Def.Name, mid, c.Next.Name, f.Name, c.Next.Name)}
			}
			return &Error{Col: c.Layer.Col, Msg: fmt.Sprintf("%s: no %s value announces %s after %s; write %s=N", f.qualified(), f.Name, c.Next.Name, c.Layer.Def.Name, f.Name)}
		}
	}
	return nil
}

// ethMinFrame is the smallest Ethernet frame without its FCS (ETH_ZLEN).
const ethMinFrame = 60

// pad applies Ether(pad=true): zeros up to the 60-byte minimum frame.
func (e *Expr) pad(frame []byte) ([]byte, error) {
	for i, l := range e.Layers {
		a := l.Arg("pad")
		if l.Def.Name != "Ether" || a == nil || a.Val != true {
			continue
		}
		if i != 0 {
			return nil, &Error{Col: a.Col, Msg: "Ether.pad: only the outermost Ether pads the frame"}
		}
		if len(frame) < ethMinFrame {
			frame = append(frame, make([]byte, ethMinFrame-len(frame))...)
		}
	}
	return frame, nil
}

// Build parses text and builds the packet.
func Build(text string) ([]byte, error) {
	e, err := Parse(text)
	if err != nil {
		return nil, err
	}
	return e.Build()
}

// MustBuild is Build for tests and fixtures: it panics on error.
func MustBuild(text string) []byte {
	b, err := Build(text)
	if err != nil {
		panic(fmt.Sprintf("packet.MustBuild(%q): %v", text, err))
	}
	return b
}

// fieldError is an error about one field found while serializing, when
// the column is not at hand; Build turns it into an *Error.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// FieldErrorf is for a layer's SerializeTo, which has no BuildContext: an
// error about one of the layer's fields, which Build reports as
// "column N: Layer.field: message" pointing at the field.
func FieldErrorf(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// serializeFunc adapts a function that prepends a layer's bytes to
// gopacket.SerializableLayer.
type serializeFunc func(b gopacket.SerializeBuffer) error

func (f serializeFunc) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	return f(b)
}

func (f serializeFunc) LayerType() gopacket.LayerType { return gopacket.LayerTypePayload }
