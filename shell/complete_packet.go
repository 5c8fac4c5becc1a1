// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"slices"
	"strings"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// Completion inside a packet expression (Ether()/IPv4(ttl=1)/UDP(dport=9)):
// layer names after the start or a '/', the layer's field names inside its
// parentheses, and the session's $variables.

// packetSlot reports whether the word after words is a packet expression:
// "packet EXPR", "run REF packet EXPR" (and any other "... packet EXPR"),
// "let NAME = EXPR".
func packetSlot(words []string) bool {
	n := len(words)
	switch {
	case n == 0:
		return false
	case words[n-1] == "packet":
		return true
	case n == 3 && words[0] == "let" && words[2] == "=":
		return true
	}
	return false
}

// exprCursor is where the cursor is in an unfinished expression.
type exprCursor struct {
	head  string // everything before the layer being typed
	layer string // the layer's name as typed so far
	open  bool   // the cursor is inside the layer's parentheses
	arg   string // inside them: the argument being typed
}

// parseExprCursor splits an unfinished expression at its last top-level
// '/' and, inside parentheses, at the last ','. ok is false where nothing
// can be offered: inside quotes, brackets or after a value's '='.
func parseExprCursor(expr string) (ec exprCursor, ok bool) {
	depth, quote, lastSlash, open, lastComma := 0, byte(0), -1, -1, -1
	for i := 0; i < len(expr); i++ {
		ch := expr[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '(' || ch == '[' || ch == '{':
			if depth == 0 && ch == '(' {
				open, lastComma = i, i
			}
			depth++
		case ch == ')' || ch == ']' || ch == '}':
			depth--
			if depth < 0 {
				return ec, false
			}
		case ch == '/' && depth == 0:
			lastSlash, open = i, -1
		case ch == ',' && depth == 1:
			lastComma = i
		}
	}
	if quote != 0 {
		return ec, false
	}
	switch {
	case depth == 0:
		seg := expr[lastSlash+1:]
		if strings.ContainsAny(seg, "()[]{}") {
			return ec, false // a finished layer: '/' comes next
		}
		return exprCursor{head: expr[:lastSlash+1], layer: seg}, true
	case depth == 1 && open >= 0:
		arg := strings.TrimLeft(expr[lastComma+1:], " ")
		if strings.ContainsAny(arg, "=\"'([{") {
			return ec, false
		}
		return exprCursor{head: expr[:len(expr)-len(arg)], layer: strings.TrimSpace(expr[lastSlash+1 : open]), open: true, arg: arg}, true
	}
	return ec, false
}

// packetExpr offers the candidates for the expression word c.cur, which
// starts at c.start; editorStart is where the line editor's word begins
// (after the last space or comma), so each suggestion is cut to start there.
func (c *completer) packetExpr(editorStart int) {
	ec, ok := parseExprCursor(c.cur)
	if !ok {
		return
	}
	cut := max(0, editorStart-c.start)
	offer := func(text, desc string) {
		if cut > len(text) {
			return
		}
		c.out = append(c.out, Suggestion{Text: text[cut:], Desc: desc, Start: c.start + cut})
	}
	if ec.open {
		def := packet.Lookup(ec.layer)
		if def == nil {
			return
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(strings.ToLower(f.Name), strings.ToLower(ec.arg)) {
				offer(ec.head+f.Name+"=", def.Name+" field")
			}
		}
		return
	}
	if strings.HasPrefix(ec.layer, "$") {
		var names []string
		for name := range c.s.Vars {
			if !strings.Contains(name, ".") && strings.HasPrefix("$"+name, ec.layer) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			offer(ec.head+"$"+n, "packet kept with let")
		}
		return
	}
	for _, def := range packet.Layers() {
		if strings.HasPrefix(strings.ToLower(def.Name), strings.ToLower(ec.layer)) {
			offer(ec.head+def.Name+"(", def.Summary)
		}
	}
	if ec.head == "" && ec.layer == "" {
		var names []string
		for name := range c.s.Vars {
			if !strings.Contains(name, ".") {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			offer("$"+n, "packet kept with let")
		}
	}
}
