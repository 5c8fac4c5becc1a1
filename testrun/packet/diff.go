// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"fmt"
	"strings"
)

// LayerDiff is one layer of the comparison of two packets.
type LayerDiff struct {
	// Name is the layer's name.
	Name string
	// In and Out are the layer on each side; nil when the layer exists on
	// one side only (a program added or removed a header).
	In, Out *Layer
	// Fields compare the layer's fields, in the output's order followed by
	// any only the input has; empty when the layer is on one side only.
	Fields []FieldDiff
	// Changed is true when the layer was added, removed, or has a changed
	// field.
	Changed bool
}

// FieldDiff is one field of a LayerDiff.
type FieldDiff struct {
	Name string
	// In and Out are the values on each side; empty when absent there.
	In, Out string
	Changed bool
}

// Diff compares the layers of a program's input and output packets.
// Layers are paired by name in order (a longest common subsequence), so a
// program that strips or pushes a header shows that layer removed or added
// while the layers around it are still compared field by field. Field
// values are compared as text; byte positions are not compared.
func Diff(in, out []Layer) []LayerDiff {
	pairs := alignLayers(in, out)
	diffs := make([]LayerDiff, 0, len(pairs))
	for _, p := range pairs {
		switch {
		case p[0] < 0:
			l := &out[p[1]]
			diffs = append(diffs, LayerDiff{Name: l.Name, Out: l, Changed: true})
		case p[1] < 0:
			l := &in[p[0]]
			diffs = append(diffs, LayerDiff{Name: l.Name, In: l, Changed: true})
		default:
			diffs = append(diffs, diffLayer(&in[p[0]], &out[p[1]]))
		}
	}
	return diffs
}

func diffLayer(a, b *Layer) LayerDiff {
	d := LayerDiff{Name: b.Name, In: a, Out: b}
	for _, f := range b.Fields {
		fd := FieldDiff{Name: f.Name, Out: f.Value}
		if g := a.Field(f.Name); g != nil {
			fd.In = g.Value
		}
		fd.Changed = fd.In != fd.Out
		d.Fields = append(d.Fields, fd)
	}
	for _, f := range a.Fields {
		if b.Field(f.Name) == nil {
			d.Fields = append(d.Fields, FieldDiff{Name: f.Name, In: f.Value, Changed: true})
		}
	}
	for _, f := range d.Fields {
		d.Changed = d.Changed || f.Changed
	}
	return d
}

// alignLayers pairs the indexes of in and out by a longest common
// subsequence of layer names; -1 marks a layer with no partner. Pairs come
// in packet order.
func alignLayers(in, out []Layer) [][2]int {
	n, m := len(in), len(out)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if in[i].Name == out[j].Name {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var pairs [][2]int
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case in[i].Name == out[j].Name:
			pairs = append(pairs, [2]int{i, j})
			i, j = i+1, j+1
		case lcs[i+1][j] >= lcs[i][j+1]:
			pairs = append(pairs, [2]int{i, -1})
			i++
		default:
			pairs = append(pairs, [2]int{-1, j})
			j++
		}
	}
	for ; i < n; i++ {
		pairs = append(pairs, [2]int{i, -1})
	}
	for ; j < m; j++ {
		pairs = append(pairs, [2]int{-1, j})
	}
	return pairs
}

// FormatDiff writes a diff for people: every layer, its changed fields as
// "in -> out" marked with '*', unchanged ones plain, added and removed
// layers marked '+' and '-'.
func FormatDiff(diffs []LayerDiff) string {
	var b strings.Builder
	for _, d := range diffs {
		switch {
		case d.In == nil:
			fmt.Fprintf(&b, "+ %s (added)\n", d.Name)
			for _, f := range d.Out.Fields {
				fmt.Fprintf(&b, "+   %-8s %s\n", f.Name, f.Value)
			}
			continue
		case d.Out == nil:
			fmt.Fprintf(&b, "- %s (removed)\n", d.Name)
			continue
		}
		mark := " "
		if d.Changed {
			mark = "*"
		}
		fmt.Fprintf(&b, "%s %s\n", mark, d.Name)
		for _, f := range d.Fields {
			if f.Changed {
				fmt.Fprintf(&b, "*   %-8s %s -> %s\n", f.Name, orNone(f.In), orNone(f.Out))
			} else {
				fmt.Fprintf(&b, "    %-8s %s\n", f.Name, f.Out)
			}
		}
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
