// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"fmt"
	"strings"
)

// Expr is a parsed layer expression such as
// Ether()/IPv4(ttl=1)/UDP(dport=7777)/Raw("ping"). Every layer name and
// field name in it is known and every value has been checked against its
// field, so Build fails only on what cannot be decided while parsing
// (a wildcard, a checksum with no IP layer to compute it from).
type Expr struct {
	// Text is the expression as given; error columns count runes in it.
	Text string
	// Layers are the layers in order, outermost first.
	Layers []*LayerExpr
}

// LayerExpr is one layer of an expression: a registered layer and the
// fields written for it.
type LayerExpr struct {
	Def *LayerDef
	// Col is the column of the layer name in Expr.Text (1-based).
	Col int
	// Args are the fields written, in the order written, each at most once.
	Args []*Arg
}

// Arg is one field written in a layer (or one item of a list value).
type Arg struct {
	// Name is the field's name; for an alias (Raw's hex=) the field it
	// stands for. Empty for a list item written without a name.
	Name string
	// Col is the column where the argument starts.
	Col int
	// Value is the value as written.
	Value Value
	// Val is Value converted to the field's Go type (see FieldKind); nil
	// for the wildcard '*'.
	Val any
}

// ValueKind says how a value was written.
type ValueKind int

// The ways a value can be written.
const (
	ValueWord   ValueKind = iota // a bare word: 64, 0x0800, 10.0.0.1, fe80::1, S|A, echo-request
	ValueString                  // a quoted string, escapes resolved
	ValueList                    // [item, name=value, ...]
	ValueTuple                   // (a, b, ...)
	ValueAny                     // *, the wildcard of expect packet
)

// Value is a field value as written in an expression.
type Value struct {
	Kind ValueKind
	// Text is the word, or the string with its escapes resolved.
	Text string
	// Items are the elements of a list or tuple.
	Items []*Arg
	// Col is the column where the value starts.
	Col int
}

// String writes v back in expression syntax.
func (v Value) String() string {
	switch v.Kind {
	case ValueString:
		return Quote(v.Text)
	case ValueList, ValueTuple:
		parts := make([]string, len(v.Items))
		for i, it := range v.Items {
			parts[i] = it.String()
		}
		if v.Kind == ValueList {
			return "[" + strings.Join(parts, ", ") + "]"
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case ValueAny:
		return "*"
	}
	return v.Text
}

// String writes a as name=value, or the value alone when unnamed.
func (a *Arg) String() string {
	if a.Name == "" {
		return a.Value.String()
	}
	return a.Name + "=" + a.Value.String()
}

// Arg returns the argument written for field name, or nil.
func (l *LayerExpr) Arg(name string) *Arg {
	for _, a := range l.Args {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// String writes the layer back as Name(field=value, ...), each value in
// its field's canonical form.
func (l *LayerExpr) String() string {
	parts := make([]string, 0, len(l.Args))
	for _, a := range l.Args {
		f := l.Def.Field(a.Name)
		text := "*"
		if a.Val != nil {
			text = f.format(a.Val)
		}
		parts = append(parts, a.Name+"="+text)
	}
	return l.Def.Name + "(" + strings.Join(parts, ", ") + ")"
}

// String writes e in canonical form: layers joined by '/', each field in
// its canonical spelling.
func (e *Expr) String() string {
	parts := make([]string, len(e.Layers))
	for i, l := range e.Layers {
		parts[i] = l.String()
	}
	return strings.Join(parts, "/")
}

// Summary is the layer names joined by '/', e.g. "Ether/IPv4/UDP/Raw".
func (e *Expr) Summary() string {
	names := make([]string, len(e.Layers))
	for i, l := range e.Layers {
		names[i] = l.Def.Name
	}
	return strings.Join(names, "/")
}

// Error is a malformed expression or a packet that cannot be built. Col is
// the 1-based column in Expr (counted in runes) where the problem is, so a
// caller can draw a caret under it; 0 when no column applies.
type Error struct {
	Expr string
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("column %d: %s", e.Col, e.Msg)
	}
	return e.Msg
}

// Caret returns the expression and, under it, a caret at Col: two lines
// for a terminal, empty when there is no column.
func (e *Error) Caret() string {
	if e.Col <= 0 || e.Expr == "" {
		return ""
	}
	return e.Expr + "\n" + strings.Repeat(" ", e.Col-1) + "^"
}
