// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"testing"

	"github.com/bpfsh/bpfsh/commands"
)

// TestCompleteModeWords: in a debug session, the session's words complete
// too, and the command table's still do.
func TestCompleteModeWords(t *testing.T) {
	s := testSession("/nonexistent")
	s.Mode = &commands.Mode{Prompt: "(debug x) ", Table: []*commands.Command{
		{Name: "reverse-step", Short: "go back a line"},
		{Name: "reverse-stepi", Short: "go back an instruction"},
		{Name: "step", Short: "next line"},
	}}
	wantTexts(t, s, "reverse-s", "reverse-step", "reverse-stepi")
	wantTexts(t, s, "ste", "step")
	wantTexts(t, s, "ma", "map")
}
