// SPDX-License-Identifier: Apache-2.0

package packet

import "fmt"

// Mismatch is one way a packet differs from what an expectation asked.
type Mismatch struct {
	// Layer is the index of the layer in the expected expression.
	Layer int
	// Name is the expected layer's name.
	Name string
	// Field is the field that differs; empty when the layer itself is
	// missing or is another layer.
	Field string
	// Want and Got are the values in canonical expression syntax (for a
	// layer mismatch, the layer names).
	Want, Got string
}

func (m Mismatch) String() string {
	if m.Field != "" {
		return fmt.Sprintf("%s.%s: want %s, got %s", m.Name, m.Field, m.Want, m.Got)
	}
	return fmt.Sprintf("layer %d: want %s, got %s", m.Layer+1, m.Want, m.Got)
}

// Match compares decoded layers with an expected expression, as
// "expect packet EXPR" does. What a test author writes is what is checked:
//
//   - the expression's layers must be the packet's first layers, in order
//     (layer names compared, aliases resolved); layers after the last one
//     written are not compared, so Ether()/IPv4()/UDP() accepts any payload;
//   - within a layer, only the fields written are compared, each in its
//     canonical form (ttl=0x40 equals 64, flags=AS equals SA, fd00::01
//     equals fd00::1); fields not written are not compared, their defaults
//     included;
//   - '*' accepts any value (IPv4(chksum=*)), and build-only options such as
//     Ether's pad are ignored.
//
// It returns nil when everything written matches.
func Match(want *Expr, got []Layer) []Mismatch {
	var out []Mismatch
	for i, wl := range want.Layers {
		if i >= len(got) {
			end := "an empty packet"
			if i > 0 {
				end = "the packet ends after " + got[i-1].Name
			}
			out = append(out, Mismatch{Layer: i, Name: wl.Def.Name, Want: wl.Def.Name, Got: end})
			break
		}
		gl := &got[i]
		if gl.Name != wl.Def.Name {
			g := gl.Name
			if gl.Note != "" {
				g += " (" + gl.Note + ")"
			}
			out = append(out, Mismatch{Layer: i, Name: wl.Def.Name, Want: wl.Def.Name, Got: g})
			break
		}
		for _, a := range wl.Args {
			f := wl.Def.Field(a.Name)
			if f.BuildOnly || a.Value.Kind == ValueAny {
				continue
			}
			w := f.format(a.Val)
			g := f.format(f.zero()) // decoders omit fields that are zero or empty
			if gf := gl.Field(a.Name); gf != nil {
				g = gf.Value
			}
			if w != g {
				out = append(out, Mismatch{Layer: i, Name: wl.Def.Name, Field: f.Name, Want: w, Got: g})
			}
		}
	}
	return out
}
