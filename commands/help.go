// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"strings"
)

var helpCmd = &Command{
	Name:    "help",
	Usage:   "[COMMAND [SUB-COMMAND]]",
	Short:   "list the commands, or explain one",
	Long:    "Without arguments, help lists every command with a one-line summary. With a command (prefixes work, as everywhere), it prints the usage line, a description and an example; for a family such as map, it lists the family's sub-commands.",
	Example: "help map lookup",
	Args:    []ArgKind{ArgCommand, ArgCommand},
	Run:     runHelp,
}

func runHelp(s *Session, args []string) (Result, error) {
	table := s.Commands
	if len(args) == 0 {
		return summaryTable(table, nil), nil
	}
	path, rest, err := Lookup(table, args)
	if err != nil && !(len(path) > 0 && path[len(path)-1].Subs != nil && len(rest) == 0) {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s has no sub-command %q", FullName(path), rest[0])
	}
	c := path[len(path)-1]
	if c.Subs != nil {
		return summaryTable(c.Subs, path), nil
	}
	return HelpText(path), nil
}

// HelpText is the full help of one command: usage, description, example.
func HelpText(path []*Command) *Text {
	c := path[len(path)-1]
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n", UsageLine(path))
	if c.Long != "" {
		b.WriteString(wrap(c.Long, 76))
		b.WriteString("\n")
	} else {
		b.WriteString(c.Short + "\n")
	}
	if c.Example != "" {
		fmt.Fprintf(&b, "\nexample:\n  %s\n", c.Example)
	}
	return &Text{Body: b.String(), JSON: map[string]string{
		"command": FullName(path), "usage": UsageLine(path), "short": c.Short, "long": c.Long, "example": c.Example,
	}}
}

// UsageLine is "map lookup REF key KEY".
func UsageLine(path []*Command) string {
	u := FullName(path)
	if c := path[len(path)-1]; c.Usage != "" {
		u += " " + c.Usage
	}
	return u
}

func summaryTable(cs []*Command, parent []*Command) *Table {
	t := &Table{Columns: []string{"command", "summary"}}
	for _, c := range cs {
		name := FullName(append(parent[:len(parent):len(parent)], c))
		if c.Subs != nil {
			name += " ..."
		} else if c.Usage != "" {
			name += " " + shortUsage(c.Usage)
		}
		t.Rows = append(t.Rows, []string{name, c.Short})
	}
	return t
}

// shortUsage is a usage line cut to fit a summary table: whole words up
// to about 40 characters, then "...". "help CMD" shows all of it.
func shortUsage(u string) string {
	const max = 40
	if len(u) <= max {
		return u
	}
	cut := strings.LastIndexByte(u[:max], ' ')
	if cut <= 0 {
		cut = max
	}
	return u[:cut] + " ..."
}

// wrap folds text at width on word boundaries.
func wrap(text string, width int) string {
	// A blank line ("\n\n") starts a new paragraph.
	paras := strings.Split(text, "\n\n")
	for i, p := range paras {
		paras[i] = wrapParagraph(p, width)
	}
	return strings.Join(paras, "\n\n")
}

// wrapParagraph fills one paragraph's words into lines of width.
func wrapParagraph(text string, width int) string {
	var b strings.Builder
	col := 0
	for _, w := range strings.Fields(text) {
		if col > 0 && col+1+len(w) > width {
			b.WriteString("\n")
			col = 0
		} else if col > 0 {
			b.WriteString(" ")
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}
