// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun/emu"
)

// dval is an evaluated expression: a value, and where it lives when it
// lives in memory (an lvalue), with its BTF type when known.
type dval struct {
	v      uint64
	lvalue bool
	addr   uint64
	size   int
	typ    btf.Type
	signed bool
	// reg is the register it is (rN, or a variable held in one); -1 if
	// none.
	reg int
	// ptrTo is the pointee's type of a register that points into typed
	// memory (a map value, the ctx).
	ptrTo btf.Type
	// note qualifies the value (a variable optimized out here, read from
	// the register that holds it).
	note string
}

func regNumber(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != 'r' {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n < 0 || n > 10 {
		return 0, false
	}
	return n, true
}

var scalarTypes = map[string]struct {
	size   int
	signed bool
}{
	"u8": {1, false}, "u16": {2, false}, "u32": {4, false}, "u64": {8, false},
	"s8": {1, true}, "s16": {2, true}, "s32": {4, true}, "s64": {8, true},
	"__u8": {1, false}, "__u16": {2, false}, "__u32": {4, false}, "__u64": {8, false},
	"__s8": {1, true}, "__s16": {2, true}, "__s32": {4, true}, "__s64": {8, true},
	"char": {1, true}, "int": {4, true}, "long": {8, true},
}

// eval evaluates EXPR: rN, a number, *(TYPE *)(BASE [+|- OFF]), a C
// variable, followed by ->field and .field through BTF.
func (d *debugSession) eval(expr string) (dval, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return dval{}, Usagef("empty expression")
	}
	// *(TYPE *)(BASE)
	if strings.HasPrefix(expr, "*(") {
		close := strings.Index(expr, ")")
		if close < 0 {
			return dval{}, Usagef("%q: want *(TYPE *)(rN + OFF)", expr)
		}
		tname := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(expr[2:close]), "*"))
		st, ok := scalarTypes[tname]
		if !ok {
			return dval{}, Usagef("%q: TYPE is one of u8, u16, u32, u64, s8, s16, s32, s64", tname)
		}
		rest := strings.TrimSpace(expr[close+1:])
		if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
			rest = rest[1 : len(rest)-1]
		}
		base, err := d.evalSum(rest)
		if err != nil {
			return dval{}, err
		}
		return d.load(base, st.size, st.signed, nil)
	}
	// *VAR: what a pointer points to.
	if strings.HasPrefix(expr, "*") {
		p, err := d.eval(expr[1:])
		if err != nil {
			return dval{}, err
		}
		target := p.ptrTo
		if pt, ok := btf.UnderlyingType(p.typ).(*btf.Pointer); ok {
			target = pt.Target
		}
		if target == nil {
			return dval{}, fmt.Errorf("%s: the type it points to is not known; write *(TYPE *)(%s)", expr, strings.TrimSpace(expr[1:]))
		}
		size, err := btf.Sizeof(target)
		if err != nil {
			return dval{}, fmt.Errorf("%s: %v", expr, err)
		}
		return d.load(p.v, size, false, target)
	}
	// A sum: rN + 4, r10 - 8.
	if topLevel(expr, "+") || topLevel(strings.TrimPrefix(expr, "-"), " - ") {
		v, err := d.evalSum(expr)
		return dval{v: v, reg: -1}, err
	}
	// The head, then ->field and .field.
	head, path := splitPath(expr)
	v, err := d.evalAtom(head)
	if err != nil {
		return dval{}, err
	}
	for _, step := range path {
		switch {
		case step.name == "[":
			return dval{}, Usagef("%q: a [ without its ]", expr)
		case step.index != "":
			v, err = d.index(v, step.index)
		case step.name == "" && step.index == "" && !step.arrow:
			return dval{}, Usagef("%q: a field name is missing", expr)
		default:
			v, err = d.field(v, step.name, step.arrow)
		}
		if err != nil {
			return dval{}, err
		}
	}
	return v, nil
}

// evalSum is A [+|- B ...] of atoms, as a number.
func (d *debugSession) evalSum(s string) (uint64, error) {
	// Split on + and on a - that is not ->.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '-' && (i+1 >= len(s) || s[i+1] != '>') {
			b.WriteString("+-")
			continue
		}
		b.WriteByte(s[i])
	}
	s = b.String()
	var parts []string
	depth, from := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case '+':
			if depth == 0 {
				parts = append(parts, s[from:i])
				from = i + 1
			}
		}
	}
	parts = append(parts, s[from:])
	var total uint64
	for i, part := range parts {
		part = strings.TrimSpace(part)
		if part == "" {
			if i == 0 {
				continue
			}
			return 0, Usagef("%q: a term is missing", s)
		}
		neg := strings.HasPrefix(part, "-")
		part = strings.TrimSpace(strings.TrimPrefix(part, "-"))
		v, err := d.eval(part)
		if err != nil {
			return 0, err
		}
		if neg {
			total -= v.v
		} else {
			total += v.v
		}
	}
	return total, nil
}

type pathStep struct {
	name  string
	arrow bool
	// index is the expression of an [INDEX] step ("" for a field).
	index string
}

// splitPath splits EXPR into its head and its ->field, .field and [INDEX]
// steps; brackets nest, and what is inside them is an EXPR of its own.
func splitPath(expr string) (string, []pathStep) {
	i := pathStart(expr)
	if i < 0 {
		return strings.TrimSpace(expr), nil
	}
	head, rest := expr[:i], expr[i:]
	var steps []pathStep
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "["):
			depth, j := 0, 0
			for j = 0; j < len(rest); j++ {
				if rest[j] == '[' {
					depth++
				} else if rest[j] == ']' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(rest) {
				return strings.TrimSpace(head), append(steps, pathStep{index: rest[1:], name: "["})
			}
			steps = append(steps, pathStep{index: strings.TrimSpace(rest[1:j])})
			rest = rest[j+1:]
			continue
		case strings.HasPrefix(rest, "->"):
			rest = rest[2:]
			j := pathStart(rest)
			if j < 0 {
				j = len(rest)
			}
			steps = append(steps, pathStep{name: strings.TrimSpace(rest[:j]), arrow: true})
			rest = rest[j:]
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			j := pathStart(rest)
			if j < 0 {
				j = len(rest)
			}
			steps = append(steps, pathStep{name: strings.TrimSpace(rest[:j])})
			rest = rest[j:]
		default:
			return strings.TrimSpace(head), append(steps, pathStep{name: strings.TrimSpace(rest)})
		}
	}
	return strings.TrimSpace(head), steps
}

// pathStart is where the first ->, . or [ of expr is, -1 if none.
func pathStart(expr string) int {
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '.', '[':
			return i
		case '-':
			if strings.HasPrefix(expr[i:], "->") {
				return i
			}
		}
	}
	return -1
}

// topLevel reports whether expr holds one of the strings outside
// brackets.
func topLevel(expr string, subs ...string) bool {
	depth := 0
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '[', '(':
			depth++
			continue
		case ']', ')':
			depth--
			continue
		}
		if depth != 0 {
			continue
		}
		for _, s := range subs {
			if strings.HasPrefix(expr[i:], s) {
				return true
			}
		}
	}
	return false
}

// index follows [i]: an element of an array in memory, or the i-th
// object a pointer points to.
func (d *debugSession) index(v dval, expr string) (dval, error) {
	iv, err := d.eval(expr)
	if err != nil {
		return dval{}, err
	}
	i := int64(iv.v)
	var elem btf.Type
	var base uint64
	switch t := btf.UnderlyingType(v.typ).(type) {
	case *btf.Array:
		if !v.lvalue {
			return dval{}, fmt.Errorf("[%s]: the array is not in memory", expr)
		}
		if i < 0 || uint64(i) >= uint64(t.Nelems) {
			return dval{}, fmt.Errorf("[%s]: index %d is out of bounds of %s (%d elements)", expr, i, bpf.TypeName(v.typ), t.Nelems)
		}
		elem, base = t.Type, v.addr
	case *btf.Pointer:
		elem, base = t.Target, v.v
	default:
		if v.typ == nil && v.ptrTo != nil {
			elem, base = v.ptrTo, v.v
			break
		}
		if v.typ == nil {
			return dval{}, fmt.Errorf("[%s]: the type of what is indexed is not known; write *(TYPE *)(ADDR + OFF)", expr)
		}
		return dval{}, fmt.Errorf("[%s]: %s is neither an array nor a pointer", expr, bpf.TypeName(v.typ))
	}
	size, err := btf.Sizeof(elem)
	if err != nil {
		return dval{}, fmt.Errorf("[%s]: %v", expr, err)
	}
	signed := false
	if in, ok := btf.UnderlyingType(elem).(*btf.Int); ok {
		signed = in.Encoding&btf.Signed != 0
	}
	return d.load(base+uint64(i*int64(size)), size, signed, elem)
}

func (d *debugSession) evalAtom(s string) (dval, error) {
	if r, ok := regNumber(s); ok {
		v := dval{v: d.s.Reg(r), reg: r}
		if p, ok := d.s.Describe(v.v); ok && p.Type != nil {
			v.ptrTo = p.Type
		}
		return v, nil
	}
	if n, err := strconv.ParseInt(s, 0, 64); err == nil {
		return dval{v: uint64(n), reg: -1}, nil
	}
	if n, err := strconv.ParseUint(s, 0, 64); err == nil {
		return dval{v: n, reg: -1}, nil
	}
	ctx := func() dval {
		v := dval{v: d.ctx, reg: -1}
		if p, ok := d.s.Describe(v.v); ok {
			v.ptrTo = p.Type
		}
		return v
	}
	vars, err := d.s.Locals(0)
	if err != nil {
		if s == "ctx" {
			return ctx(), nil
		}
		return dval{}, fmt.Errorf("%q is not a register (r0..r10) or a number, and C variables need DWARF: %v", s, err)
	}
	for _, v := range vars {
		if v.Name != s {
			continue
		}
		if s == "ctx" && (v.Kind == emu.VarOptimizedOut || v.Kind == emu.VarUnsupported) {
			return ctx(), nil
		}
		switch v.Kind {
		case emu.VarOptimizedOut:
			if v.HeldIn < 0 {
				return dval{}, fmt.Errorf("%s is optimized out here, and no register is known to hold its value", s)
			}
			return dval{v: v.Value, reg: v.HeldIn, typ: v.Type, size: v.Size, note: fmt.Sprintf("optimized out here; r%d holds its value (%s)", v.HeldIn, v.HeldWhy)}, nil
		case emu.VarRegister:
			return dval{v: v.Value, reg: v.Reg, typ: v.Type, size: v.Size}, nil
		case emu.VarComputed:
			return dval{v: v.Value, reg: -1, typ: v.Type, size: v.Size}, nil
		case emu.VarMemory:
			return d.load(v.Addr, v.Size, false, v.Type)
		default:
			return dval{}, fmt.Errorf("%s is %s here", s, v.Where)
		}
	}
	if s == "ctx" {
		return ctx(), nil
	}
	return dval{}, fmt.Errorf("no register, number or C variable in scope called %q (info locals lists the variables)", s)
}

// load reads size bytes at addr; a scalar's value is read too.
func (d *debugSession) load(addr uint64, size int, signed bool, t btf.Type) (dval, error) {
	v := dval{lvalue: true, addr: addr, size: size, typ: t, signed: signed, reg: -1}
	if size <= 8 && size > 0 {
		x, err := d.s.Load(addr, size)
		if err != nil {
			return dval{}, err
		}
		if signed {
			shift := 64 - 8*size
			x = uint64(int64(x<<shift) >> shift)
		}
		v.v = x
	} else if _, err := d.s.Read(addr, size); err != nil {
		return dval{}, err
	}
	return v, nil
}

// field follows ->name (through a pointer) or .name (in a struct held in
// memory).
func (d *debugSession) field(v dval, name string, arrow bool) (dval, error) {
	var st btf.Type
	var base uint64
	if arrow {
		switch t := btf.UnderlyingType(v.typ).(type) {
		case *btf.Pointer:
			st = t.Target
		default:
			st = v.ptrTo
		}
		base = v.v
		if st == nil {
			return dval{}, fmt.Errorf("->%s: the type this points to is not known (it points to %s)", name, d.pointerText(v.v))
		}
	} else {
		if !v.lvalue {
			return dval{}, fmt.Errorf(".%s: the value is not a struct in memory", name)
		}
		st, base = v.typ, v.addr
	}
	s, ok := btf.UnderlyingType(st).(*btf.Struct)
	if !ok {
		if u, uok := btf.UnderlyingType(st).(*btf.Union); uok {
			s = &btf.Struct{Name: u.Name, Size: u.Size, Members: u.Members}
		} else {
			return dval{}, fmt.Errorf("->%s: %s is not a struct", name, bpf.TypeName(st))
		}
	}
	for _, m := range s.Members {
		if m.Name != name {
			continue
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			return dval{}, fmt.Errorf("%s: %v", name, err)
		}
		signed := false
		if in, ok := btf.UnderlyingType(m.Type).(*btf.Int); ok {
			signed = in.Encoding&btf.Signed != 0
		}
		return d.load(base+uint64(m.Offset.Bytes()), size, signed, m.Type)
	}
	names := make([]string, len(s.Members))
	for i, m := range s.Members {
		names[i] = m.Name
	}
	return dval{}, fmt.Errorf("%s has no field %q; its fields: %s", bpf.TypeName(st), name, strings.Join(names, ", "))
}

func (d *debugSession) pointerText(v uint64) string {
	if p, ok := d.s.Describe(v); ok {
		return p.Text
	}
	return fmt.Sprintf("%#x", v)
}

// valueText shows a value: a struct with its fields, a scalar in decimal
// and hex, a pointer by where it points.
func (d *debugSession) valueText(v dval) string {
	if v.lvalue && v.typ != nil {
		if _, ok := btf.UnderlyingType(v.typ).(*btf.Pointer); !ok && (v.size > 8 || isComposite(v.typ)) {
			if data, err := d.s.Read(v.addr, v.size); err == nil {
				text, _ := bpf.FormatValue(data, v.typ)
				return text
			}
		}
	}
	if p, ok := d.s.Describe(v.v); ok {
		return fmt.Sprintf("%s (%#x)", p.Text, v.v)
	}
	if v.signed || v.reg >= 0 {
		return fmt.Sprintf("%d (%#x)", int64(v.v), v.v)
	}
	return fmt.Sprintf("%d (%#x)", v.v, v.v)
}

func isComposite(t btf.Type) bool {
	switch btf.UnderlyingType(t).(type) {
	case *btf.Struct, *btf.Union, *btf.Array:
		return true
	}
	return false
}

// varText is a C variable's value for info locals.
func (d *debugSession) varText(v emu.Var) string {
	switch v.Kind {
	case emu.VarOptimizedOut:
		if v.HeldIn >= 0 {
			return fmt.Sprintf("%s <optimized out; held in r%d>", d.scalarText(v, v.Value), v.HeldIn)
		}
		return "<optimized out>"
	case emu.VarUnsupported:
		return "<location not read>"
	}
	data, err := d.s.VarValue(v)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	if v.Type != nil && isComposite(v.Type) {
		text, _ := bpf.FormatValue(data, v.Type)
		return text
	}
	var x uint64
	var buf [8]byte
	copy(buf[:], data)
	x = binary.LittleEndian.Uint64(buf[:])
	if p, ok := d.s.Describe(x); ok && len(data) == 8 {
		return p.Text
	}
	if len(data) < 8 && len(data) > 0 {
		shift := 64 - 8*len(data)
		if in, ok := btf.UnderlyingType(v.Type).(*btf.Int); ok && in.Encoding&btf.Signed != 0 {
			return strconv.FormatInt(int64(x<<shift)>>shift, 10)
		}
	}
	return strconv.FormatUint(x, 10)
}

// condition compiles "EXPR OP EXPR" for break ... if.
func (d *debugSession) condition(text string) (func(*emu.Session) bool, error) {
	for _, op := range []string{"==", "!=", "<=", ">=", "<", ">"} {
		at := -1
		for i := 0; i+len(op) <= len(text); i++ {
			if text[i:i+len(op)] == op && !(op[0] == '>' && i > 0 && text[i-1] == '-') {
				at = i
				break
			}
		}
		if at < 0 {
			continue
		}
		l, r := text[:at], text[at+len(op):]
		// Check both sides evaluate now (a variable out of scope here is
		// fine later; only syntax is checked).
		if strings.TrimSpace(l) == "" || strings.TrimSpace(r) == "" {
			return nil, Usagef("condition %q: want EXPR %s EXPR", text, op)
		}
		return func(*emu.Session) bool {
			a, err1 := d.eval(l)
			b, err2 := d.eval(r)
			if err1 != nil || err2 != nil {
				return false
			}
			x, y := int64(a.v), int64(b.v)
			switch op {
			case "==":
				return a.v == b.v
			case "!=":
				return a.v != b.v
			case "<=":
				return x <= y
			case ">=":
				return x >= y
			case "<":
				return x < y
			default:
				return x > y
			}
		}, nil
	}
	return nil, Usagef("condition %q: want EXPR OP EXPR with OP one of == != < <= > >=", text)
}

// scalarText is a register-sized value of a variable, as varText shows one.
func (d *debugSession) scalarText(v emu.Var, x uint64) string {
	if p, ok := d.s.Describe(x); ok && v.Size == 8 {
		return p.Text
	}
	if v.Size > 0 && v.Size < 8 {
		shift := 64 - 8*v.Size
		if in, ok := btf.UnderlyingType(v.Type).(*btf.Int); ok && in.Encoding&btf.Signed != 0 {
			return strconv.FormatInt(int64(x<<shift)>>shift, 10)
		}
		x = x << shift >> shift
	}
	return strconv.FormatUint(x, 10)
}
