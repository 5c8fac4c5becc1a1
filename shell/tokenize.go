// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"fmt"
	"strings"
)

// SyntaxError is a line that cannot be split into words. Col is 1-based.
type SyntaxError struct {
	Col int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// Split breaks one logical line into commands and each command into words,
// following bpftool's batch rules where they agree with a shell:
//
//   - words are separated by blanks; ';' separates commands;
//   - '...' and "..." quote without escapes and the quotes are removed;
//   - '#' outside quotes starts a comment (bpftool also cuts inside
//     quotes; bpfsh does not, so "a#b" stays a value);
//   - (...), [...] and {...} keep their blanks, so a literal such as
//     {saddr: 10.0.0.1, sport: 40000} or Ether(src=a, dst=b)/IPv4() is one
//     word, passed on with its brackets and any quotes inside it.
//
// A line ending in '\' is joined to the next by the caller (Continues).
func Split(line string) ([][]string, error) {
	var (
		cmds  [][]string
		words []string
		word  strings.Builder
		// inWord is true once the current word has started, so that ""
		// is an empty word rather than nothing.
		inWord bool
		depth  []rune // open brackets of the current word
		opened []int  // their columns
	)
	endWord := func() {
		if inWord {
			words = append(words, word.String())
		}
		word.Reset()
		inWord = false
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	// Columns count runes, but words keep the line's own bytes: a byte
	// that is not UTF-8 (a Latin-1 value in a script) passes through
	// unchanged instead of becoming U+FFFD. offs[i] is rune i's offset.
	runes := []rune(line)
	offs := make([]int, 0, len(runes)+1)
	for off := range line {
		offs = append(offs, off)
	}
	offs = append(offs, len(line))
	text := func(from, to int) string { return line[offs[from]:offs[to]] }
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case r == '\'' || r == '"':
			end := indexRune(runes, i+1, r)
			if end < 0 {
				return nil, &SyntaxError{Col: i + 1, Msg: fmt.Sprintf("unterminated %c quote; close it with %c", r, r)}
			}
			if len(depth) > 0 {
				// Inside a literal the quotes belong to the literal.
				word.WriteString(text(i, end+1))
			} else {
				word.WriteString(text(i+1, end))
			}
			inWord = true
			i = end
		case len(depth) > 0:
			word.WriteString(text(i, i+1))
			switch r {
			case '(', '[', '{':
				depth = append(depth, r)
				opened = append(opened, i+1)
			case ')', ']', '}':
				if want := closer(depth[len(depth)-1]); r != want {
					return nil, &SyntaxError{Col: i + 1, Msg: fmt.Sprintf("expected %q to close %q opened at column %d, found %q", want, depth[len(depth)-1], opened[len(opened)-1], r)}
				}
				depth = depth[:len(depth)-1]
				opened = opened[:len(opened)-1]
			}
		case r == '#':
			i = len(runes)
		case r == ';':
			endCmd()
		case r == ' ' || r == '\t' || r == '\r' || r == '\n':
			endWord()
		case r == '(' || r == '[' || r == '{':
			depth = append(depth, r)
			opened = append(opened, i+1)
			word.WriteString(text(i, i+1))
			inWord = true
		case r == ')' || r == ']' || r == '}':
			return nil, &SyntaxError{Col: i + 1, Msg: fmt.Sprintf("unexpected %q with nothing open", r)}
		default:
			// A run of plain characters at once (a hex packet is one
			// word of a hundred).
			j := i + 1
			for j < len(runes) && plainRune(runes[j]) {
				j++
			}
			word.WriteString(text(i, j))
			inWord = true
			i = j - 1
		}
	}
	if len(depth) > 0 {
		return nil, &SyntaxError{Col: opened[len(opened)-1], Msg: fmt.Sprintf("%q is never closed; add %q", depth[len(depth)-1], closer(depth[len(depth)-1]))}
	}
	endCmd()
	return cmds, nil
}

// Continues reports whether line ends in a '\' that joins it to the next
// line, and returns the line without it.
func Continues(line string) (string, bool) {
	trimmed := strings.TrimRight(line, " \t\r")
	if strings.HasSuffix(trimmed, `\`) && !strings.HasSuffix(trimmed, `\\`) {
		return trimmed[:len(trimmed)-1], true
	}
	return line, false
}

// plainRune says whether r is none of the characters Split treats
// specially outside brackets.
func plainRune(r rune) bool {
	switch r {
	case '\'', '"', '#', ';', ' ', '\t', '\r', '\n', '(', '[', '{', ')', ']', '}':
		return false
	}
	return true
}

func indexRune(rs []rune, from int, r rune) int {
	for i := from; i < len(rs); i++ {
		if rs[i] == r {
			return i
		}
	}
	return -1
}

func closer(open rune) rune {
	switch open {
	case '(':
		return ')'
	case '[':
		return ']'
	}
	return '}'
}
