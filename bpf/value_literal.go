// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The syntax of one typed literal, before any type is known:
//
//	value  = struct | list | string | atom
//	struct = "{" [ name (":" | "=") value { "," name (":" | "=") value } [","] ] "}"
//	list   = "[" [ value { "," value } [","] ] "]"
//	string = '"' chars '"' | "'" chars "'"     (escapes \\ \" \' \n \t \r \0 \xHH)
//	atom   = characters up to a blank, ",", "]" or "}"  (42, -1, 0x2a, 10.0.0.1, fe80::1, RED)
//
// An atom may hold ':' so that IPv6 addresses need no quotes; a field name
// ends at its first ':' or '=' since names are C identifiers.

// litKind says which of the forms above a literal has.
type litKind int

const (
	litAtom litKind = iota
	litString
	litStruct
	litList
)

// lit is one parsed literal.
type lit struct {
	kind   litKind
	text   string     // atom as typed; string with escapes decoded
	raw    string     // the literal as typed, for messages
	fields []litField // struct
	elems  []*lit     // list
}

// litField is one "name: value" of a struct literal.
type litField struct {
	name string
	val  *lit
}

// parseLiteral reads src, which must be exactly one literal.
func parseLiteral(src string) (*lit, error) {
	s := &litScanner{src: src}
	l, err := s.value(0)
	if err != nil {
		return nil, err
	}
	s.blanks()
	if s.pos < len(s.src) {
		return nil, s.errorf("unexpected %s after the literal; quote text with blanks and put several fields in {...}", s.show())
	}
	return l, nil
}

type litScanner struct {
	src string
	pos int
}

func (s *litScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("column %d of %s: %s", s.pos+1, shorten(s.src), fmt.Sprintf(format, args...))
}

// show names the character at the scanner's position for messages.
func (s *litScanner) show() string {
	if s.pos >= len(s.src) {
		return "end"
	}
	r, _ := utf8.DecodeRuneInString(s.src[s.pos:])
	return fmt.Sprintf("%q", r)
}

func (s *litScanner) blanks() {
	for s.pos < len(s.src) && isBlank(s.src[s.pos]) {
		s.pos++
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (s *litScanner) value(depth int) (*lit, error) {
	if depth > maxDepth {
		return nil, s.errorf("literal nests deeper than %d levels", maxDepth)
	}
	s.blanks()
	start := s.pos
	if s.pos >= len(s.src) {
		return nil, s.errorf("expected a value, found the end")
	}
	var (
		l   *lit
		err error
	)
	switch c := s.src[s.pos]; c {
	case '{':
		l, err = s.structure(depth)
	case '[':
		l, err = s.list(depth)
	case '"', '\'':
		l, err = s.str(c)
	case ',', ']', '}', '=':
		return nil, s.errorf("expected a value, found %s", s.show())
	default:
		l = s.atom()
	}
	if err != nil {
		return nil, err
	}
	l.raw = s.src[start:s.pos]
	return l, nil
}

func (s *litScanner) atom() *lit {
	start := s.pos
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if isBlank(c) || c == ',' || c == ']' || c == '}' || c == '{' || c == '[' || c == '"' || c == '\'' {
			break
		}
		s.pos++
	}
	return &lit{kind: litAtom, text: s.src[start:s.pos]}
}

func (s *litScanner) structure(depth int) (*lit, error) {
	l := &lit{kind: litStruct}
	s.pos++ // {
	for {
		s.blanks()
		if s.pos < len(s.src) && s.src[s.pos] == '}' {
			s.pos++
			return l, nil
		}
		name := s.ident()
		if name == "" {
			return nil, s.errorf("expected a field name or '}', found %s", s.show())
		}
		s.blanks()
		if s.pos >= len(s.src) || (s.src[s.pos] != ':' && s.src[s.pos] != '=') {
			return nil, s.errorf("expected ':' after field name %s, found %s", name, s.show())
		}
		s.pos++
		v, err := s.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l.fields = append(l.fields, litField{name: name, val: v})
		if done, err := s.separator('}'); err != nil || done {
			return l, err
		}
	}
}

func (s *litScanner) list(depth int) (*lit, error) {
	l := &lit{kind: litList}
	s.pos++ // [
	for {
		s.blanks()
		if s.pos < len(s.src) && s.src[s.pos] == ']' {
			s.pos++
			return l, nil
		}
		v, err := s.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l.elems = append(l.elems, v)
		if done, err := s.separator(']'); err != nil || done {
			return l, err
		}
	}
}

// separator reads the ',' between items or the closing bracket.
func (s *litScanner) separator(closing byte) (done bool, err error) {
	s.blanks()
	if s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ',':
			s.pos++
			return false, nil
		case closing:
			s.pos++
			return true, nil
		}
	}
	return false, s.errorf("expected ',' or '%c', found %s (quote text with blanks)", closing, s.show())
}

func (s *litScanner) ident() string {
	start := s.pos
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || s.pos > start && '0' <= c && c <= '9' {
			s.pos++
			continue
		}
		break
	}
	return s.src[start:s.pos]
}

// str reads a quoted string and decodes its escapes.
func (s *litScanner) str(quote byte) (*lit, error) {
	open := s.pos
	s.pos++
	var sb strings.Builder
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == quote:
			s.pos++
			return &lit{kind: litString, text: sb.String()}, nil
		case c == '\\':
			b, n, err := unescape(s.src[s.pos:])
			if err != nil {
				return nil, s.errorf("%s", err)
			}
			sb.WriteByte(b)
			s.pos += n
		default:
			sb.WriteByte(c)
			s.pos++
		}
	}
	s.pos = open
	return nil, s.errorf("unterminated %c quote; close it with %c", quote, quote)
}

// unescape decodes the escape at the start of s (which begins with '\'),
// returning the byte and how many characters it took.
func unescape(s string) (byte, int, error) {
	if len(s) < 2 {
		return 0, 0, fmt.Errorf(`a lone \ ends the text; write \\ for a backslash`)
	}
	switch s[1] {
	case '\\', '"', '\'':
		return s[1], 2, nil
	case 'n':
		return '\n', 2, nil
	case 't':
		return '\t', 2, nil
	case 'r':
		return '\r', 2, nil
	case '0':
		return 0, 2, nil
	case 'x':
		if len(s) >= 4 {
			hi, ok1 := hexDigit(s[2])
			lo, ok2 := hexDigit(s[3])
			if ok1 && ok2 {
				return hi<<4 | lo, 4, nil
			}
		}
		return 0, 0, fmt.Errorf(`\x needs two hex digits, as in \x00`)
	}
	r, _ := utf8.DecodeRuneInString(s[1:])
	esc := `\` + string(r)
	if !strconv.IsPrint(r) {
		esc = fmt.Sprintf(`\ followed by %U`, r)
	}
	return 0, 0, fmt.Errorf(`unknown escape %s; write \\ for a backslash (escapes: \\ \" \' \n \t \r \0 \xHH)`, esc)
}

// unescapeText decodes the escapes of text typed without quotes.
func unescapeText(text string) (string, error) {
	if !strings.Contains(text, `\`) {
		return text, nil
	}
	var sb strings.Builder
	for i := 0; i < len(text); {
		if text[i] != '\\' {
			sb.WriteByte(text[i])
			i++
			continue
		}
		b, n, err := unescape(text[i:])
		if err != nil {
			return "", err
		}
		sb.WriteByte(b)
		i += n
	}
	return sb.String(), nil
}

// shorten shows a literal in a message, cut when long, quoted only when
// it holds control characters.
func shorten(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
