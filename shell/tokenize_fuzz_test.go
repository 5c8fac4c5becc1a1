// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSplit checks Split on any line: it never panics; an error is a
// *SyntaxError on one line whose column lies within the line; success gives
// no empty commands, words that quoted and joined again split back to the
// same commands, and (for a line with no quotes, brackets, '#' or ';')
// exactly the blank-separated fields of the line.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"map show id 3", `echo "a b" 'c d'`, "a; b # c", "{saddr: 10.0.0.1, sport: 40000}",
		`v {comment: "a b; c}", tags: ['x', "y"]}`, "pkt Ether(src=a)/IPv4()", `echo "abc`,
		"map {a: [1}", "a )", "{a: [1]", "é 'wörld'", "a '\xff' \xc3", `x "" ''`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmds, err := Split(line)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Split(%q): error %T, want *SyntaxError", line, err)
			}
			if n := utf8.RuneCountInString(line); se.Col < 1 || se.Col > n {
				t.Fatalf("Split(%q): column %d outside the line's %d characters", line, se.Col, n)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("Split(%q): error is not one line: %q", line, err)
			}
			return
		}
		for _, c := range cmds {
			if len(c) == 0 {
				t.Fatalf("Split(%q) = %q has an empty command", line, cmds)
			}
		}
		again, err := Split(joinQuoted(cmds))
		if err != nil || !reflect.DeepEqual(again, cmds) {
			t.Fatalf("Split(%q) = %q, but its words quoted, %q, split to %q, %v", line, cmds, joinQuoted(cmds), again, err)
		}
		if !strings.ContainsAny(line, `'"#;(){}[]`) {
			var fields [][]string
			if f := strings.FieldsFunc(line, isBlank); len(f) > 0 {
				fields = [][]string{f}
			}
			if !reflect.DeepEqual(cmds, fields) {
				t.Fatalf("Split(%q) = %q, want the fields %q", line, cmds, fields)
			}
		}
	})
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

// joinQuoted writes commands back as a line that Split reads as the same
// words: each word in single quotes, each single quote in double quotes
// ('it'"'"'s'), commands separated by ';'.
func joinQuoted(cmds [][]string) string {
	var line []string
	for _, c := range cmds {
		var words []string
		for _, w := range c {
			words = append(words, "'"+strings.ReplaceAll(w, "'", `'"'"'`)+"'")
		}
		line = append(line, strings.Join(words, " "))
	}
	return strings.Join(line, "; ")
}
