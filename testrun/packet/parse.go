// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads a layer expression:
//
//	expr  = layer { "/" layer }
//	layer = NAME [ "(" [ arg { "," arg } [ "," ] ] ")" ]
//	arg   = FIELD "=" value | value          (a bare value only first, for the layer's Positional field)
//	value = WORD | STRING | "*" | "[" [ item { "," item } ] "]" | "(" [ item { "," item } ] ")"
//	item  = NAME "=" value | value
//
// A WORD is a run of characters other than blanks and ( ) [ ] , = / " ':
// 64, 0x0800, 10.0.0.1, fe80::1, 02:00:00:00:00:01, S|A, echo-request.
// STRING is quoted with " or ', with escapes \\ \" \' \n \r \t \0 \xHH.
// Blanks are allowed between any two tokens. Layer and field names are
// matched without regard to case. Each value is checked against its field
// here, so errors point at the column of the mistake.
func Parse(text string) (*Expr, error) {
	return parseWith(text, nil)
}

// parseWith is Parse where the expression may start with $NAME (vars
// resolves it to the expression a packet was kept from): its layers come
// first, then the layers written after it, "$frame/Raw("ping")".
func parseWith(text string, vars func(name string) (*Expr, error)) (*Expr, error) {
	toks, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &parser{text: text, toks: toks, vars: vars}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	return e, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokString
	tokPunct
)

type token struct {
	kind tokKind
	text string // the word, the string's contents, or the punctuation
	col  int
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "the end"
	case tokString:
		return "the string " + Quote(t.text)
	case tokPunct:
		return "'" + t.text + "'"
	}
	return strconv.Quote(t.text)
}

func (t token) is(punct string) bool { return t.kind == tokPunct && t.text == punct }

const punctuation = "()[],=/"

// lex splits text into tokens; columns count runes from 1.
func lex(text string) ([]token, error) {
	rs := []rune(text)
	var toks []token
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			i++
		case strings.ContainsRune(punctuation, r):
			toks = append(toks, token{tokPunct, string(r), i + 1})
			i++
		case r == '"' || r == '\'':
			s, end, err := lexString(rs, i)
			if err != nil {
				return nil, &Error{Expr: text, Col: err.col, Msg: err.msg}
			}
			toks = append(toks, token{tokString, s, i + 1})
			i = end
		default:
			start := i
			for i < len(rs) && !strings.ContainsRune(punctuation+" \t\n\r\"'", rs[i]) {
				i++
			}
			toks = append(toks, token{tokWord, string(rs[start:i]), start + 1})
		}
	}
	return append(toks, token{tokEOF, "", len(rs) + 1}), nil
}

type lexError struct {
	col int
	msg string
}

// lexString reads the quoted string starting at rs[start] and returns its
// contents and the index after the closing quote.
func lexString(rs []rune, start int) (string, int, *lexError) {
	q := rs[start]
	var b strings.Builder
	for i := start + 1; i < len(rs); i++ {
		r := rs[i]
		if r == q {
			return b.String(), i + 1, nil
		}
		if r != '\\' {
			b.WriteRune(r)
			continue
		}
		if i+1 >= len(rs) {
			break
		}
		i++
		switch rs[i] {
		case '\\', '"', '\'':
			b.WriteRune(rs[i])
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		case 'x':
			if i+2 >= len(rs) {
				return "", 0, &lexError{i, `\x needs two hex digits, as in \x0a`}
			}
			n, err := strconv.ParseUint(string(rs[i+1:i+3]), 16, 8)
			if err != nil {
				return "", 0, &lexError{i, `\x needs two hex digits, as in \x0a`}
			}
			b.WriteByte(byte(n))
			i += 2
		default:
			return "", 0, &lexError{i, fmt.Sprintf(`unknown escape \%c; use \\ \" \' \n \r \t \0 or \xHH`, rs[i])}
		}
	}
	return "", 0, &lexError{start + 1, fmt.Sprintf("unterminated string; close it with %c", q)}
}

type parser struct {
	text string
	toks []token
	pos  int
	vars func(name string) (*Expr, error)
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) peekAt(n int) token {
	if p.pos+n < len(p.toks) {
		return p.toks[p.pos+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) errorf(col int, format string, args ...any) error {
	return &Error{Expr: p.text, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) expr() (*Expr, error) {
	e := &Expr{Text: p.text}
	if p.peek().kind == tokEOF {
		return nil, p.errorf(1, "empty packet; write layers such as Ether()/IPv4()/UDP()/Raw(\"ping\")")
	}
	for first := true; ; first = false {
		if t := p.peek(); first && p.vars != nil && t.kind == tokWord && strings.HasPrefix(t.text, "$") {
			p.next()
			kept, err := p.vars(t.text[1:])
			if err != nil {
				return nil, p.errorf(t.col, "%v", err)
			}
			for _, l := range kept.Layers {
				e.Layers = append(e.Layers, relocate(l, t.col))
			}
		} else {
			l, err := p.layer()
			if err != nil {
				return nil, err
			}
			e.Layers = append(e.Layers, l)
		}
		t := p.next()
		switch {
		case t.kind == tokEOF:
			return e, e.checkOrder()
		case t.is("/"):
			if p.peek().kind == tokEOF {
				return nil, p.errorf(p.peek().col, "expected a layer after '/'")
			}
		default:
			return nil, p.errorf(t.col, "expected '/' between layers or the end, found %s", t.describe())
		}
	}
}

// relocate is a copy of l, from another expression, whose columns all
// point at col (where $NAME stands), so that an error about it points
// there.
func relocate(l *LayerExpr, col int) *LayerExpr {
	c := &LayerExpr{Def: l.Def, Col: col, Args: make([]*Arg, len(l.Args))}
	for i, a := range l.Args {
		ac := *a
		ac.Col, ac.Value.Col = col, col
		c.Args[i] = &ac
	}
	return c
}

// checkOrder refuses a layer after a trailer such as Padding.
func (e *Expr) checkOrder() error {
	for i := 1; i < len(e.Layers); i++ {
		if prev := e.Layers[i-1]; prev.Def.Trailer && !e.Layers[i].Def.Trailer {
			return &Error{Expr: e.Text, Col: e.Layers[i].Col, Msg: fmt.Sprintf("%s must come after every other layer: it is appended to the finished frame", prev.Def.Name)}
		}
	}
	return nil
}

func (p *parser) layer() (*LayerExpr, error) {
	t := p.next()
	if t.kind != tokWord || !isIdent(t.text) {
		return nil, p.errorf(t.col, "expected a layer name such as Ether, IPv4 or UDP, found %s", t.describe())
	}
	def := Lookup(t.text)
	if def == nil {
		if s := suggest(t.text, layerNames()); s != "" {
			return nil, p.errorf(t.col, "unknown layer %q; did you mean %s?", t.text, s)
		}
		return nil, p.errorf(t.col, "unknown layer %q; layers are %s", t.text, strings.Join(layerNames(), ", "))
	}
	l := &LayerExpr{Def: def, Col: t.col}
	if !p.peek().is("(") {
		return l, nil
	}
	p.next()
	for first := true; ; first = false {
		if p.peek().is(")") {
			p.next()
			return l, nil
		}
		if err := p.layerArg(l, first); err != nil {
			return nil, err
		}
		switch t := p.next(); {
		case t.is(")"):
			return l, nil
		case t.is(","):
		case t.kind == tokEOF:
			return nil, p.errorf(t.col, "expected ',' or ')' to close %s( opened at column %d", def.Name, l.Col)
		default:
			return nil, p.errorf(t.col, "expected ',' or ')' after %s, found %s", l.Args[len(l.Args)-1], t.describe())
		}
	}
}

// layerArg reads one field=value (or the positional value) of l.
func (p *parser) layerArg(l *LayerExpr, first bool) error {
	def := l.Def
	t := p.peek()
	named := t.kind == tokWord && isIdent(t.text) && p.peekAt(1).is("=")
	var f *FieldDef
	col := t.col
	switch {
	case named:
		p.next()
		p.next()
		if f = def.Field(t.text); f == nil {
			return p.unknownField(def, t)
		}
	case first && def.Positional != "":
		f = def.Field(def.Positional)
	case t.kind == tokWord && isIdent(t.text) && def.Field(t.text) != nil:
		after := p.peekAt(1)
		return p.errorf(after.col, "expected '=' after field name %q, found %s", t.text, after.describe())
	case t.kind == tokWord && isIdent(t.text):
		return p.unknownField(def, t)
	case t.kind == tokEOF:
		return p.errorf(t.col, "expected ')' to close %s( opened at column %d", def.Name, l.Col)
	default:
		return p.errorf(t.col, "expected field=value in %s(...), found %s; %s fields: %s", def.Name, t.describe(), def.Name, fieldNames(def))
	}
	stored := f
	if f.target != nil {
		stored = f.target
	}
	if l.Arg(stored.Name) != nil {
		return p.errorf(col, "%s is given twice", stored.qualified())
	}
	var v Value
	var err error
	if !named && def.Variadic && !t.is("[") {
		v, err = p.bareValues(f.qualified())
	} else {
		v, err = p.value(f.qualified())
	}
	if err != nil {
		return err
	}
	arg := &Arg{Name: stored.Name, Col: col, Value: v}
	if v.Kind != ValueAny {
		if arg.Val, err = f.parse(v); err != nil {
			return p.errorf(v.Col, "%s: %v", f.qualified(), err)
		}
	}
	l.Args = append(l.Args, arg)
	return nil
}

func (p *parser) unknownField(def *LayerDef, t token) error {
	if s := suggest(t.text, fieldNameList(def)); s != "" {
		return p.errorf(t.col, "%s has no field %q; did you mean %s?", def.Name, t.text, s)
	}
	return p.errorf(t.col, "%s has no field %q; its fields are %s", def.Name, t.text, fieldNames(def))
}

func fieldNameList(def *LayerDef) []string {
	names := make([]string, len(def.Fields))
	for i, f := range def.Fields {
		names[i] = f.Name
	}
	return names
}

func fieldNames(def *LayerDef) string {
	if len(def.Fields) == 0 {
		return "(none)"
	}
	return strings.Join(fieldNameList(def), ", ")
}

// value reads one value; what names the field for "expected a value
// after" errors.
func (p *parser) value(what string) (Value, error) {
	t := p.next()
	switch {
	case t.kind == tokWord && t.text == "*":
		return Value{Kind: ValueAny, Text: "*", Col: t.col}, nil
	case t.kind == tokWord:
		return Value{Kind: ValueWord, Text: t.text, Col: t.col}, nil
	case t.kind == tokString:
		return Value{Kind: ValueString, Text: t.text, Col: t.col}, nil
	case t.is("["):
		items, err := p.items("]", t.col)
		return Value{Kind: ValueList, Items: items, Col: t.col}, err
	case t.is("("):
		items, err := p.items(")", t.col)
		return Value{Kind: ValueTuple, Items: items, Col: t.col}, err
	}
	return Value{}, p.errorf(t.col, "expected a value for %s, found %s", what, t.describe())
}

// bareValues reads the bare values of a Variadic layer's first position,
// up to its ')' or its first field=value, as one list.
func (p *parser) bareValues(what string) (Value, error) {
	list := Value{Kind: ValueList, Col: p.peek().col}
	for {
		t := p.peek()
		v, err := p.value(what)
		if err != nil {
			return Value{}, err
		}
		list.Items = append(list.Items, &Arg{Col: t.col, Value: v})
		if !p.peek().is(",") {
			return list, nil
		}
		next := p.peekAt(1)
		if next.is(")") || next.kind == tokWord && isIdent(next.text) && p.peekAt(2).is("=") {
			return list, nil
		}
		p.next()
	}
}

// items reads the elements of a list or tuple up to close.
func (p *parser) items(close string, open int) ([]*Arg, error) {
	var items []*Arg
	for {
		if p.peek().is(close) {
			p.next()
			return items, nil
		}
		t := p.peek()
		item := &Arg{Col: t.col}
		what := "a list item"
		if t.kind == tokWord && isIdent(t.text) && p.peekAt(1).is("=") {
			p.next()
			p.next()
			item.Name = t.text
			what = t.text
		}
		v, err := p.value(what)
		if err != nil {
			return nil, err
		}
		item.Value = v
		items = append(items, item)
		switch t := p.next(); {
		case t.is(close):
			return items, nil
		case t.is(","):
		case t.kind == tokEOF:
			return nil, p.errorf(t.col, "expected ',' or '%s' to close the list opened at column %d", close, open)
		default:
			return nil, p.errorf(t.col, "expected ',' or '%s' after %s, found %s", close, item, t.describe())
		}
	}
}

// parseExprValue reads text as one value (a field's Default).
func parseExprValue(text string) (Value, error) {
	toks, err := lex(text)
	if err != nil {
		return Value{}, err
	}
	p := &parser{text: text, toks: toks}
	v, err := p.value("the value")
	if err != nil {
		return Value{}, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return Value{}, p.errorf(t.col, "unexpected %s after the value", t.describe())
	}
	return v, nil
}
