// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Messages quote what was typed ("unknown command \"...\""), and what
// was typed can be a 10 MB word. Every error the shell shows goes
// through clipMessage: a run of characters without blanks longer than
// clipWordAt keeps its first clipWordKeep bytes and says how much was
// left out, and a message stays under clipMessageAt bytes in all.
const (
	clipWordAt    = 200
	clipWordKeep  = 60
	clipMessageAt = 4000
)

// clipMessage shortens the overlong words of msg, and msg itself.
func clipMessage(msg string) string {
	if len(msg) <= clipWordAt {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		j := i
		for j < len(msg) && msg[j] != ' ' && msg[j] != '\n' {
			j++
		}
		if word := msg[i:j]; len(word) > clipWordAt {
			// Punctuation that closes the word (a quote, a colon) stays.
			tail := len(word)
			for tail > len(word)-3 && strings.IndexByte(`"':,;)]}`, word[tail-1]) >= 0 {
				tail--
			}
			keep := runeStart(word, clipWordKeep)
			fmt.Fprintf(&b, "%s... (%d more bytes)%s", word[:keep], tail-keep, word[tail:])
		} else {
			b.WriteString(word)
		}
		if j < len(msg) {
			b.WriteByte(msg[j])
			j++
		}
		i = j
	}
	out := b.String()
	if len(out) > clipMessageAt {
		keep := runeStart(out, clipMessageAt-100)
		out = fmt.Sprintf("%s... (%d more bytes)", out[:keep], len(out)-keep)
	}
	return out
}

// runeStart is n, or the start of the rune that straddles byte n.
func runeStart(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}
