// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/kv"
	"github.com/bpfsh/bpfsh/bpf/vethns"
	"github.com/bpfsh/bpfsh/tutorials"
)

// The labs: numbered lessons (tutorials/NN-topic) the learner follows in
// the shell. lab start copies a lesson's files into a working directory
// under the state directory and runs its set-up; lab check runs its check
// blocks against the learner's session as it is now and says, in words,
// what is still missing; lab reset removes what the lesson made.
var labCmd = &Command{
	Name:  "lab",
	Short: "hands-on lessons: list, start, show, check, hint, reset",
	Long: "lab is bpfsh's learning path: numbered lessons from a first BPF program to debugging the in-kernel database programs, " +
		"each with a README to follow at the prompt and a check that says what is still missing. 'lab list' shows them with what " +
		"is done; 'lab start N' shows lesson N, copies its files into <state>/labs/NN-topic and makes that the working directory, " +
		"and sets up what it needs; 'lab check' runs the lesson's check against this session (its pin root, what is loaded now); " +
		"'lab hint' says what to do next; 'lab reset' removes what the lesson made. Progress is kept in <state>/labs/progress.json. " +
		"--lang zh-CN (or a zh_CN locale) gives the Chinese texts. " + LabsEnv + "=DIR uses the lessons in DIR instead of the built-in ones.",
	Example: "lab start 1",
	Subs: []*Command{
		{
			Name:    "list",
			Usage:   "[--lang zh-CN]",
			Short:   "the lessons, which are done, and the current one",
			Long:    "list shows every lesson: its number, title, whether its check has passed (done), and which lesson was started last (current).",
			Example: "lab list",
			Run:     runLabList,
		},
		{
			Name:  "start",
			Usage: "N [--lang zh-CN]",
			Short: "begin lesson N: show it, copy its files, set it up",
			Long: "start shows lesson N's title and the beginning of its README, copies the lesson's files (README, objects, C sources, " +
				"scripts) into <state>/labs/NN-topic and makes it the shell's working directory so that the names in the lesson work, " +
				"and runs the lesson's set-up (e.g. loading an object). It begins afresh: what an earlier start of the lesson made " +
				"under the pin root is removed first. Packages the lesson needs that are not installed are named with the apt-get line. " +
				"N is the number (1), the folder (01-hello) or the topic (hello).",
			Example: "lab start 1",
			Run:     runLabStart,
		},
		{
			Name:    "show",
			Usage:   "[N] [--lang zh-CN]",
			Short:   "print the whole README of the current lesson (or of N)",
			Long:    "show prints the README of the lesson started last, or of lesson N, in English or, with --lang zh-CN, in Chinese.",
			Example: "lab show",
			Run:     runLabShow,
		},
		{
			Name:  "check",
			Usage: "[N] [--lang zh-CN]",
			Short: "say what is still missing in the current lesson, or mark it done",
			Long: "check runs the current lesson's check (or lesson N's) against this session as it is now: its pin root, what is " +
				"loaded, its variables. The check is blocks run in order; at the first that fails, check fails and says what is still " +
				"missing, in words, and how many of the checks pass, with the line that failed below. When every block passes the " +
				"lesson is done, and lab list shows it.",
			Example: "lab check",
			Run:     runLabCheck,
		},
		{
			Name:    "hint",
			Usage:   "[N] [--lang zh-CN]",
			Short:   "what to do next in the current lesson",
			Long:    "hint runs the check as lab check does and prints the hint of the first block that fails: what to type or look at.",
			Example: "lab hint",
			Run:     runLabHint,
		},
		{
			Name:  "reset",
			Usage: "[N]",
			Short: "remove what the current lesson (or N) made",
			Long: "reset unloads the names the lesson says it creates under the pin root, removes the network namespaces it says " +
				"it makes, and removes its working directory (<state>/labs/NN-topic), and nothing else. Whether it was done stays recorded.",
			Example: "lab reset",
			Run:     runLabReset,
		},
	},
}

// labArgs reads [N] [--lang L] and returns the lesson (N, or the one
// started last) and the language.
func labArgs(s *Session, cmd string, args []string) (*tutorials.Lesson, string, error) {
	lang, args, err := labLang(args)
	if err != nil {
		return nil, "", err
	}
	if len(args) > 1 {
		return nil, "", Usagef("lab %s takes at most one lesson number", cmd)
	}
	lessons, err := labLessons()
	if err != nil {
		return nil, "", err
	}
	arg := ""
	if len(args) == 1 {
		arg = args[0]
	} else {
		p, err := readProgress(s)
		if err != nil {
			return nil, "", err
		}
		if p.Current == "" {
			return nil, "", Usagef("%s", tr(lang, "no lesson started yet: 'lab start N' starts one ('lab list' shows them)",
				"还没有开始任何一课：输入 'lab start N' 开始（'lab list' 列出所有课程）"))
		}
		arg = p.Current
	}
	l, err := findLesson(lessons, arg)
	return l, lang, err
}

func runLabList(s *Session, args []string) (Result, error) {
	lang, args, err := labLang(args)
	if err != nil {
		return nil, err
	}
	if len(args) > 0 {
		return nil, Usagef("lab list takes no arguments but --lang")
	}
	lessons, err := labLessons()
	if err != nil {
		return nil, err
	}
	if len(lessons) == 0 {
		return &Message{Text: tr(lang, "this bpfsh has no lessons", "这个 bpfsh 里没有课程")}, nil
	}
	p, err := readProgress(s)
	if err != nil {
		return nil, err
	}
	type row struct {
		Number  int    `json:"number"`
		Folder  string `json:"folder"`
		Title   string `json:"title"`
		Done    bool   `json:"done"`
		Current bool   `json:"current"`
	}
	var rows []row
	t := &Table{Columns: []string{"n", "title", "status"}}
	for _, l := range lessons {
		_, done := p.Done[l.Dir]
		r := row{Number: l.Number, Folder: l.Dir, Title: l.Title.In(lang), Done: done, Current: l.Dir == p.Current}
		rows = append(rows, r)
		status := tr(lang, "not done", "未完成")
		if done {
			status = tr(lang, "done", "已完成")
		}
		if r.Current {
			status = tr(lang, "current, ", "当前，") + status
		}
		t.Rows = append(t.Rows, []string{fmt.Sprint(l.Number), r.Title, status})
	}
	t.JSON = rows
	return t, nil
}

func runLabStart(s *Session, args []string) (Result, error) {
	lang, args, err := labLang(args)
	if err != nil {
		return nil, err
	}
	if len(args) != 1 {
		return nil, Usagef("lab start takes the lesson to start: its number, e.g. lab start 1")
	}
	lessons, err := labLessons()
	if err != nil {
		return nil, err
	}
	l, err := findLesson(lessons, args[0])
	if err != nil {
		return nil, err
	}
	if s.RunLines == nil {
		return nil, errors.New("lab start: this session cannot run scripts (it is not a shell's)")
	}
	p, err := readProgress(s)
	if err != nil {
		return nil, err
	}
	// Begin afresh: what an earlier start made would make the set-up fail.
	removed, err := removeCreated(s, l, lang)
	if err != nil {
		return nil, fmt.Errorf("lab start %d: remove what an earlier start made: %w", l.Number, err)
	}
	dir := workDir(s, l)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab start %d: make the working directory: %w", l.Number, err)
	}
	if err := copyLesson(l, dir); err != nil {
		return nil, fmt.Errorf("lab start %d: copy the lesson's files into %s: %w", l.Number, dir, err)
	}
	if wd, err := os.Getwd(); err == nil && !within(wd, labsDir(s)) {
		p.From = wd
	}
	p.Current = l.Dir
	if err := p.save(s); err != nil {
		return nil, err
	}

	var b strings.Builder
	fmt.Fprintf(&b, tr(lang, "Lesson %d: %s\n\n", "第 %d 课：%s\n\n"), l.Number, l.Title.In(lang))
	readme := filepath.Join(dir, readmeName(lang))
	if intro := readmeIntro(l, lang); intro != "" {
		b.WriteString(intro + "\n\n")
	}
	fmt.Fprintf(&b, tr(lang, "The whole lesson: %s (or 'lab show').\n", "完整的课程：%s（或输入 'lab show'）。\n"), readme)
	// The process's working directory is the shell's: moving it makes
	// the lesson's relative names (load hello.o) work at the prompt. A
	// one-shot command ends here, so it says where to go instead.
	if s.OneShot {
		fmt.Fprintf(&b, tr(lang, "Its files are in %s: cd there first, so that the names in the lesson work.\n",
			"本课的文件在 %s：请先 cd 到那里，课程里的文件名才能用。\n"), dir)
	} else {
		if err := os.Chdir(dir); err != nil {
			return nil, fmt.Errorf("lab start %d: enter %s: %w", l.Number, dir, err)
		}
		fmt.Fprintf(&b, tr(lang, "Its files are in %s, the shell's working directory now.\n",
			"本课的文件在 %s，它现在是 shell 的工作目录。\n"), dir)
	}
	if len(removed) > 0 {
		fmt.Fprintf(&b, tr(lang, "Removed what an earlier start made: %s\n", "已删除上次开始时创建的：%s\n"), strings.Join(removed, "; "))
	}

	missing, pkgErr := missingPackages(l.Needs)
	needs := ""
	switch {
	case pkgErr != nil:
		needs = fmt.Sprintf(tr(lang, "It needs the packages %s: %v.\n", "本课需要软件包 %s：%v。\n"), strings.Join(l.Needs, ", "), pkgErr)
	case len(missing) > 0:
		needs = fmt.Sprintf(tr(lang, "It needs %s, not installed here: %s\n", "本课需要 %s，这里还没有安装：%s\n"), strings.Join(missing, ", "), aptLine(missing))
	}

	out, err := runIn(dir, func() (string, error) {
		return s.RunLines(Lines(l.Setup))
	})
	if err != nil {
		msg := fmt.Sprintf(tr(lang, "lab start %d: the lesson's set-up failed: %v", "lab start %d：本课的准备步骤失败：%v"), l.Number, err)
		if needs != "" {
			msg += "; " + strings.TrimSuffix(needs, "\n")
		}
		return nil, errors.New(msg)
	}
	if out = strings.TrimRight(out, "\n"); out != "" {
		b.WriteString(tr(lang, "Set up:\n", "准备：\n"))
		for line := range strings.Lines(out) {
			b.WriteString("  " + line)
		}
		b.WriteString("\n")
	}
	b.WriteString(needs)
	b.WriteString(tr(lang, "Follow the lesson, then type 'lab check' to see what is still missing ('lab hint' when stuck).",
		"按课程操作，然后输入 'lab check' 查看还缺什么（卡住时输入 'lab hint'）。"))
	return &Text{Body: b.String(), JSON: map[string]any{
		"number": l.Number, "folder": l.Dir, "title": l.Title.In(lang), "readme": readme, "dir": dir,
		"setup": out, "missing_packages": missing, "removed": removed,
	}}, nil
}

// readmeName is the README in lang.
func readmeName(lang string) string {
	if tutorials.IsChinese(lang) {
		return "README.zh-CN.md"
	}
	return "README.md"
}

// readmeIntro is the README's beginning: up to its first "## " heading,
// at most 20 lines, without its "# " title (start prints the title).
func readmeIntro(l *tutorials.Lesson, lang string) string {
	b, err := fs.ReadFile(l.Files, readmeName(lang))
	if err != nil {
		return ""
	}
	var lines []string
	for i, line := range strings.Split(string(b), "\n") {
		if i == 0 && strings.HasPrefix(line, "# ") {
			continue
		}
		if strings.HasPrefix(line, "## ") || len(lines) == 20 {
			break
		}
		lines = append(lines, line)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

func runLabShow(s *Session, args []string) (Result, error) {
	l, lang, err := labArgs(s, "show", args)
	if err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(l.Files, readmeName(lang))
	if err != nil {
		return nil, fmt.Errorf("lab show %d: %w", l.Number, err)
	}
	return &Text{Body: strings.TrimRight(string(b), "\n")}, nil
}

// checkRun is what running a lesson's check found.
type checkRun struct {
	passed int        // blocks that passed before the first that failed
	failed *LineError // the first failure, nil when every block passed
}

// runChecks runs l's check blocks in order, in the lesson's working
// directory, up to the first that fails.
func runChecks(s *Session, l *tutorials.Lesson, lang string) (*checkRun, error) {
	if s.RunLines == nil {
		return nil, errors.New("lab: this session cannot run scripts (it is not a shell's)")
	}
	dir := workDir(s, l)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf(tr(lang, "lesson %d is not started: 'lab start %d' first", "第 %d 课还没有开始：请先输入 'lab start %d'"), l.Number, l.Number)
	}
	r := &checkRun{}
	for _, c := range l.Checks {
		_, err := runIn(dir, func() (string, error) {
			return s.RunLines(Lines(c.Script))
		})
		var le *LineError
		switch {
		case err == nil:
			r.passed++
			continue
		case errors.As(err, &le):
			r.failed = le
			return r, nil
		}
		return nil, err // interrupted, or the directory is gone
	}
	return r, nil
}

// labNotDone is a check that did not pass: what is missing, in words,
// with the line that failed as its detail.
type labNotDone struct {
	msg    string
	detail string
}

func (e *labNotDone) Error() string  { return e.msg }
func (e *labNotDone) Detail() string { return e.detail }

func runLabCheck(s *Session, args []string) (Result, error) {
	l, lang, err := labArgs(s, "check", args)
	if err != nil {
		return nil, err
	}
	r, err := runChecks(s, l, lang)
	if err != nil {
		return nil, err
	}
	n := len(l.Checks)
	if r.failed != nil {
		c := l.Checks[r.passed]
		missing := strings.ReplaceAll(c.Missing.In(lang), "\n", " ")
		return nil, &labNotDone{
			msg: fmt.Sprintf(tr(lang, "lesson %d is not done yet: %d of %d checks pass. Still missing: %s ('lab hint' says what to do)",
				"第 %d 课还没有完成：%d/%d 项检查通过。还缺少：%s（输入 'lab hint' 查看提示）"), l.Number, r.passed, n, missing),
			detail: fmt.Sprintf(tr(lang, "  check %d failed at %v", "  第 %d 项检查失败：%v"), r.passed+1, r.failed),
		}
	}
	p, err := readProgress(s)
	if err != nil {
		return nil, err
	}
	if p.Done == nil {
		p.Done = map[string]time.Time{}
	}
	p.Done[l.Dir] = time.Now().UTC().Truncate(time.Second)
	if err := p.save(s); err != nil {
		return nil, err
	}
	text := fmt.Sprintf(tr(lang, "lesson %d done: all %d checks pass.", "第 %d 课完成：%d 项检查全部通过。"), l.Number, n)
	if next := nextLesson(l); next != nil {
		text += fmt.Sprintf(tr(lang, " Next: 'lab start %d' (%s).", " 下一课：'lab start %d'（%s）。"), next.Number, next.Title.In(lang))
	}
	return &Message{Text: text, Data: map[string]any{"lesson": l.Number, "done": true, "checks": n}}, nil
}

// nextLesson is the lesson after l, or nil.
func nextLesson(l *tutorials.Lesson) *tutorials.Lesson {
	lessons, err := labLessons()
	if err != nil {
		return nil
	}
	for _, o := range lessons {
		if o.Number > l.Number {
			return o
		}
	}
	return nil
}

func runLabHint(s *Session, args []string) (Result, error) {
	l, lang, err := labArgs(s, "hint", args)
	if err != nil {
		return nil, err
	}
	r, err := runChecks(s, l, lang)
	if err != nil {
		return nil, err
	}
	n := len(l.Checks)
	if r.failed == nil {
		return &Message{Text: fmt.Sprintf(tr(lang, "all %d checks of lesson %d pass: nothing left to hint; 'lab check' marks it done",
			"第 %d 课的 %d 项检查全部通过，没有需要提示的了；输入 'lab check' 记录完成"), n, l.Number)}, nil
	}
	c := l.Checks[r.passed]
	body := fmt.Sprintf(tr(lang, "still missing (check %d of %d): %s\nhint: %s", "还缺少（第 %d/%d 项检查）：%s\n提示：%s"),
		r.passed+1, n, c.Missing.In(lang), c.Hint.In(lang))
	return &Text{Body: body, JSON: map[string]any{
		"lesson": l.Number, "check": r.passed + 1, "checks": n, "missing": c.Missing.In(lang), "hint": c.Hint.In(lang),
	}}, nil
}

func runLabReset(s *Session, args []string) (Result, error) {
	l, lang, err := labArgs(s, "reset", args)
	if err != nil {
		return nil, err
	}
	removed, err := removeCreated(s, l, lang)
	if err != nil {
		return nil, fmt.Errorf("lab reset %d: %w", l.Number, err)
	}
	dir := workDir(s, l)
	if _, err := os.Stat(dir); err == nil {
		// Leave the directory before removing it, for where lab start
		// was typed (or the labs directory).
		if wd, err := os.Getwd(); err == nil && within(wd, dir) {
			back := labsDir(s)
			if p, err := readProgress(s); err == nil && p.From != "" {
				if fi, err := os.Stat(p.From); err == nil && fi.IsDir() {
					back = p.From
				}
			}
			if err := os.Chdir(back); err != nil {
				return nil, fmt.Errorf("lab reset %d: leave %s: %w", l.Number, dir, err)
			}
			removed = append(removed, tr(lang, "the shell is back in ", "shell 回到了 ")+back)
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("lab reset %d: remove %s: %w", l.Number, dir, err)
		}
		removed = append(removed, tr(lang, "removed ", "已删除 ")+dir)
	}
	if len(removed) == 0 {
		return &Message{Text: fmt.Sprintf(tr(lang, "lesson %d: nothing to reset", "第 %d 课：没有需要重置的"), l.Number)}, nil
	}
	return &Message{
		Text: fmt.Sprintf(tr(lang, "lesson %d reset: %s", "第 %d 课已重置：%s"), l.Number, strings.Join(removed, "; ")),
		Data: map[string]any{"lesson": l.Number, "done": removed},
	}, nil
}

// removeCreated unloads what l says it creates under the pin root,
// removes the network namespaces it says it makes and stops the
// redis-servers it starts in this session, and nothing else. A
// name bpfsh loaded is unloaded as 'unload' does (kv flushes its log,
// cache detaches); one made otherwise (pinned with bpftool) is removed.
// A kv store's WAL and checkpoint go too.
// It returns what it did, one phrase each, in lang.
func removeCreated(s *Session, l *tutorials.Lesson, lang string) ([]string, error) {
	var done []string
	var errs []error
	for _, name := range l.Creates {
		path := filepath.Join(s.PinRoot, name)
		_, merr := bpf.ReadManifest(s.StateDir, s.PinRoot, name)
		switch {
		case merr == nil:
			if _, err := runUnload(s, []string{name}); err != nil {
				errs = append(errs, err)
				continue
			}
			done = append(done, tr(lang, "unloaded ", "已卸载 ")+name)
		case errors.Is(merr, fs.ErrNotExist):
			if _, err := os.Lstat(path); err != nil {
				continue // not there: nothing to do
			}
			if err := os.RemoveAll(path); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
				continue
			}
			done = append(done, tr(lang, "removed ", "已删除 ")+path)
		default:
			errs = append(errs, merr)
		}
		// A kv store the lesson made keeps its WAL and checkpoint in the
		// state directory after unload; a fresh start must not replay
		// the last attempt.
		wal := kv.WALPath(s.StateDir, s.PinRoot, name)
		for _, f := range []string{wal, kv.CheckpointPath(wal), wal + ".lock"} {
			if err := os.Remove(f); err == nil {
				done = append(done, tr(lang, "removed ", "已删除 ")+f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove %s: %w", f, err))
			}
		}
	}
	for _, ns := range l.Netns {
		if !vethns.Exists(ns) {
			continue
		}
		if err := vethns.DeleteNamed(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, tr(lang, "removed network namespace ", "已删除网络命名空间 ")+ns)
	}
	for _, port := range l.Redis {
		ok, err := stopSessionRedis(s, port)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			done = append(done, fmt.Sprintf(tr(lang, "stopped redis-server on port %d", "已停止端口 %d 上的 redis-server"), port))
		}
	}
	return done, errors.Join(errs...)
}

// runIn runs f with dir as the working directory, then goes back.
func runIn(dir string, f func() (string, error)) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("read the working directory: %w", err)
	}
	if wd != dir {
		if err := os.Chdir(dir); err != nil {
			return "", err
		}
		defer os.Chdir(wd)
	}
	return f()
}

// within reports whether path is dir or under it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}
