// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// FuzzComplete checks that the completer never panics, whatever the line
// and cursor, and that every suggestion replaces exactly the word the line
// editor will cut at the cursor (so accepting one never mangles the line).
func FuzzComplete(f *testing.F) {
	root := "/nonexistent/bpfsh-fuzz"
	if os.Geteuid() == 0 {
		// With the fixture pinned the fuzzer also reaches the pin, kernel
		// and BTF paths.
		root = bpftest.PinRoot(f)
		if err := os.Mkdir(filepath.Join(root, "fix"), 0o700); err != nil {
			f.Fatal(err)
		}
		bpftest.Fixture(f, filepath.Join(root, "fix"))
	}
	s := testSession(root)
	for _, seed := range []string{
		"",
		"m l",
		"map lookup fix/flows key {saddr: 1, s",
		"map update fix/flows key {saddr: 1} value {comment: \"a, b\", b",
		"map update pinned " + root + "/fix/flows key {sp",
		"map show pinned " + root + "/fix/fl",
		"map show fix/",
		"prog show name xdp",
		"map show id 1",
		"help; map sh",
		`load "a b.o" name x`,
		"help # comment",
		"map lookup x key [1, {a: {b",
		"net show dev l",
		"-j map show -",
		"map update x/y key 0x01 0 0 0 value hex 01",
		"help\tma\nmap\rsh",
		"map lookup fix/flows key {}}}{{",
		"frob pinned /sys/fs/b",
	} {
		f.Add(seed, len(seed))
		f.Add(seed, len(seed)/2)
	}
	f.Fuzz(func(t *testing.T, line string, cursor int) {
		got := complete(s, line, cursor)
		cur := clampCursor(line, cursor)
		wordStart := strings.LastIndexAny(line[:cur], wordSeparators) + 1
		for _, sg := range got {
			if sg.Start != wordStart {
				t.Fatalf("%q at %d: %+v starts at %d; the line editor cuts the word at %d", line, cursor, sg, sg.Start, wordStart)
			}
			if !strings.HasPrefix(sg.Text, line[sg.Start:cur]) {
				t.Fatalf("%q at %d: %+v does not extend %q", line, cursor, sg, line[sg.Start:cur])
			}
		}
	})
}
