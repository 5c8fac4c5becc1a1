// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"slices"
	"strings"
)

// argSpec says how a command reads its words, declared beside the
// command's usage so that the two are read together:
//
//	var traceArgs = argSpec{Valued: []string{"grep", "for"}, Flags: []string{"global"}, Ref: []string{"prog"}, ...}
//
// Flags stand alone ("global", "--detail"); Valued take the word after
// them ("for 5s"), and a dashed one also "--name=VALUE"; Ref take an
// object reference (one word, NAME/OBJ or a path, or two: "id 7",
// "pinned PATH", "name N", "tag T"); Many take every word after them up
// to the next word of the spec ("set A=1 B=2"). Any other word is
// positional, or, when Takes is set, a mistake named with what the
// command takes.
type argSpec struct {
	Flags  []string
	Valued []string
	Ref    []string
	Many   []string
	// Take are keywords whose words are counted by a function of the
	// words after the keyword (run's "packet EXPR", where an expression
	// may span words; "ctx hex 01 02"): it returns how many it takes.
	Take map[string]func(after []string) int
	// Other, when set, reads a word that is no keyword (run's @FILE and
	// $NAME): given the words from it on, it returns how many it took
	// (at least one) or an error.
	Other func(args []string) (int, error)
	// Need says what a Valued, Ref or Many word wants after it, for the
	// error when nothing follows ("--name" -> "the NAME kv was loaded
	// as"); "a value" when not given.
	Need map[string]string
	// Takes ends the error for an unexpected word: "trace takes prog REF,
	// grep REGEXP, for DURATION and global". Empty: such words are
	// positional and returned.
	Takes string
}

// refKinds are the words that start a two-word reference.
var refKinds = []string{"id", "pinned", "name", "tag"}

// parse reads args by the spec: each keyword is passed to each with the
// words it took (none for Flags, one for Valued, one or two for Ref, one
// or more for Many), in the order typed; positional words are returned.
func (sp argSpec) parse(args []string, each func(w string, v ...string) error) (rest []string, err error) {
	keyword := func(w string) bool {
		name, _, _ := strings.Cut(w, "=")
		_, take := sp.Take[w]
		return slices.Contains(sp.Flags, w) || slices.Contains(sp.Valued, w) || slices.Contains(sp.Valued, name) && strings.HasPrefix(w, "--") ||
			slices.Contains(sp.Ref, w) || slices.Contains(sp.Many, w) || take
	}
	needs := func(w string) error {
		what := sp.Need[w]
		if what == "" {
			what = "a value after it"
		}
		return Usagef("%s needs %s", w, what)
	}
	for i := 0; i < len(args); i++ {
		w := args[i]
		var v []string
		switch {
		case slices.Contains(sp.Flags, w):
		case slices.Contains(sp.Valued, w):
			if i+1 >= len(args) {
				return nil, needs(w)
			}
			i++
			v = args[i : i+1]
		case strings.HasPrefix(w, "--") && strings.Contains(w, "=") && slices.Contains(sp.Valued, w[:strings.Index(w, "=")]):
			var value string
			w, value, _ = strings.Cut(w, "=")
			v = []string{value}
		case slices.Contains(sp.Ref, w):
			switch {
			case i+1 >= len(args):
				return nil, needs(w)
			case slices.Contains(refKinds, args[i+1]):
				if i+2 >= len(args) {
					return nil, Usagef("%s %s needs a value after it", w, args[i+1])
				}
				v = args[i+1 : i+3]
				i += 2
			default:
				i++
				v = args[i : i+1]
			}
		case slices.Contains(sp.Many, w):
			for i+1 < len(args) && !keyword(args[i+1]) {
				i++
				v = append(v, args[i])
			}
			if len(v) == 0 {
				return nil, needs(w)
			}
		case sp.Take[w] != nil:
			n := min(sp.Take[w](args[i+1:]), len(args)-i-1)
			v = args[i+1 : i+1+n]
			i += n
		case sp.Other != nil:
			n, err := sp.Other(args[i:])
			if err != nil {
				return nil, err
			}
			i += max(n, 1) - 1
			continue
		case sp.Takes != "":
			return nil, Usagef("unexpected %q; %s", clipWord(w), sp.Takes)
		default:
			rest = append(rest, w)
			continue
		}
		if err := each(w, v...); err != nil {
			return nil, err
		}
	}
	return rest, nil
}
