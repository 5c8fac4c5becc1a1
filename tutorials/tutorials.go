// SPDX-License-Identifier: Apache-2.0

// Package tutorials holds bpfsh's lessons (the labs) and reads their
// format: each lesson is a folder NN-topic/ with a README in English and
// in Chinese, lesson.bpfsh (directives and set-up lines), check.bpfsh
// (blocks of lines that say what is still missing) and solution.bpfsh.
// FORMAT.md describes the format; the lab commands (commands/lab*.go) run
// the lessons.
package tutorials

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// files is this folder. The pattern is "*" rather than the lesson folders'
// names so that a lesson added later is embedded without editing this
// file, and so that the pattern matches even before any lesson exists
// (a //go:embed pattern that matches nothing does not compile). Names
// starting with '.' or '_' (an author's _all.bpfsh) are left out.
//
//go:embed *
var files embed.FS

// Files is every lesson folder (and the index READMEs) built into bpfsh.
func Files() fs.FS { return files }

// Lessons parses every lesson built into bpfsh, in number order.
func Lessons() ([]*Lesson, error) { return Load(files) }

// lessonDir is a lesson folder's name: two digits, '-', a topic.
var lessonDir = regexp.MustCompile(`^([0-9]{2})-[a-z0-9][a-z0-9-]*$`)

// IsLessonDir reports whether name is a lesson folder's name (01-hello).
func IsLessonDir(name string) bool { return lessonDir.MatchString(name) }

// Lesson is one parsed lesson folder.
type Lesson struct {
	// Number is the lesson's number, from its folder's name.
	Number int
	// Dir is the folder's name, e.g. "01-hello".
	Dir string
	// Title is what lab list shows.
	Title Text
	// Creates are the names under the pin root the lesson makes, which
	// lab reset removes.
	Creates []string
	// Netns are the network namespaces the lesson makes, which lab reset
	// removes.
	Netns []string
	// Needs are the Debian packages the lesson needs.
	Needs []string
	// Redis are the ports of the redis-servers the lesson starts with
	// 'redis start port N', which lab reset stops.
	Redis []int
	// Setup is what lab start runs: lesson.bpfsh with its directives
	// blanked out (so line numbers stay the file's).
	Setup Script
	// Checks are check.bpfsh's blocks, in order.
	Checks []Check
	// Solution is solution.bpfsh: the commands the README has the
	// learner type.
	Solution Script
	// Files is the lesson's folder.
	Files fs.FS
	// Borrowed are files of other lessons this one uses (#@ files:
	// ../01-hello/hello.bpf.o), as paths in the lessons' root; lab start
	// copies each into the working directory under its base name.
	Borrowed []string
	// Root is the file system holding every lesson (for Borrowed).
	Root fs.FS
}

// Text is a text in English and in Simplified Chinese.
type Text struct {
	En string
	Zh string
}

// In is the text in lang ("zh-CN" or "en"); English when there is no
// translation.
func (t Text) In(lang string) string {
	if IsChinese(lang) && t.Zh != "" {
		return t.Zh
	}
	return t.En
}

// IsChinese reports whether lang (zh-CN, zh_CN.UTF-8, zh) asks for Chinese.
func IsChinese(lang string) bool {
	return strings.HasPrefix(strings.ToLower(lang), "zh")
}

// Script is bpfsh lines from a file: Text's first line is line First of
// the file Name (e.g. "01-hello/check.bpfsh").
type Script struct {
	Name  string
	First int
	Text  string
}

// Check is one block of check.bpfsh: what is missing while its lines
// fail, and a hint of what to do about it.
type Check struct {
	Missing Text
	Hint    Text
	Script  Script
}

// Load parses every lesson folder at the top of fsys (NN-topic), in
// number order. Every malformed lesson is an error naming file:line;
// they are all returned together.
func Load(fsys fs.FS) ([]*Lesson, error) {
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read the lessons: %w", err)
	}
	var (
		lessons []*Lesson
		errs    []error
		seen    = map[int]string{}
	)
	for _, e := range ents {
		if !e.IsDir() || !IsLessonDir(e.Name()) {
			continue
		}
		l, err := Parse(fsys, e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := seen[l.Number]; dup {
			errs = append(errs, fmt.Errorf("%s: number %02d is %s's too; give each lesson its own", l.Dir, l.Number, other))
			continue
		}
		seen[l.Number] = l.Dir
		lessons = append(lessons, l)
	}
	slices.SortFunc(lessons, func(a, b *Lesson) int { return a.Number - b.Number })
	return lessons, errors.Join(errs...)
}

// Parse reads the lesson in the folder dir of fsys.
func Parse(fsys fs.FS, dir string) (*Lesson, error) {
	m := lessonDir.FindStringSubmatch(dir)
	if m == nil {
		return nil, fmt.Errorf("%s: a lesson folder is named NN-topic (two digits, '-', lower-case letters, digits and '-'), e.g. 01-hello", dir)
	}
	n, _ := strconv.Atoi(m[1])
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	l := &Lesson{Number: n, Dir: dir, Files: sub, Root: fsys}
	for _, f := range []string{"README.md", "README.zh-CN.md"} {
		if _, err := fs.Stat(sub, f); err != nil {
			return nil, fmt.Errorf("%s: there is no %s; every lesson has one", dir, f)
		}
	}
	if err := l.parseLesson(); err != nil {
		return nil, err
	}
	if err := l.parseChecks(); err != nil {
		return nil, err
	}
	if err := l.parseSolution(); err != nil {
		return nil, err
	}
	return l, nil
}

// borrow records files of other lessons (paths relative to this lesson's
// folder, e.g. ../01-hello/hello.bpf.o) that must exist among the lessons.
func (l *Lesson) borrow(names []string) error {
	for _, name := range names {
		p := path.Join(l.Dir, name)
		if !fs.ValidPath(p) || !strings.HasPrefix(name, "../") {
			return fmt.Errorf("files: %q is not a file of another lesson (write ../NN-topic/FILE)", name)
		}
		if st, err := fs.Stat(l.Root, p); err != nil || st.IsDir() {
			return fmt.Errorf("files: %s is not a file among the lessons", p)
		}
		l.Borrowed = append(l.Borrowed, p)
	}
	return nil
}

// readLines reads file of the lesson as lines, and its name for messages.
func (l *Lesson) readLines(file string) (name string, lines []string, err error) {
	name = path.Join(l.Dir, file)
	b, err := fs.ReadFile(l.Files, file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil, fmt.Errorf("%s: missing; every lesson has one (see tutorials/FORMAT.md)", name)
		}
		return name, nil, fmt.Errorf("read %s: %w", name, err)
	}
	text := strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	return name, strings.Split(text, "\n"), nil
}

// directive reads "#@ key: value" and reports whether line is one. A
// line starting "#@" that is not of that form is an error.
func directive(line string) (key, value string, ok bool, err error) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), "#@")
	if !found {
		return "", "", false, nil
	}
	key, value, found = strings.Cut(rest, ":")
	key = strings.TrimSpace(key)
	if !found || key == "" || strings.ContainsAny(key, " \t") {
		return "", "", true, fmt.Errorf("%q is not a directive: write '#@ key: value'", strings.TrimSpace(line))
	}
	return key, strings.TrimSpace(value), true, nil
}

// isCommand reports whether line holds a command (not blank, not a comment).
func isCommand(line string) bool {
	t := strings.TrimSpace(line)
	return t != "" && !strings.HasPrefix(t, "#")
}

// listValue splits a directive's list (blanks or commas between names);
// "none" is the empty list.
func listValue(v string) []string {
	words := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(words) == 1 && words[0] == "none" {
		return nil
	}
	return words
}

// validName is what creates: and netns: accept: one path element of
// letters, digits, '_', '-' and '.', not starting with '.', so that
// lab reset never reaches outside the pin root or /run/netns.
var validName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*$`)

func (l *Lesson) parseLesson() error {
	name, lines, err := l.readLines("lesson.bpfsh")
	if err != nil {
		return err
	}
	setup := make([]string, len(lines))
	for i, line := range lines {
		at := fmt.Sprintf("%s:%d", name, i+1)
		key, value, ok, err := directive(line)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if !ok {
			setup[i] = line
			continue
		}
		switch key {
		case "title":
			l.Title.En, err = once(l.Title.En, key, value)
		case "title.zh-CN":
			l.Title.Zh, err = once(l.Title.Zh, key, value)
		case "creates", "netns":
			for _, w := range listValue(value) {
				if !validName.MatchString(w) {
					return fmt.Errorf("%s: %s: %q is not a name (letters, digits, '_', '-', '.'; no '/')", at, key, w)
				}
				if key == "creates" {
					l.Creates = append(l.Creates, w)
				} else {
					l.Netns = append(l.Netns, w)
				}
			}
		case "needs":
			l.Needs = append(l.Needs, listValue(value)...)
		case "redis":
			for _, w := range listValue(value) {
				port, perr := strconv.Atoi(w)
				if perr != nil || port < 1 || port > 65535 {
					return fmt.Errorf("%s: redis: %q is not a TCP port (1 to 65535)", at, w)
				}
				l.Redis = append(l.Redis, port)
			}
		case "files":
			err = l.borrow(listValue(value))
		default:
			return fmt.Errorf("%s: unknown directive %q; lesson.bpfsh has title, title.zh-CN, creates, netns, needs, redis and files", at, key)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	switch {
	case l.Title.En == "":
		return fmt.Errorf("%s: no '#@ title:' line; every lesson has a title", name)
	case l.Title.Zh == "":
		return fmt.Errorf("%s: no '#@ title.zh-CN:' line; every lesson has a Chinese title", name)
	}
	l.Setup = Script{Name: name, First: 1, Text: strings.Join(setup, "\n")}
	return nil
}

// once is value for a directive that may be given once.
func once(old, key, value string) (string, error) {
	switch {
	case old != "":
		return "", fmt.Errorf("a second '#@ %s:'; give it once", key)
	case value == "":
		return "", fmt.Errorf("'#@ %s:' is empty", key)
	}
	return value, nil
}

func (l *Lesson) parseChecks() error {
	name, lines, err := l.readLines("check.bpfsh")
	if err != nil {
		return err
	}
	var (
		cur   *Check
		start int      // line of cur's '#@ missing:'
		body  []string // cur's lines, directives blanked
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		at := fmt.Sprintf("%s:%d", name, start)
		for _, d := range []struct{ key, value string }{
			{"missing.zh-CN", cur.Missing.Zh}, {"hint", cur.Hint.En}, {"hint.zh-CN", cur.Hint.Zh},
		} {
			if d.value == "" {
				return fmt.Errorf("%s: this block has no '#@ %s:' line; each block has missing, missing.zh-CN, hint and hint.zh-CN", at, d.key)
			}
		}
		if !slices.ContainsFunc(body, isCommand) {
			return fmt.Errorf("%s: this block has no lines to run; follow its texts with the lines that check it (usually expect lines)", at)
		}
		cur.Script = Script{Name: name, First: start, Text: strings.Join(body, "\n")}
		l.Checks = append(l.Checks, *cur)
		return nil
	}
	for i, line := range lines {
		at := fmt.Sprintf("%s:%d", name, i+1)
		key, value, ok, err := directive(line)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if !ok {
			if cur == nil {
				if isCommand(line) {
					return fmt.Errorf("%s: a line before the first '#@ missing:'; every line of check.bpfsh belongs to a block that says what it checks", at)
				}
				continue
			}
			body = append(body, line)
			continue
		}
		if key == "missing" {
			if err := finish(); err != nil {
				return err
			}
			if value == "" {
				return fmt.Errorf("%s: '#@ missing:' is empty; say what is still missing, in words", at)
			}
			cur, start, body = &Check{Missing: Text{En: value}}, i+1, []string{""}
			continue
		}
		if cur == nil {
			return fmt.Errorf("%s: '#@ %s:' before the first '#@ missing:'; a block starts with its missing text", at, key)
		}
		var field *string
		switch key {
		case "missing.zh-CN":
			field = &cur.Missing.Zh
		case "hint":
			field = &cur.Hint.En
		case "hint.zh-CN":
			field = &cur.Hint.Zh
		default:
			return fmt.Errorf("%s: unknown directive %q; check.bpfsh has missing, missing.zh-CN, hint and hint.zh-CN", at, key)
		}
		if value == "" {
			return fmt.Errorf("%s: '#@ %s:' is empty", at, key)
		}
		// A repeated directive continues the text on a new line.
		if *field != "" {
			*field += "\n"
		}
		*field += value
		body = append(body, "")
	}
	if err := finish(); err != nil {
		return err
	}
	if len(l.Checks) == 0 {
		return fmt.Errorf("%s: no blocks; a check is blocks starting with '#@ missing:'", name)
	}
	return nil
}

func (l *Lesson) parseSolution() error {
	name, lines, err := l.readLines("solution.bpfsh")
	if err != nil {
		return err
	}
	for i, line := range lines {
		if _, _, ok, _ := directive(line); ok {
			return fmt.Errorf("%s:%d: solution.bpfsh takes no directives, only the commands the README has the learner type", name, i+1)
		}
	}
	if !slices.ContainsFunc(lines, isCommand) {
		return fmt.Errorf("%s: no commands; it holds the commands the README has the learner type", name)
	}
	l.Solution = Script{Name: name, First: 1, Text: strings.Join(lines, "\n")}
	return nil
}
