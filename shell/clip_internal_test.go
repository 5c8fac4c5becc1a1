// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"strings"
	"testing"
)

func TestClipMessage(t *testing.T) {
	huge := strings.Repeat("é", 1<<20)
	got := clipMessage(`unknown command "` + huge + `"; one of: help, load`)
	if len(got) > 200 || !strings.HasPrefix(got, `unknown command "éé`) || !strings.HasSuffix(got, ` more bytes)"; one of: help, load`) {
		t.Errorf("clipMessage = %q", got)
	}
	if !strings.Contains(got, "... (") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("clipMessage cut a rune or did not say so: %q", got)
	}
	short := "ctx: struct __sk_buff has no field \"bogus\"; its fields: " + strings.Repeat("len, mark, ", 100)
	if clipMessage(short) != short {
		t.Errorf("a long message of short words was changed")
	}
	many := strings.Repeat(strings.Repeat("a", 150)+" ", 100)
	if got := clipMessage(many); len(got) > clipMessageAt {
		t.Errorf("a message of %d bytes stays %d bytes", len(many), len(got))
	}
}
