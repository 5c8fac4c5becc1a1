// SPDX-License-Identifier: Apache-2.0

// Package commands holds bpfsh's commands, one file per command family.
//
// A command returns a value and never prints: the shell renders what it
// returns as a table, text or JSON. Commands call down into bpf/ and
// testrun/, never up into shell/.
package commands

import "strings"

// Command is one command word, or a family of sub-commands.
type Command struct {
	// Name is the word the user types (bpftool's spelling where it has one).
	Name string
	// Usage is the argument line shown in help and as a typing hint,
	// e.g. "REF key KEY".
	Usage string
	// Short is a one-line summary; Long a paragraph; Example a command line.
	Short   string
	Long    string
	Example string
	// Subs are the sub-commands of a family (map, prog, ...).
	Subs []*Command
	// Run executes the command with the words after its name.
	Run func(s *Session, args []string) (Result, error)
	// Args tells the completer what each positional word is; see ArgKind.
	Args []ArgKind
	// KeepLast marks commands that look at the last result rather than
	// make one (expect, record): the shell leaves Session.Last and
	// Session.LastErr as they were, so that several expect lines check the
	// same run.
	KeepLast bool
}

// ArgKind names what an argument is, for completion and hints.
type ArgKind string

// Argument kinds the completer knows how to offer candidates for.
const (
	ArgProgRef ArgKind = "prog-ref" // a program reference: id N, pinned PATH, name N, tag T, NAME/OBJ
	ArgMapRef  ArgKind = "map-ref"  // a map reference
	ArgLinkRef ArgKind = "link-ref" // a link reference
	ArgAnyRef  ArgKind = "ref"      // a program or map reference
	ArgFile    ArgKind = "file"     // a file on disk
	ArgObject  ArgKind = "object"   // a BPF ELF object file (.o first)
	ArgPinPath ArgKind = "pin-path" // a path under bpffs
	ArgCommand ArgKind = "command"  // a command word (for help)
	ArgLoaded  ArgKind = "loaded"   // a NAME under the pin root
	ArgIface   ArgKind = "iface"    // a network interface
)

// FullName is the command's words from the top, e.g. "map lookup".
func FullName(path []*Command) string {
	words := make([]string, len(path))
	for i, c := range path {
		words[i] = c.Name
	}
	return strings.Join(words, " ")
}

// Lookup resolves the leading words of args against table, accepting any
// unique prefix of a word (bpftool's habit: "m s" is "map show"). It returns
// the path of commands matched and the words left over. A word that matches
// nothing or several commands is a usage error naming the candidates.
func Lookup(table []*Command, args []string) (path []*Command, rest []string, err error) {
	level := table
	for len(args) > 0 && level != nil {
		c, err := matchWord(level, args[0], path)
		if err != nil {
			return path, args, err
		}
		path = append(path, c)
		args = args[1:]
		level = c.Subs
		if c.Run != nil && c.Subs == nil {
			break
		}
	}
	if len(path) == 0 {
		return nil, args, Usagef("no command given; type 'help' for the list")
	}
	if last := path[len(path)-1]; last.Run == nil {
		return path, args, Usagef("%s needs a sub-command: %s", FullName(path), names(last.Subs))
	}
	return path, args, nil
}

func matchWord(level []*Command, word string, path []*Command) (*Command, error) {
	var found []*Command
	for _, c := range level {
		if c.Name == word {
			return c, nil
		}
		if strings.HasPrefix(c.Name, word) {
			found = append(found, c)
		}
	}
	where := "command"
	if len(path) > 0 {
		where = FullName(path) + " sub-command"
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, Usagef("unknown %s %q; one of: %s", where, word, names(level))
	default:
		return nil, Usagef("ambiguous %s %q: could be %s", where, word, names(found))
	}
}

func names(cs []*Command) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return strings.Join(out, ", ")
}
