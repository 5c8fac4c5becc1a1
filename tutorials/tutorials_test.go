// SPDX-License-Identifier: Apache-2.0

package tutorials

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestEmbeddedLessons parses every lesson built into bpfsh: a lesson with a
// mistake in its format fails here with file:line.
func TestEmbeddedLessons(t *testing.T) {
	lessons, err := Lessons()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fs.ReadDir(Files(), ".")
	if err != nil {
		t.Fatal(err)
	}
	folders := 0
	for _, e := range ents {
		if e.IsDir() && IsLessonDir(e.Name()) {
			folders++
		}
	}
	if len(lessons) != folders {
		t.Fatalf("parsed %d lessons from %d lesson folders", len(lessons), folders)
	}
	for i, l := range lessons {
		if i > 0 && l.Number <= lessons[i-1].Number {
			t.Errorf("%s comes after %s", l.Dir, lessons[i-1].Dir)
		}
		if len(l.Checks) == 0 || l.Title.En == "" || l.Title.Zh == "" {
			t.Errorf("%s: parsed without checks or titles: %+v", l.Dir, l)
		}
	}
}

// sample is a well-formed lesson; each case below breaks one file of it.
func sample() fstest.MapFS {
	return fstest.MapFS{
		"07-sample/README.md":       {Data: []byte("# Sample\n")},
		"07-sample/README.zh-CN.md": {Data: []byte("# 示例\n")},
		"07-sample/lesson.bpfsh": {Data: []byte(`#@ title: A sample
#@ title.zh-CN: 示例
#@ creates: one, two
#@ netns: none
#@ needs: memcached
# set up
load one.o name one
`)},
		"07-sample/check.bpfsh": {Data: []byte(`# the check
#@ missing: one is not loaded.
#@ missing.zh-CN: 没有加载 one。
#@ hint: type 'load one.o'.
#@ hint: it is in this folder.
#@ hint.zh-CN: 输入 'load one.o'。
expect map one/m count 1

#@ missing: two is not loaded.
#@ missing.zh-CN: 没有加载 two。
#@ hint: type 'load two.o'.
#@ hint.zh-CN: 输入 'load two.o'。
expect map two/m \
  count 1
`)},
		"07-sample/solution.bpfsh": {Data: []byte("load two.o name two\n")},
		"07-sample/one.o":          {Data: []byte("not really")},
		"notalesson/README.md":     {Data: []byte("skipped")},
	}
}

func TestParse(t *testing.T) {
	lessons, err := Load(sample())
	if err != nil {
		t.Fatal(err)
	}
	if len(lessons) != 1 {
		t.Fatalf("want 1 lesson, got %d", len(lessons))
	}
	l := lessons[0]
	if l.Number != 7 || l.Dir != "07-sample" || l.Title.In("en") != "A sample" || l.Title.In("zh_CN.UTF-8") != "示例" {
		t.Errorf("lesson: %d %s %+v", l.Number, l.Dir, l.Title)
	}
	if strings.Join(l.Creates, ",") != "one,two" || l.Netns != nil || strings.Join(l.Needs, ",") != "memcached" {
		t.Errorf("creates %q netns %q needs %q", l.Creates, l.Netns, l.Needs)
	}
	// Directives are blanked, so line 7 of the set-up is line 7 of the file.
	if lines := strings.Split(l.Setup.Text, "\n"); len(lines) != 7 || lines[6] != "load one.o name one" || lines[0] != "" {
		t.Errorf("set-up: %q", l.Setup.Text)
	}
	if len(l.Checks) != 2 {
		t.Fatalf("want 2 checks, got %d", len(l.Checks))
	}
	c := l.Checks[0]
	if c.Missing.En != "one is not loaded." || c.Hint.En != "type 'load one.o'.\nit is in this folder." || c.Hint.In("zh-CN") != "输入 'load one.o'。" {
		t.Errorf("first check: %+v", c)
	}
	if c.Script.Name != "07-sample/check.bpfsh" || c.Script.First != 2 {
		t.Errorf("first check's script: %s:%d", c.Script.Name, c.Script.First)
	}
	if lines := strings.Split(c.Script.Text, "\n"); lines[5] != "expect map one/m count 1" {
		t.Errorf("line 7 of the file is not line 6 of the block: %q", lines)
	}
	if c2 := l.Checks[1]; c2.Script.First != 9 || !strings.HasSuffix(c2.Script.Text, "expect map two/m \\\n  count 1") {
		t.Errorf("second check's script at line %d: %q", c2.Script.First, c2.Script.Text)
	}
	if l.Solution.Text != "load two.o name two" {
		t.Errorf("solution: %q", l.Solution.Text)
	}
	if b, err := fs.ReadFile(l.Files, "one.o"); err != nil || string(b) != "not really" {
		t.Errorf("the lesson's files: %q %v", b, err)
	}
}

// TestParseErrors: each mistake is one error naming file:line.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, file, data, want string
	}{
		{"no title", "lesson.bpfsh", "#@ title.zh-CN: 示例\n", "07-sample/lesson.bpfsh: no '#@ title:' line"},
		{"no Chinese title", "lesson.bpfsh", "#@ title: A\n", "no '#@ title.zh-CN:' line"},
		{"unknown directive", "lesson.bpfsh", "#@ title: A\n#@ title.zh-CN: 示例\n#@ create: x\n", `07-sample/lesson.bpfsh:3: unknown directive "create"`},
		{"not a directive", "lesson.bpfsh", "#@ title A\n", "07-sample/lesson.bpfsh:1: \"#@ title A\" is not a directive"},
		{"two titles", "lesson.bpfsh", "#@ title: A\n#@ title: B\n", "07-sample/lesson.bpfsh:2: a second '#@ title:'"},
		{"bad redis port", "lesson.bpfsh", "#@ title: A\n#@ title.zh-CN: 示例\n#@ redis: 70000\n", `07-sample/lesson.bpfsh:3: redis: "70000" is not a TCP port`},
		{"bad creates", "lesson.bpfsh", "#@ title: A\n#@ title.zh-CN: 示例\n#@ creates: ../etc\n", `07-sample/lesson.bpfsh:3: creates: "../etc" is not a name`},
		{"line before a block", "check.bpfsh", "# ok\nexpect map a count 1\n", "07-sample/check.bpfsh:2: a line before the first '#@ missing:'"},
		{"no hint", "check.bpfsh", "#@ missing: a\n#@ missing.zh-CN: 甲\n#@ hint.zh-CN: 乙\nexpect map a count 1\n", "07-sample/check.bpfsh:1: this block has no '#@ hint:' line"},
		{"empty block", "check.bpfsh", "#@ missing: a\n#@ missing.zh-CN: 甲\n#@ hint: b\n#@ hint.zh-CN: 乙\n\n#@ missing: c\n", "07-sample/check.bpfsh:1: this block has no lines to run"},
		{"hint before missing", "check.bpfsh", "#@ hint: b\n", "07-sample/check.bpfsh:1: '#@ hint:' before the first '#@ missing:'"},
		{"no blocks", "check.bpfsh", "# nothing\n", "07-sample/check.bpfsh: no blocks"},
		{"directive in solution", "solution.bpfsh", "load a.o\n#@ title: x\n", "07-sample/solution.bpfsh:2: solution.bpfsh takes no directives"},
		{"empty solution", "solution.bpfsh", "# later\n", "07-sample/solution.bpfsh: no commands"},
		{"no Chinese README", "README.zh-CN.md", "", "07-sample: there is no README.zh-CN.md"},
		{"no check", "check.bpfsh", "", "07-sample/check.bpfsh: missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := sample()
			if c.data == "" {
				delete(fsys, "07-sample/"+c.file)
			} else {
				fsys["07-sample/"+c.file] = &fstest.MapFile{Data: []byte(c.data)}
			}
			_, err := Load(fsys)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("want one line, got %q", err)
			}
		})
	}
}

// TestParseRedis: '#@ redis:' lists the ports of the redis-servers the
// lesson starts, which lab reset stops.
func TestParseRedis(t *testing.T) {
	fsys := sample()
	fsys["07-sample/lesson.bpfsh"] = &fstest.MapFile{Data: []byte("#@ title: A\n#@ title.zh-CN: 示例\n#@ redis: 6390, 6391\n#@ redis: 6392\n")}
	lessons, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(lessons[0].Redis); got != "[6390 6391 6392]" {
		t.Errorf("redis ports %s", got)
	}
}

func TestLoadDuplicateNumber(t *testing.T) {
	fsys := sample()
	for name, f := range sample() {
		if rest, ok := strings.CutPrefix(name, "07-sample/"); ok {
			fsys["07-other/"+rest] = f
		}
	}
	lessons, err := Load(fsys)
	if err == nil || !strings.Contains(err.Error(), "07-sample: number 07 is 07-other's too") {
		t.Fatalf("want a duplicate number error, got %v", err)
	}
	if len(lessons) != 1 {
		t.Errorf("the first of the two still loads: got %d lessons", len(lessons))
	}
}
