// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/vethns"
	"github.com/bpfsh/bpfsh/commands"
	"github.com/bpfsh/bpfsh/tutorials"
)

// TestLabLessons is the labs' CI: every lesson built into bpfsh must pass
// its own check after its solution, and fail on a fresh state with its
// own first missing text and hint.
func TestLabLessons(t *testing.T) {
	bpftest.RequireRoot(t)
	t.Setenv(commands.LabsEnv, "")
	lessons, err := tutorials.Lessons()
	if err != nil {
		t.Fatal(err)
	}
	if len(lessons) == 0 {
		t.Skip("no lessons are built in yet (tutorials/NN-topic)")
	}
	for _, l := range lessons {
		t.Run(l.Dir, func(t *testing.T) { testLesson(t, l) })
	}
}

// TestLabSampleLesson runs the same over the lab engine's own lesson.
func TestLabSampleLesson(t *testing.T) {
	bpftest.RequireRoot(t)
	l := useSampleLessons(t)
	testLesson(t, l)
}

// useSampleLessons points the lab commands at testdata/lab and returns
// its one lesson.
func useSampleLessons(t *testing.T) *tutorials.Lesson {
	t.Helper()
	dir, err := filepath.Abs("testdata/lab")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(commands.LabsEnv, dir)
	lessons, err := tutorials.Load(os.DirFS(dir))
	if err != nil || len(lessons) != 1 {
		t.Fatalf("the sample lesson: %d lessons, %v", len(lessons), err)
	}
	return lessons[0]
}

// labSession gives the test a fresh state directory and working directory
// (lab start moves the process into the lesson's) and a fresh pin root.
func labSession(t *testing.T) (root, state string) {
	t.Helper()
	state = t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("LC_ALL", "")
	t.Setenv("LC_MESSAGES", "")
	t.Chdir(t.TempDir())
	return bpftest.PinRoot(t), filepath.Join(state, "bpfsh")
}

// testLesson checks lesson l end to end, as a learner would go through it.
func testLesson(t *testing.T, l *tutorials.Lesson) {
	if missing := missingDebs(t, l.Needs); len(missing) > 0 {
		t.Skipf("%s needs %s, not installed (scripts/deps.sh installs them)", l.Dir, strings.Join(missing, ", "))
	}
	t.Run("solution passes", func(t *testing.T) {
		root, state := labSession(t)
		sol := filepath.Join(t.TempDir(), "solution.bpfsh")
		if err := os.WriteFile(sol, []byte(l.Solution.Text+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("lab start %d\nsource %s\nlab check\nlab reset\n", l.Number, sol)
		code, out, errb := bpfsh(t, root, "-c", script)
		if code != 0 {
			t.Fatalf("lab start, the solution, lab check, lab reset: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
		}
		if want := fmt.Sprintf("lesson %d done: all %d checks pass", l.Number, len(l.Checks)); !strings.Contains(out, want) {
			t.Errorf("lab check does not say %q:\n%s", want, out)
		}
		leftAfterReset(t, l, root, state)
	})
	t.Run("fresh check fails with the first hint", func(t *testing.T) {
		root, state := labSession(t)
		script := fmt.Sprintf("lab start %d\nlab check\nlab hint\nlab check --lang zh-CN\nlab hint --lang zh-CN\nlab reset\n", l.Number)
		code, out, errb := bpfsh(t, root, "--keep-going", "-c", script)
		if code != 1 {
			t.Fatalf("lab check on a fresh state: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errb)
		}
		first := l.Checks[0]
		for _, want := range []string{
			fmt.Sprintf("lesson %d is not done yet: 0 of %d checks pass. Still missing: %s", l.Number, len(l.Checks), oneLine(first.Missing.En)),
			oneLine(first.Missing.Zh),
		} {
			if !strings.Contains(errb, want) {
				t.Errorf("lab check does not say %q:\n%s", want, errb)
			}
		}
		for _, want := range []string{"hint: " + first.Hint.En, "提示：" + first.Hint.Zh} {
			if !strings.Contains(out, want) {
				t.Errorf("lab hint does not say %q:\n%s", want, out)
			}
		}
		// The check's failed expectation is the lab's to tell, not an
		// error of its own.
		if strings.Contains(errb, "error: "+l.Dir) {
			t.Errorf("a check block's failure was reported as an error:\n%s", errb)
		}
		leftAfterReset(t, l, root, state)
	})
}

// leftAfterReset fails the test if lab reset left anything the lesson
// made: a pin (every name a lesson makes must be in its creates), a
// network namespace it lists, its working directory.
func leftAfterReset(t *testing.T, l *tutorials.Lesson, root, state string) {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) { // unload removes a pin root it empties
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("lab reset left %s under the pin root; a lesson lists what it makes in '#@ creates:'", e.Name())
	}
	for _, ns := range l.Netns {
		if vethns.Exists(ns) {
			t.Errorf("lab reset left the network namespace %s", ns)
		}
	}
	// The redis-servers it starts, and their cgroups.
	for _, port := range l.Redis {
		if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			c.Close()
			t.Errorf("lab reset left something listening on port %d", port)
		}
		if mnt, err := bpf.Cgroup2Mount(); err == nil {
			if _, err := os.Stat(filepath.Join(mnt, commands.RedisCgroupName(port))); err == nil {
				t.Errorf("lab reset left the cgroup %s", commands.RedisCgroupName(port))
			}
		}
	}
	if _, err := os.Stat(filepath.Join(state, "labs", l.Dir)); err == nil {
		t.Errorf("lab reset left the working directory %s", filepath.Join(state, "labs", l.Dir))
	}
	// A kv store's WAL would bring the last attempt back at the next start.
	wals, _ := filepath.Glob(filepath.Join(state, "*", "kv", "*"))
	more, _ := filepath.Glob(filepath.Join(state, "kv", "*"))
	for _, f := range append(wals, more...) {
		t.Errorf("lab reset left %s", f)
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// missingDebs are the packages of needs dpkg does not list as installed.
func missingDebs(t *testing.T, needs []string) []string {
	var missing []string
	for _, p := range needs {
		out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", p).Output()
		if errors.Is(err, exec.ErrNotFound) {
			bpftest.HostOnly(t, strings.Join(needs, ", "))
			t.Skipf("needs %s, and without dpkg whether it is installed cannot be told", p)
		}
		if err != nil || string(out) != "installed" {
			missing = append(missing, p)
		}
	}
	return missing
}

// TestLabReset: reset removes what the lesson lists (its loads, its
// network namespace, its working directory) and nothing else, and takes
// the shell back to where lab start was typed.
func TestLabReset(t *testing.T) {
	bpftest.RequireRoot(t)
	useSampleLessons(t)
	obj, _ := filepath.Abs("testdata/lab/01-sample/sample.o")
	root, state := labSession(t)
	from, _ := os.Getwd()
	ns := "bpfsh-lab-sample"
	if vethns.Exists(ns) {
		t.Skipf("the network namespace %s exists already (another run of this test?)", ns)
	}
	// A pin the lesson did not make, with a name it does not list.
	bpfshOK(t, root, "load "+obj+" name mine")
	// lab start typed in a shell that stays (-c, not one-shot) moves it
	// into the lesson's directory, where the next commands run.
	bpfshOK(t, root, "lab start 1")
	// What the learner made: the lesson's network namespace, a directory
	// under a name the lesson lists that bpfsh did not load (pinned by
	// hand), and a load under a name it does not list.
	if _, err := vethns.NewNamed(ns, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vethns.DeleteNamed(ns) })
	if err := os.Mkdir(filepath.Join(root, "extra"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := bpfshOK(t, root, "load sample.o name extra2; lab reset")
	for _, want := range []string{"unloaded sample", "removed " + filepath.Join(root, "extra"), "removed network namespace " + ns,
		"the shell is back in " + from, "removed " + filepath.Join(state, "labs", "01-sample")} {
		if !strings.Contains(out, want) {
			t.Errorf("lab reset does not say %q:\n%s", want, out)
		}
	}
	for _, keep := range []string{"mine", "extra2"} {
		if _, err := os.Stat(filepath.Join(root, keep)); err != nil {
			t.Errorf("lab reset removed %s, which the lesson does not list: %v", keep, err)
		}
	}
	for _, gone := range []string{"sample", "extra"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("lab reset left %s", gone)
		}
	}
	if vethns.Exists(ns) {
		t.Errorf("lab reset left the network namespace %s", ns)
	}
	if wd, _ := os.Getwd(); wd != from {
		t.Errorf("after lab reset the shell is in %s, want %s", wd, from)
	}
	// Nothing left to do: a second reset says so.
	if out := bpfshOK(t, root, "lab reset 1"); !strings.Contains(out, "lesson 1: nothing to reset") {
		t.Errorf("a second reset: %s", out)
	}
}

// TestLabProgress: lab list shows the current lesson and what is done, and
// the progress outlives the shell.
func TestLabProgress(t *testing.T) {
	bpftest.RequireRoot(t)
	l := useSampleLessons(t)
	root, state := labSession(t)
	out := bpfshOK(t, root, "lab list")
	if !strings.Contains(out, "1  A sample lesson  not done") {
		t.Errorf("lab list before starting:\n%s", out)
	}
	var solution []string // one -c line: comments would swallow what follows them
	for _, line := range strings.Split(l.Solution.Text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			solution = append(solution, line)
		}
	}
	bpfshOK(t, root, "lab start 1; "+strings.Join(solution, "; ")+"; lab check")
	type row struct {
		Number  int    `json:"number"`
		Folder  string `json:"folder"`
		Title   string `json:"title"`
		Done    bool   `json:"done"`
		Current bool   `json:"current"`
	}
	rows := decodeJSON[[]row](t, bpfshOK(t, root, "lab list", "-j"))
	if len(rows) != 1 || rows[0] != (row{1, "01-sample", "A sample lesson", true, true}) {
		t.Errorf("lab list -j: %+v", rows)
	}
	if out := bpfshOK(t, root, "lab list --lang zh-CN"); !strings.Contains(out, "示例课程  当前，已完成") {
		t.Errorf("lab list --lang zh-CN:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(state, "labs", "progress.json")); err != nil {
		t.Errorf("no progress file: %v", err)
	}
	// Starting again begins afresh: the earlier start's loads are gone.
	out = bpfshOK(t, root, "lab start sample")
	if !strings.Contains(out, "Removed what an earlier start made: unloaded sample; unloaded extra") {
		t.Errorf("a second lab start:\n%s", out)
	}
	bpfshOK(t, root, "lab reset")
}

// TestLabStart: what start shows, where it puts the lesson's files, and
// where the shell works afterwards.
func TestLabStart(t *testing.T) {
	bpftest.RequireRoot(t)
	useSampleLessons(t)
	root, state := labSession(t)
	from, _ := os.Getwd()
	dir := filepath.Join(state, "labs", "01-sample")

	// One-shot: the process ends, so it says where to go.
	code, out, errb := bpfsh(t, root, "lab", "start", "1")
	if code != 0 {
		t.Fatalf("bpfsh lab start 1: exit %d\n%s%s", code, out, errb)
	}
	for _, want := range []string{
		"Lesson 1: A sample lesson\n\nThe lab engine's own test lesson.",
		"The whole lesson: " + filepath.Join(dir, "README.md"),
		"Its files are in " + dir + ": cd there first",
		"Set up:\n  KIND", "xdp_sample",
		"then type 'lab check'",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lab start does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "## Steps") {
		t.Errorf("lab start shows the README past its introduction:\n%s", out)
	}
	for _, f := range []string{"README.md", "README.zh-CN.md", "sample.o", "sample.bpf.c"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("lab start did not copy %s: %v", f, err)
		}
	}
	for _, f := range []string{"lesson.bpfsh", "check.bpfsh", "solution.bpfsh"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("lab start copied %s, which is not the learner's", f)
		}
	}
	if wd, _ := os.Getwd(); wd != from {
		t.Errorf("a one-shot lab start moved the process to %s", wd)
	}

	// In a shell that stays, it moves there: relative names work.
	t.Setenv("LANG", "zh_CN.UTF-8")
	out = bpfshOK(t, root, "lab start 1; load sample.o name extra; lab hint")
	for _, want := range []string{"第 1 课：示例课程", "它现在是 shell 的工作目录", "提示：输入 'map update sample/counts key 7 value 1'。"} {
		if !strings.Contains(out, want) {
			t.Errorf("lab start in zh_CN does not say %q:\n%s", want, out)
		}
	}
	if wd, _ := os.Getwd(); wd != dir {
		t.Errorf("after lab start the shell is in %s, want %s", wd, dir)
	}
	// The failing line is named by its file's line number, below the
	// words; the expectation itself is not reported as an error.
	code, _, errb = bpfsh(t, root, "-c", "lab check --lang en")
	want := "error: -c:1: lesson 1 is not done yet: 0 of 3 checks pass. Still missing: key 7 of sample/counts does not hold 1 yet. ('lab hint' says what to do)\n" +
		"  check 1 failed at 01-sample/check.bpfsh:8: expect map: map counts key 7: want 1, but the key is absent\n"
	if code != 1 || errb != want {
		t.Errorf("lab check: exit %d\n%s\nwant exit 1\n%s", code, errb, want)
	}
	if out := bpfshOK(t, root, "lab show --lang en"); !strings.Contains(out, "## Steps\n\n```text\nbpfsh> map update") {
		t.Errorf("lab show:\n%s", out)
	}
	bpfshOK(t, root, "lab reset")
}

// TestLabNeeds: a lesson's missing packages are named with the line that
// installs them.
func TestLabNeeds(t *testing.T) {
	bpftest.RequireRoot(t)
	bpftest.HostOnly(t, "dpkg-query (lab start asks it which packages are installed)")
	src, _ := filepath.Abs("testdata/lab/01-sample")
	labs := t.TempDir()
	dir := filepath.Join(labs, "01-sample")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	lesson := filepath.Join(dir, "lesson.bpfsh")
	b, err := os.ReadFile(lesson)
	if err != nil {
		t.Fatal(err)
	}
	b = append([]byte("#@ needs: bpfsh-no-such-package\n"), b...)
	if err := os.WriteFile(lesson, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(commands.LabsEnv, labs)
	root, _ := labSession(t)
	out := bpfshOK(t, root, "lab start 1; lab reset")
	if !strings.Contains(out, "It needs bpfsh-no-such-package, not installed here: sudo apt-get install -y bpfsh-no-such-package") {
		t.Errorf("lab start does not name the missing package:\n%s", out)
	}
}

// TestLabErrors: each mistake is one clear line.
func TestLabErrors(t *testing.T) {
	bpftest.RequireRoot(t)
	useSampleLessons(t)
	src, _ := filepath.Abs("testdata/lab/01-sample")
	root, _ := labSession(t)
	bpfshFails(t, root, "lab check", 2, "no lesson started yet: 'lab start N' starts one")
	bpfshFails(t, root, "lab start", 2, "lab start takes the lesson to start")
	bpfshFails(t, root, "lab start 99", 2, `no lesson "99"; the lessons are 1 to 1`)
	bpfshFails(t, root, "lab list --lang fr", 2, "--lang fr: the lessons are in en and zh-CN")
	bpfshFails(t, root, "lab check 1", 1, "lesson 1 is not started: 'lab start 1' first")

	// A broken lesson names its file and line.
	bad := t.TempDir()
	if err := os.CopyFS(filepath.Join(bad, "02-bad"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "02-bad", "check.bpfsh"), []byte("#@ missing: x\nexpect map a count 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(commands.LabsEnv, bad)
	bpfshFails(t, root, "lab list", 1, "02-bad/check.bpfsh:1: this block has no '#@ missing.zh-CN:' line")

	// A set-up that fails says where.
	if err := os.WriteFile(filepath.Join(bad, "02-bad", "check.bpfsh"), []byte("#@ missing: x\n#@ missing.zh-CN: x\n#@ hint: x\n#@ hint.zh-CN: x\nexpect map a count 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "02-bad", "lesson.bpfsh"), []byte("#@ title: Bad\n#@ title.zh-CN: 坏\n\nload nosuch.o\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bpfshFails(t, root, "lab start 2", 1, "lab start 2: the lesson's set-up failed: 02-bad/lesson.bpfsh:4: load nosuch.o")
}
