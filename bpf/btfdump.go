// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// CTypeName is t as C spells it in a declaration without a name:
// "struct flow_key", "__u32", "char [16]", "int (*)(void *)".
func CTypeName(t btf.Type) string {
	return cDecl(t, "", 0)
}

// CDecl is a C declaration of name with type t, e.g. "char comment[16]"
// or "int (*fn)(void *)". Anonymous structs, unions and enums are written
// out in full.
func CDecl(t btf.Type, name string) string {
	return cDecl(t, name, 0)
}

// CDefinitions writes C definitions of the named structs, unions, enums
// and typedefs that roots need, each after the ones it uses by value, the
// way a header would have to declare them. Types reached only through a
// pointer are not written out: C lets a pointer name an incomplete type
// (which also breaks the cycles of self-referencing structs).
func CDefinitions(roots ...btf.Type) string {
	w := newCWriter()
	for _, t := range roots {
		w.need(t)
	}
	return w.out.String()
}

// CSpec writes every type of a BTF object as C: the named types (in
// dependency order), then function prototypes, then global variables by
// section, as "bpftool btf dump ... format c" would show them.
func CSpec(spec *btf.Spec) (string, error) {
	w := newCWriter()
	var funcs []*btf.Func
	var secs []*btf.Datasec
	for t, err := range spec.All() {
		if err != nil {
			return "", err
		}
		switch t := t.(type) {
		case *btf.Func:
			funcs = append(funcs, t)
		case *btf.Datasec:
			secs = append(secs, t)
		case *btf.Struct, *btf.Union, *btf.Enum, *btf.Typedef, *btf.Fwd:
			if t.TypeName() != "" {
				w.need(t)
			}
		}
	}
	for _, f := range funcs {
		if proto, ok := f.Type.(*btf.FuncProto); ok {
			w.needByRef(proto)
		}
	}
	if len(funcs) > 0 {
		w.out.WriteString("\n")
	}
	for _, f := range funcs {
		prefix := ""
		if f.Linkage == btf.StaticFunc {
			prefix = "static "
		} else if f.Linkage == btf.ExternFunc {
			prefix = "extern "
		}
		fmt.Fprintf(&w.out, "%s%s;\n", prefix, cDecl(f.Type, f.Name, 0))
	}
	for _, sec := range secs {
		var vars []string
		for _, vs := range sec.Vars {
			if v, ok := vs.Type.(*btf.Var); ok {
				w.need(v.Type)
				vars = append(vars, cDecl(v.Type, v.Name, 0)+fmt.Sprintf(" SEC(%q);", sec.Name))
			}
		}
		if len(vars) > 0 {
			w.out.WriteString("\n" + strings.Join(vars, "\n") + "\n")
		}
	}
	return w.out.String(), nil
}

// cWriter emits definitions once each, dependencies first.
type cWriter struct {
	out strings.Builder
	// lastShort is true after a one-line declaration: runs of typedefs
	// stay together, blocks get a blank line around them.
	lastShort bool
	done      map[btf.Type]bool
	visiting  map[btf.Type]bool
	fwd       map[btf.Type]bool
}

func newCWriter() *cWriter {
	return &cWriter{done: map[btf.Type]bool{}, visiting: map[btf.Type]bool{}}
}

// write adds one declaration; short ones (one line) group together.
func (w *cWriter) write(decl string, short bool) {
	if w.out.Len() > 0 && !(short && w.lastShort) {
		w.out.WriteString("\n")
	}
	w.out.WriteString(decl + "\n")
	w.lastShort = short
}

// need makes sure t, used by value, is fully defined before what uses it.
func (w *cWriter) need(t btf.Type) {
	switch t := t.(type) {
	case *btf.Typedef:
		if w.done[t] || w.visiting[t] {
			return
		}
		w.visiting[t] = true
		w.need(t.Type)
		delete(w.visiting, t)
		w.done[t] = true
		w.write("typedef "+cDecl(t.Type, t.Name, 0)+";", true)
	case *btf.Struct:
		w.needComposite(t, t.Name, t.Members)
	case *btf.Union:
		w.needComposite(t, t.Name, t.Members)
	case *btf.Enum:
		if t.Name == "" || w.done[t] {
			return
		}
		w.done[t] = true
		w.write(cDecl(t, "", 0)+" "+enumBody(t, 0)+";", false)
	case *btf.Fwd:
		if w.done[t] {
			return
		}
		w.done[t] = true
		w.write(fmt.Sprintf("%s %s;", t.Kind, t.Name), true)
	case *btf.Array:
		w.need(t.Type)
	case *btf.Const:
		w.need(t.Type)
	case *btf.Volatile:
		w.need(t.Type)
	case *btf.Restrict:
		w.need(t.Type)
	case *btf.TypeTag:
		w.need(t.Type)
	case *btf.Pointer:
		w.needByRef(t.Target)
	case *btf.FuncProto:
		w.needByRef(t)
	}
}

// needByRef makes the names t uses known, for a pointer or a prototype:
// typedefs must be defined; structs and unions need no definition.
func (w *cWriter) needByRef(t btf.Type) {
	switch t := t.(type) {
	case *btf.Typedef:
		w.need(t)
	case *btf.Const:
		w.needByRef(t.Type)
	case *btf.Volatile:
		w.needByRef(t.Type)
	case *btf.Restrict:
		w.needByRef(t.Type)
	case *btf.TypeTag:
		w.needByRef(t.Type)
	case *btf.Pointer:
		w.needByRef(t.Target)
	case *btf.Array:
		w.needByRef(t.Type)
	case *btf.Enum:
		w.need(t)
	case *btf.FuncProto:
		w.needByRef(t.Return)
		for _, p := range t.Params {
			w.needByRef(p.Type)
		}
	case *btf.Struct:
		if t.Name == "" {
			w.need(t)
		}
	case *btf.Union:
		if t.Name == "" {
			w.need(t)
		}
	}
}

func (w *cWriter) needComposite(t btf.Type, name string, members []btf.Member) {
	if w.done[t] {
		return
	}
	if w.visiting[t] {
		// Only malformed BTF holds itself by value; do not loop on it.
		return
	}
	w.visiting[t] = true
	for _, m := range members {
		w.need(m.Type)
	}
	delete(w.visiting, t)
	if name == "" {
		return // written inline where it is used
	}
	w.done[t] = true
	w.write(cDecl(t, "", 0)+" "+compositeBody(members, 0)+";", false)
}

// cDecl writes a declarator the C way: the name sits inside the type,
// e.g. an array of pointers "char *x[4]" against a pointer to an array
// "char (*x)[4]".
func cDecl(t btf.Type, inner string, indent int) string {
	join := func(base string) string {
		if inner == "" {
			return base
		}
		return base + " " + inner
	}
	switch t := t.(type) {
	case nil, *btf.Void:
		return join("void")
	case *btf.Int:
		return join(t.Name)
	case *btf.Float:
		return join(t.Name)
	case *btf.Typedef:
		return join(t.Name)
	case *btf.Fwd:
		return join(t.Kind.String() + " " + t.Name)
	case *btf.Pointer:
		switch t.Target.(type) {
		case *btf.Array, *btf.FuncProto:
			return cDecl(t.Target, "(*"+inner+")", indent)
		}
		return cDecl(t.Target, "*"+inner, indent)
	case *btf.Array:
		return cDecl(t.Type, fmt.Sprintf("%s[%d]", inner, t.Nelems), indent)
	case *btf.FuncProto:
		params := make([]string, len(t.Params))
		for i, p := range t.Params {
			if _, void := p.Type.(*btf.Void); void && i == len(t.Params)-1 {
				params[i] = "..."
				continue
			}
			params[i] = cDecl(p.Type, p.Name, indent)
		}
		if len(params) == 0 {
			params = []string{"void"}
		}
		return cDecl(t.Return, inner+"("+strings.Join(params, ", ")+")", indent)
	case *btf.Const:
		return qualified("const", t.Type, inner, indent)
	case *btf.Volatile:
		return qualified("volatile", t.Type, inner, indent)
	case *btf.Restrict:
		return qualified("restrict", t.Type, inner, indent)
	case *btf.TypeTag:
		return cDecl(t.Type, inner, indent)
	case *btf.Struct:
		if t.Name != "" {
			return join("struct " + t.Name)
		}
		return join("struct " + compositeBody(t.Members, indent))
	case *btf.Union:
		if t.Name != "" {
			return join("union " + t.Name)
		}
		return join("union " + compositeBody(t.Members, indent))
	case *btf.Enum:
		if t.Name != "" {
			return join("enum " + t.Name)
		}
		return join("enum " + enumBody(t, indent))
	case *btf.Func:
		return cDecl(t.Type, t.Name, indent)
	case *btf.Var:
		return cDecl(t.Type, t.Name, indent)
	case *btf.Datasec:
		return join(fmt.Sprintf("/* section %s */", t.Name))
	}
	return join(fmt.Sprintf("/* %T */", t))
}

// qualified puts a qualifier where C wants it: after the '*' of a pointer
// ("char *const p"), before anything else ("const char c").
func qualified(q string, target btf.Type, inner string, indent int) string {
	if _, ptr := target.(*btf.Pointer); ptr {
		if inner == "" {
			return cDecl(target, q, indent)
		}
		return cDecl(target, q+" "+inner, indent)
	}
	return q + " " + cDecl(target, inner, indent)
}

func compositeBody(members []btf.Member, indent int) string {
	var b strings.Builder
	b.WriteString("{\n")
	tabs := strings.Repeat("\t", indent+1)
	for _, m := range members {
		b.WriteString(tabs + cDecl(m.Type, m.Name, indent+1))
		if m.BitfieldSize > 0 {
			fmt.Fprintf(&b, " : %d", m.BitfieldSize)
		}
		b.WriteString(";\n")
	}
	b.WriteString(strings.Repeat("\t", indent) + "}")
	return b.String()
}

func enumBody(e *btf.Enum, indent int) string {
	var b strings.Builder
	b.WriteString("{\n")
	tabs := strings.Repeat("\t", indent+1)
	for _, v := range e.Values {
		if e.Signed {
			fmt.Fprintf(&b, "%s%s = %d,\n", tabs, v.Name, int64(v.Value))
		} else {
			fmt.Fprintf(&b, "%s%s = %d,\n", tabs, v.Name, v.Value)
		}
	}
	b.WriteString(strings.Repeat("\t", indent) + "}")
	return b.String()
}
