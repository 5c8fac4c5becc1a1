// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"slices"
	"strings"
	"testing"
)

func TestArgSpec(t *testing.T) {
	sp := argSpec{
		Flags:  []string{"global", "--detail"},
		Valued: []string{"for", "--name"},
		Ref:    []string{"prog"},
		Many:   []string{"set"},
		Need:   map[string]string{"for": "a duration, e.g. for 5s"},
	}
	var got []string
	rest, err := sp.parse([]string{"FILE", "for", "5s", "--name=x", "--name", "y", "prog", "id", "7", "prog", "kv/p", "set", "a=1", "b=2", "global", "more"},
		func(w string, v ...string) error {
			got = append(got, w+"("+strings.Join(v, "|")+")")
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"for(5s)", "--name(x)", "--name(y)", "prog(id|7)", "prog(kv/p)", "set(a=1|b=2)", "global()"}
	if !slices.Equal(got, want) || !slices.Equal(rest, []string{"FILE", "more"}) {
		t.Errorf("got %q rest %q; want %q rest [FILE more]", got, rest, want)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"for"}, "for needs a duration, e.g. for 5s"},
		{[]string{"--name"}, "--name needs a value after it"},
		{[]string{"prog", "id"}, "prog id needs a value after it"},
		{[]string{"set", "global"}, "set needs a value after it"},
	} {
		_, err := sp.parse(c.args, func(string, ...string) error { return nil })
		if err == nil || !IsUsage(err) || err.Error() != c.want {
			t.Errorf("%q: error %v, want usage error %q", c.args, err, c.want)
		}
	}
	sp.Takes = "it takes for and global"
	if _, err := sp.parse([]string{"bogus"}, func(string, ...string) error { return nil }); err == nil || err.Error() != `unexpected "bogus"; it takes for and global` {
		t.Errorf("unexpected word: %v", err)
	}
}

func TestArgSpecTakeAndOther(t *testing.T) {
	sp := argSpec{
		Flags: []string{"bench"},
		Take:  map[string]func([]string) int{"hex": func([]string) int { return 2 }},
		Other: func(a []string) (int, error) {
			if strings.HasPrefix(a[0], "@") {
				return 1, nil
			}
			return 0, Usagef("unknown %q", a[0])
		},
	}
	var got []string
	_, err := sp.parse([]string{"hex", "01", "02", "@f", "bench"}, func(w string, v ...string) error {
		got = append(got, w+"("+strings.Join(v, "|")+")")
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"hex(01|02)", "bench()"}) {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := sp.parse([]string{"bogus"}, func(string, ...string) error { return nil }); err == nil || err.Error() != `unknown "bogus"` {
		t.Errorf("Other's error: %v", err)
	}
}
