// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"slices"
	"testing"
)

// Words written by record split back to the same words.
func TestJoinWordsRoundTrip(t *testing.T) {
	for _, words := range [][]string{
		{"expect", "payload", "contains", "a b"},
		{"expect", "error", "contains", `say "hi"`},
		{"expect", "error", "contains", "it's"},
		{"expect", "error", "contains", "a;b#c"},
		{"map", "lookup", "fx/flows", "key", "{saddr: 10.0.0.1, sport: 80}"},
		{"expect", "map", "fx/flows", "key", "{saddr: 1}", "value", `{comment: "a b", tags: [1, 2]}`},
		{"expect", "packet", `Ether()/IPv4(ttl=64)/Raw(load="it's")`},
		{"let", "f", "=", `Raw("x")`},
		{"x", ""},
		{"ends", `in\`},
	} {
		line := joinWords(words)
		got, err := Split(line)
		if err != nil || len(got) != 1 || !slices.Equal(got[0], words) {
			t.Errorf("joinWords(%q) = %q, which splits to %q (%v)", words, line, got, err)
		}
		if text, more := Continues(line); more || text != line {
			t.Errorf("joinWords(%q) = %q continues onto the next line", words, line)
		}
	}
}

func TestStableErrorText(t *testing.T) {
	root := "/sys/fs/bpf/bpfsh-test-123"
	cases := []struct{ msg, want string }{
		{"map lookup: key not found in map flows (key {saddr: 7, sport: 0, pad: 0})", "map lookup: key not found in map flows (key {saddr: 7, sport: 0, pad: 0})"},
		{"map lookup: nothing is pinned at " + root + "/fx/nosuch; 'ls " + root + "/fx' shows what is", "map lookup: nothing is pinned at"},
		{"prog show: 2 programs match name x (ids 812, 813); name one by id or pinned path", "prog show: 2 programs match name x ("},
		{"load /tmp/x/y.o: no such file; check the path", "no such file; check the path"},
		{"/a/b", "/a/b"},
		{"first line\nverifier log", "first line"},
	}
	for _, c := range cases {
		if got := stableErrorText(c.msg, root); got != c.want {
			t.Errorf("stableErrorText(%q) = %q, want %q", c.msg, got, c.want)
		}
	}
}
