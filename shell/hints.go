// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"strings"

	"github.com/bpfsh/bpfsh/commands"
)

// This file reads a command's usage line ("REF key KEY [value VALUE]") to
// tell what the word under the cursor should be, and what is still to come
// after it: the hint shown while typing, as redis-cli does.

// Kinds of argument the completer knows beyond those commands declare.
const (
	argID      commands.ArgKind = "shell-id"      // a kernel id of the family's objects
	argLiteral commands.ArgKind = "shell-literal" // a key or value; may take several words
)

// refWords are the words that start a two-word object reference.
var refWords = map[string]string{"id": "N", "pinned": "PATH", "name": "NAME", "tag": "HEX"}

// usageItem is one word of a usage line.
type usageItem struct {
	word     string // without brackets: "key", "REF", "peek|pop|push"
	optional bool   // inside [...]
	skip     int    // index of the first item after the innermost [...] holding this one
	repeat   bool   // "ARG..." may be given several times
	token    int    // index of the usage token it came from
}

// placeholder reports whether the item stands for a value (upper case)
// rather than a keyword typed as is.
func (it usageItem) placeholder() bool {
	return strings.ContainsAny(it.word, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// matches reports whether word is the keyword (or one of its alternatives).
func (it usageItem) matches(word string) bool {
	for alt := range strings.SplitSeq(it.word, "|") {
		if alt == word {
			return true
		}
	}
	return false
}

// usageLine is a parsed usage line.
type usageLine struct {
	items  []usageItem
	tokens []string
}

func parseUsage(u string) usageLine {
	ul := usageLine{tokens: strings.Fields(u)}
	var open []int // the item index at which each open [ began
	for ti, tok := range ul.tokens {
		for strings.HasPrefix(tok, "[") {
			tok = tok[1:]
			open = append(open, len(ul.items))
		}
		closes := 0
		for strings.HasSuffix(tok, "]") {
			tok = tok[:len(tok)-1]
			closes++
		}
		repeat := strings.HasSuffix(tok, "...")
		tok = strings.TrimSuffix(tok, "...")
		if tok != "" {
			ul.items = append(ul.items, usageItem{word: tok, optional: len(open) > 0, repeat: repeat, token: ti, skip: -1})
		}
		for ; closes > 0 && len(open) > 0; closes-- {
			from := open[len(open)-1]
			open = open[:len(open)-1]
			for k := from; k < len(ul.items); k++ {
				if ul.items[k].skip < 0 {
					ul.items[k].skip = len(ul.items)
				}
			}
		}
	}
	for k := range ul.items {
		if ul.items[k].skip < 0 {
			ul.items[k].skip = k + 1
		}
	}
	return ul
}

// rest is the usage from item k on: the hint for the word at k.
func (ul usageLine) rest(k int) string {
	if k < 0 || k >= len(ul.items) {
		return ""
	}
	text := strings.Join(ul.tokens[ul.items[k].token:], " ")
	// Starting inside [...] leaves closing brackets without their opening.
	var b strings.Builder
	depth := 0
	for _, r := range text {
		switch r {
		case '[':
			depth++
		case ']':
			if depth == 0 {
				continue
			}
			depth--
		}
		b.WriteRune(r)
	}
	return b.String()
}

// kinds says what each item is: "" for keywords, the command's declared
// Args for its placeholders in order, and a guess from the placeholder's
// name where Args says nothing.
func (ul usageLine) kinds(cmd *commands.Command, family string) []commands.ArgKind {
	out := make([]commands.ArgKind, len(ul.items))
	n := 0
	for k, it := range ul.items {
		if !it.placeholder() {
			continue
		}
		guess := guessKind(it.word, family)
		switch {
		case guess == argLiteral:
			// Keys and values are never declared but read differently.
			out[k] = guess
		case n < len(cmd.Args):
			out[k] = cmd.Args[n]
		default:
			out[k] = guess
		}
		n++
	}
	return out
}

// guessKind reads a placeholder's name: REF in the map family is a map.
func guessKind(name, family string) commands.ArgKind {
	switch name {
	case "REF":
		switch family {
		case "map":
			return commands.ArgMapRef
		case "prog":
			return commands.ArgProgRef
		case "link":
			return commands.ArgLinkRef
		}
		return commands.ArgAnyRef
	case "MAP":
		return commands.ArgMapRef
	case "PROG":
		return commands.ArgProgRef
	case "PATH", "DIR", "PIN":
		return commands.ArgPinPath
	case "IFACE", "DEV", "DEVICE":
		return commands.ArgIface
	case "COMMAND", "SUB-COMMAND", "CMD":
		return commands.ArgCommand
	case "ID":
		return argID
	case "KEY", "VALUE":
		return argLiteral
	}
	if strings.HasPrefix(name, "FILE") {
		return commands.ArgFile
	}
	return ""
}

func isRefKind(k commands.ArgKind) bool {
	switch k {
	case commands.ArgProgRef, commands.ArgMapRef, commands.ArgLinkRef, commands.ArgAnyRef:
		return true
	}
	return false
}

// position is where the word under the cursor falls in a usage line.
type position struct {
	item    int    // the item the word fills; len(items) when past the end
	refWord string // "id", "pinned", "name" or "tag" when the word is the value after it
	cont    bool   // the word continues a key or value already begun
	lost    bool   // the words typed so far do not follow the usage
}

// match walks the finished argument words along the usage line.
func (ul usageLine) match(kinds []commands.ArgKind, args []string) position {
	j := 0
	for k := 0; k < len(ul.items); k++ {
		it := ul.items[k]
		if j == len(args) {
			return position{item: k}
		}
		switch {
		case !it.placeholder():
			if it.matches(args[j]) {
				j++
				continue
			}
			if it.optional {
				k = it.skip - 1
				continue
			}
			return position{lost: true}
		case isRefKind(kinds[k]):
			if _, two := refWords[args[j]]; two {
				if j+1 == len(args) {
					return position{item: k, refWord: args[j]}
				}
				j++
			}
			j++
		case kinds[k] == argLiteral || it.repeat:
			next := ul.nextKeyword(k)
			for j < len(args) && (next < 0 || !ul.items[next].matches(args[j])) {
				j++
			}
			if j == len(args) {
				return position{item: k, cont: true}
			}
		default:
			j++
		}
	}
	return position{item: len(ul.items), lost: j < len(args)}
}

// nextKeyword is the index of the first keyword after item k, or -1.
func (ul usageLine) nextKeyword(k int) int {
	for i := k + 1; i < len(ul.items); i++ {
		if !ul.items[i].placeholder() {
			return i
		}
	}
	return -1
}

// arguments completes the words after a command's name by its usage line.
func (c *completer) arguments(path []*commands.Command, args []string) {
	cmd := path[len(path)-1]
	ul := parseUsage(cmd.Usage)
	c.family = path[0].Name
	kinds := ul.kinds(cmd, c.family)
	pos := ul.match(kinds, args)
	switch {
	case pos.lost:
		c.generic(args)
		return
	case pos.refWord != "":
		c.refValue(pos.refWord, kinds[pos.item], ul.rest(pos.item+1))
		return
	}
	k := pos.item
	if pos.cont {
		// Inside a key or value: offer what may follow it.
		k++
	}
	for k < len(ul.items) {
		it := ul.items[k]
		rest := ul.rest(k)
		if it.placeholder() {
			c.argument(kinds[k], ul.rest(k+1), args)
		} else {
			for alt := range strings.SplitSeq(it.word, "|") {
				c.add(alt, rest)
			}
		}
		if !it.optional {
			break
		}
		k = it.skip
	}
	if len(c.out) == 0 {
		c.hint(ul.rest(pos.item))
	}
}

// argument offers the candidates for one placeholder of the given kind;
// after is the usage that follows it.
func (c *completer) argument(kind commands.ArgKind, after string, args []string) {
	switch kind {
	case commands.ArgProgRef, commands.ArgMapRef, commands.ArgLinkRef, commands.ArgAnyRef:
		c.refStart(kind, after)
	case commands.ArgPinPath:
		c.pinned("")
	case commands.ArgFile:
		c.files()
	case commands.ArgObject:
		c.objectFiles()
	case commands.ArgCommand:
		level := c.s.Commands
		for _, a := range args {
			cmd := matchUnique(level, a)
			if cmd == nil {
				return
			}
			level = cmd.Subs
		}
		for _, cmd := range level {
			c.add(cmd.Name, commandDesc(cmd))
		}
	case commands.ArgLoaded:
		c.loaded()
	case commands.ArgIface:
		c.ifaces()
	case argID:
		c.ids(guessKind("REF", c.family))
	}
}

// refStart offers the ways to begin an object reference; after is the
// usage that follows the reference.
func (c *completer) refStart(kind commands.ArgKind, after string) {
	for _, w := range []string{"id", "pinned", "name", "tag"} {
		if w == "tag" && kind != commands.ArgProgRef && kind != commands.ArgAnyRef {
			continue // only programs have tags
		}
		c.add(w, strings.TrimSpace(w+" "+refWords[w]+" "+after))
	}
	if strings.HasPrefix(c.cur, "/") {
		c.pinned(kind)
		return
	}
	c.shortRefs(kind)
}

// refValue offers the word after id, pinned, name or tag.
func (c *completer) refValue(word string, kind commands.ArgKind, rest string) {
	switch word {
	case "id":
		c.ids(kind)
	case "pinned":
		c.pinned(kind)
	case "name":
		c.names(kind)
	case "tag":
		c.tags()
	}
	if len(c.out) == 0 {
		c.hint(strings.TrimSpace(refWords[word] + " " + rest))
	}
}

// generic completes the arguments of a command this shell does not know
// (or typed against its usage) from the words that read the same in every
// command: the value after id, pinned, name and tag, absolute paths under
// bpffs and the short form NAME/OBJ.
func (c *completer) generic(words []string) {
	if len(words) > 0 {
		if _, ok := refWords[words[len(words)-1]]; ok {
			c.refValue(words[len(words)-1], commands.ArgAnyRef, "")
			return
		}
	}
	switch {
	case strings.HasPrefix(c.cur, "/"):
		c.pinned(commands.ArgAnyRef)
	case strings.Count(c.cur, "/") == 1:
		c.shortRefs(commands.ArgAnyRef)
	}
}
