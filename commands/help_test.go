// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/commands"
)

// Every command, at every level, carries what `help CMD` shows: a summary,
// a description and an example that starts with the command's own words.
func TestEveryCommandHasHelp(t *testing.T) {
	var walk func(path []*commands.Command, cs []*commands.Command)
	walk = func(path []*commands.Command, cs []*commands.Command) {
		for _, c := range cs {
			p := append(path[:len(path):len(path)], c)
			name := commands.FullName(p)
			if c.Short == "" {
				t.Errorf("%s has no Short summary", name)
			}
			if c.Subs != nil {
				walk(p, c.Subs)
				continue
			}
			if c.Run == nil {
				t.Errorf("%s has neither Run nor sub-commands", name)
			}
			if c.Long == "" {
				t.Errorf("%s has no Long description", name)
			}
			if !strings.HasPrefix(c.Example, name) {
				t.Errorf("%s: example %q does not start with %q", name, c.Example, name)
			}
		}
	}
	walk(nil, commands.All())
}
