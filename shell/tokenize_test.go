// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		line string
		want [][]string
	}{
		{"map show id 3", [][]string{{"map", "show", "id", "3"}}},
		{"  a \t b\r\n", [][]string{{"a", "b"}}},
		{"", nil},
		{"   ", nil},
		{";;", nil},
		{"a; b c ;; d;", [][]string{{"a"}, {"b", "c"}, {"d"}}},
		// Quotes: removed, no escapes, blanks and specials kept.
		{`echo "a b" 'c d'`, [][]string{{"echo", "a b", "c d"}}},
		{`x "" y ''`, [][]string{{"x", "", "y", ""}}},
		{`a"b c"d`, [][]string{{"ab cd"}}},
		{`say "it's" 'say "hi"'`, [][]string{{"say", "it's", `say "hi"`}}},
		{`a "x;y" 'p#q' "{"`, [][]string{{"a", "x;y", "p#q", "{"}}},
		{`"a\" b`, [][]string{{`a\`, "b"}}},
		// Comments.
		{"a b # c d", [][]string{{"a", "b"}}},
		{"# only a comment", nil},
		{"a#b c", [][]string{{"a"}}},
		{"a; # b; c", [][]string{{"a"}}},
		// Brackets keep a literal in one word, quotes and all.
		{"map update x key {saddr: 10.0.0.1, sport: 40000} value [1, 2]",
			[][]string{{"map", "update", "x", "key", "{saddr: 10.0.0.1, sport: 40000}", "value", "[1, 2]"}}},
		{`v {comment: "a b; c}", tags: ['x', "y"]}`, [][]string{{"v", `{comment: "a b; c}", tags: ['x', "y"]}`}}},
		{"{a # b; c}", [][]string{{"{a # b; c}"}}},
		{"{a: [1, (2 3)]} z", [][]string{{"{a: [1, (2 3)]}", "z"}}},
		{"{x: 1}{y: 2}", [][]string{{"{x: 1}{y: 2}"}}},
		{"pkt Ether(src=a, dst=b)/IPv4()", [][]string{{"pkt", "Ether(src=a, dst=b)/IPv4()"}}},
		{`"{a b}" '[1, 2'`, [][]string{{"{a b}", "[1, 2"}}},
		{"k{a b}", [][]string{{"k{a b}"}}},
		{"é 'wörld' {ü: 1}", [][]string{{"é", "wörld", "{ü: 1}"}}},
		// Bytes that are not UTF-8 pass through unchanged.
		{"a '\xff\xfe' \xc3", [][]string{{"a", "\xff\xfe", "\xc3"}}},
	} {
		got, err := Split(c.line)
		if err != nil {
			t.Errorf("Split(%q): %v", c.line, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	for _, c := range []struct {
		line string
		col  int
		want string
	}{
		{`echo "abc`, 6, `column 6: unterminated " quote; close it with "`},
		{`echo 'abc`, 6, `column 6: unterminated ' quote; close it with '`},
		{`é "x`, 3, `column 3: unterminated " quote; close it with "`},
		{`{a: "b}`, 5, `column 5: unterminated " quote; close it with "`},
		{`a "b" 'c`, 7, `column 7: unterminated ' quote; close it with '`},
		{"map {a: [1}", 11, `column 11: expected ']' to close '[' opened at column 9, found '}'`},
		{"x (a]", 5, `column 5: expected ')' to close '(' opened at column 3, found ']'`},
		{"a )", 3, `column 3: unexpected ')' with nothing open`},
		{"a; b }", 6, `column 6: unexpected '}' with nothing open`},
		{"{a: [1]", 1, `column 1: '{' is never closed; add '}'`},
		{"x {a: [1, 2", 7, `column 7: '[' is never closed; add ']'`},
		{"ok; {# oops", 5, `column 5: '{' is never closed; add '}'`},
	} {
		got, err := Split(c.line)
		if err == nil {
			t.Errorf("Split(%q) = %q, want an error", c.line, got)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Split(%q): error %T, want *SyntaxError", c.line, err)
			continue
		}
		if se.Col != c.col || err.Error() != c.want {
			t.Errorf("Split(%q): column %d %q, want column %d %q", c.line, se.Col, err, c.col, c.want)
		}
	}
}

func TestContinues(t *testing.T) {
	for _, c := range []struct {
		line, rest string
		more       bool
	}{
		{`map show \`, "map show ", true},
		{"map show \\  \t", "map show ", true},
		{`\`, "", true},
		{`map show`, "map show", false},
		{`a \\`, `a \\`, false},
		{``, ``, false},
	} {
		rest, more := Continues(c.line)
		if rest != c.rest || more != c.more {
			t.Errorf("Continues(%q) = %q, %v; want %q, %v", c.line, rest, more, c.rest, c.more)
		}
	}
}
