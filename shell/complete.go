// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/bpfsh/bpfsh/commands"
)

// Suggestion is one completion candidate for the word under the cursor.
type Suggestion struct {
	// Text is the whole word that replaces line[Start:cursor].
	Text string
	// Desc says what the candidate is, or which arguments still follow
	// (the hint redis-cli shows in grey).
	Desc string
	// Start is the byte offset in the line where the replaced word begins.
	// It is the same for every suggestion of one call.
	Start int
}

// wordSeparators are the characters after which a completed word starts.
// The line editor cuts words at the same characters, so that accepting a
// suggestion replaces exactly the word Complete completed.
const wordSeparators = " \t\r\n{[,;\"'"

// Complete returns the candidates for the word that ends at cursor (a byte
// offset into line): command words and sub-commands, flags, the keywords
// of the usage line, object references (id, pinned, name, tag and the short
// form NAME/OBJ), paths under bpffs, kernel program and map names, and BTF
// field names inside a {...} key or value literal. When nothing can be
// offered but the command still wants arguments, the only suggestion is the
// word as typed with the rest of the usage as its description.
//
// Complete never panics and never changes anything; it reads bpffs and
// asks the kernel about its objects (cached for a moment), so it can run
// on every keystroke.
func Complete(s *commands.Session, line string, cursor int) (out []Suggestion) {
	defer func() {
		if recover() != nil {
			// A completer must not take the shell down; the fuzz test
			// calls complete directly so that such bugs are still found.
			out = nil
		}
	}()
	return complete(s, line, cursor)
}

func complete(s *commands.Session, line string, cursor int) []Suggestion {
	if s == nil {
		return nil
	}
	cursor = clampCursor(line, cursor)
	p := splitPartial(line[:cursor])
	if p.stop {
		return nil
	}
	c := &completer{s: s, cur: p.cur, start: p.start}
	if words, _ := globalFlags(p.words); packetSlot(words) {
		c.packetExpr(strings.LastIndexAny(line[:cursor], wordSeparators) + 1)
		if len(c.out) > 0 || p.literal || strings.ContainsAny(p.cur, "()/$") {
			return c.out
		}
	}
	if p.literal {
		// After a closing bracket the word the line editor replaces
		// starts before it, where no field name can be offered.
		editorStart := strings.LastIndexAny(line[:cursor], wordSeparators) + 1
		if strings.ContainsAny(line[editorStart:cursor], "}]") {
			return nil
		}
		c.literal(p.words)
		return c.out
	}
	if strings.ContainsAny(p.cur, "{[()],;\"'#") {
		// A finished literal or quoted text: nothing to add to it.
		return nil
	}
	words, _ := globalFlags(p.words)
	if strings.HasPrefix(c.cur, "-") {
		if c.flags(words); len(c.out) > 0 {
			return c.out
		}
		// Not a flag: a negative number, say.
	}
	c.command(words)
	return c.out
}

// clampCursor keeps cursor within line and at the start of a character.
func clampCursor(line string, cursor int) int {
	cursor = min(max(cursor, 0), len(line))
	for cursor > 0 && cursor < len(line) && !utf8.RuneStart(line[cursor]) {
		cursor--
	}
	return cursor
}

// partial is the line up to the cursor, split the way Split would split it
// but without failing on what is not finished yet.
type partial struct {
	words   []string // the finished words of the last command on the line
	cur     string   // the word under the cursor as typed ("" after a blank)
	start   int      // byte offset of cur in the line
	literal bool     // cur is an unfinished (...), [...] or {...} literal
	stop    bool     // the cursor is inside quotes or a comment
}

func splitPartial(prefix string) partial {
	var (
		p      partial
		word   strings.Builder
		inWord bool
		quoted bool
		depth  int
		quote  byte
	)
	begin := func(i int) {
		if !inWord {
			inWord, p.start = true, i
		}
	}
	end := func() {
		if inWord {
			p.words = append(p.words, word.String())
		}
		word.Reset()
		inWord, quoted = false, false
	}
	for i := 0; i < len(prefix); i++ {
		ch := prefix[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
				if depth == 0 {
					continue // quotes around a word are not part of it
				}
			}
			word.WriteByte(ch)
		case ch == '\'' || ch == '"':
			begin(i)
			quote, quoted = ch, true
			if depth > 0 {
				word.WriteByte(ch)
			}
		case depth > 0:
			word.WriteByte(ch)
			switch ch {
			case '(', '[', '{':
				depth++
			case ')', ']', '}':
				depth--
			}
		case ch == '#':
			p.stop = true
			return p
		case ch == ';':
			end()
			p.words = nil
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n':
			end()
		case ch == '(' || ch == '[' || ch == '{':
			begin(i)
			depth++
			word.WriteByte(ch)
		default:
			begin(i)
			word.WriteByte(ch)
		}
	}
	switch {
	case quote != 0 || (quoted && depth == 0):
		p.stop = true
	case inWord:
		p.cur = prefix[p.start:]
		p.literal = depth > 0
	default:
		p.start = len(prefix)
	}
	return p
}

// completer gathers the suggestions for one word.
type completer struct {
	s      *commands.Session
	cur    string // the word under the cursor
	start  int
	family string // the first command word, once known: "map", "prog"
	out    []Suggestion
}

// add offers text when it extends the word typed so far.
func (c *completer) add(text, desc string) {
	if text != "" && strings.HasPrefix(text, c.cur) {
		c.out = append(c.out, Suggestion{Text: text, Desc: desc, Start: c.start})
	}
}

// hint offers the word as typed with what is still to come: the line
// editor shows it under the cursor, and accepting it changes nothing.
func (c *completer) hint(rest string) {
	if rest != "" {
		c.out = append(c.out, Suggestion{Text: c.cur, Desc: rest, Start: c.start})
	}
}

// command completes the command words, then hands the arguments to the
// usage line of the command they name.
func (c *completer) command(words []string) {
	level := c.s.Commands
	if c.s.Mode != nil {
		// A mode's commands (a debug session's) come first, as they run.
		level = append(slices.Clone(c.s.Mode.Table), level...)
	}
	var path []*commands.Command
	for i, w := range words {
		cmd := matchUnique(level, w)
		if cmd == nil {
			// Not a command we know (or not merged yet): still complete
			// the object references that read the same everywhere.
			c.generic(words[i+1:])
			return
		}
		path = append(path, cmd)
		if cmd.Subs == nil {
			c.arguments(path, words[i+1:])
			return
		}
		level = cmd.Subs
	}
	for _, cmd := range level {
		c.add(cmd.Name, commandDesc(cmd))
	}
}

// matchUnique finds word in level as the runner does: the exact name, or
// the only name it is a prefix of.
func matchUnique(level []*commands.Command, word string) *commands.Command {
	var found *commands.Command
	for _, cmd := range level {
		if cmd.Name == word {
			return cmd
		}
		if strings.HasPrefix(cmd.Name, word) {
			if found != nil {
				return nil
			}
			found = cmd
		}
	}
	return found
}

func commandDesc(cmd *commands.Command) string {
	switch {
	case cmd.Subs != nil:
		return "... " + cmd.Short
	case cmd.Usage != "":
		return cmd.Usage + " · " + cmd.Short
	}
	return cmd.Short
}

// flags offers the flags every command takes, and those its usage names.
func (c *completer) flags(words []string) {
	c.add("-j", "print JSON")
	c.add("--json", "print JSON")
	path, _, err := commands.Lookup(c.s.Commands, words)
	if err != nil || len(path) == 0 {
		return
	}
	items := parseUsage(path[len(path)-1].Usage)
	for k, it := range items.items {
		if strings.HasPrefix(it.word, "-") && !slices.Contains([]string{"-j", "--json"}, it.word) {
			c.add(it.word, items.rest(k))
		}
	}
}
