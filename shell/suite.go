// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/commands"
)

// A suite is a bpfsh script with expect lines, in a file named *.bpfsh.
// "bpfsh test" (and the test built-in) runs each suite
//
//   - in a fresh session with a fresh pin root: a new directory under
//     /sys/fs/bpf, removed afterwards with everything pinned in it, even
//     when the suite fails, and a fresh state directory, removed too;
//   - in the suite file's directory, so that relative file names in it
//     (load ../fixture.o, source common.bpfsh, @frame.pcap) name files
//     beside the suite wherever bpfsh test is started; a script it
//     sources runs in that script's directory in turn. The process's
//     working directory changes while a suite runs, so suites run one
//     after another, never in parallel;
//   - past failed expectations, which are counted, up to a failing command
//     that no "expect error" follows, which stops the suite and counts
//     as one failure.
//
// It prints each failure with file:line, the expect line, its message and
// layer diff, a line per suite, and last "N passed, N failed".

const testUsage = "FILE|DIR... [--junit FILE] [-v] [--jobs N]"

func (sh *Shell) testBuiltin() *commands.Command {
	return &commands.Command{
		Name:  "test",
		Usage: testUsage,
		Short: "run suites: scripts with expect lines, each in a fresh pin root",
		Long: "test runs each suite FILE, and every *.bpfsh file under each DIR (recursively, in name order), in a fresh session " +
			"with a fresh pin root under /sys/fs/bpf that is removed afterwards with everything pinned in it, and in the suite file's " +
			"directory, so that relative names in the suite (load, source, @FILE) are found beside it. A suite goes on past a failed " +
			"expectation and stops at any other failing command, unless an 'expect error' line follows it. Every failure is shown " +
			"with file:line and, for packets, a layer diff; the last line is 'N passed, N failed', counting expectations (a command that " +
			"stopped a suite counts as failed). --junit FILE also writes a JUnit XML report (one testsuite per file, one testcase per " +
			"expect line), and a FILE that cannot be written is refused before any suite runs; -j prints the results as one JSON object " +
			"({suites: [{file, passed, failed, ok, cases: [{at, line, expect, passed, error}]}], passed, failed}); -v shows the output of every command. " +
			"--jobs N runs up to N suite files at once, each in a bpfsh process of its own (a suite runs in its file's directory, which is the " +
			"process's); the output and the JUnit report are the same, in the same order, as one after another. " +
			"From the command line: bpfsh test DIR, which exits 1 when anything failed.",
		Example: "test testrun/suites --junit report.xml",
		Args:    []commands.ArgKind{commands.ArgFile},
		Run: func(s *commands.Session, args []string) (commands.Result, error) {
			status, err := sh.runTests(args)
			if err != nil {
				return nil, err
			}
			if status != ExitOK {
				return nil, &reported{status: status, msg: "test: the suites did not pass (see above)"}
			}
			return nil, nil
		},
	}
}

// Test runs suites as "bpfsh test ARGS" does and returns the exit status:
// 0 when every expectation held, 1 when any failed, 2 on a usage error
// (no FILE, a FILE that does not exist).
func (sh *Shell) Test(args []string) int {
	status, err := sh.runTests(args)
	if err != nil {
		sh.Report("", err)
	}
	return status
}

// testOptions are the words after "test".
type testOptions struct {
	paths   []string
	junit   string
	verbose bool
	jobs    int
	// worker, set by a parent bpfsh test --jobs, runs one suite and writes
	// its result as JSON to this file, printing only -v output.
	worker string
}

func parseTestArgs(args []string) (testOptions, error) {
	var o testOptions
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--junit" || a == "-junit":
			if i+1 >= len(args) {
				return o, commands.Usagef("test: --junit needs the FILE to write")
			}
			i++
			o.junit = args[i]
		case strings.HasPrefix(a, "--junit="):
			o.junit = strings.TrimPrefix(a, "--junit=")
		case a == "-v" || a == "--verbose":
			o.verbose = true
		case a == "--jobs" || a == "-jobs" || strings.HasPrefix(a, "--jobs="):
			v, ok := strings.CutPrefix(a, "--jobs=")
			if !ok {
				if i+1 >= len(args) {
					return o, commands.Usagef("test: --jobs needs a number of suites to run at once")
				}
				i++
				v = args[i]
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, commands.Usagef("test: --jobs %q: want a whole number, 1 or more", v)
			}
			o.jobs = n
		case a == workerFlag:
			if i+1 >= len(args) {
				return o, commands.Usagef("test: %s needs a file", workerFlag)
			}
			i++
			o.worker = args[i]
		case strings.HasPrefix(a, "-") && a != "-":
			return o, commands.Usagef("test: unknown option %q (usage: test %s)", a, testUsage)
		default:
			o.paths = append(o.paths, a)
		}
	}
	if len(o.paths) == 0 {
		return o, commands.Usagef("test needs suites to run: %s", testUsage)
	}
	return o, nil
}

// suiteFiles lists the suites paths name: files as given, and the *.bpfsh
// files under directories, sorted.
func suiteFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, commands.Usagef("test: %s: %v", p, unwrapPath(err))
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".bpfsh") {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("test: read %s: %w", p, err)
		}
		if len(found) == 0 {
			return nil, commands.Usagef("test: no suites (*.bpfsh files) under %s", p)
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, nil
}

// suiteResult is what one suite did.
type suiteResult struct {
	file    string
	cases   []suiteCase
	elapsed time.Duration
}

// suiteCase is one expect line that ran, or a failing command that
// stopped the suite (expect false).
type suiteCase struct {
	at     scriptLine
	text   string
	err    error
	expect bool
}

func (r *suiteResult) counts() (passed, failed int) {
	for _, c := range r.cases {
		if c.err == nil {
			passed++
		} else {
			failed++
		}
	}
	return passed, failed
}

func (r *suiteResult) add(ev scriptEvent) {
	text := joinWords(ev.words)
	if ev.words == nil {
		text = "(a line that cannot be read as words)"
	}
	r.cases = append(r.cases, suiteCase{at: ev.at, text: text, err: ev.err, expect: ev.expect})
}

// fail records a failure to set the suite up, as a failure at line 0.
func (r *suiteResult) fail(err error) {
	r.cases = append(r.cases, suiteCase{at: scriptLine{file: r.file}, text: "(setting up the suite)", err: err})
}

func (sh *Shell) runTests(args []string) (int, error) {
	o, err := parseTestArgs(args)
	if err != nil {
		return ExitUsage, err
	}
	files, err := suiteFiles(o.paths)
	if err != nil {
		return StatusOf(err), err
	}
	if o.junit != "" {
		// Suites run in their own directories: fix where the report goes.
		if o.junit, err = filepath.Abs(o.junit); err != nil {
			return ExitUsage, commands.Usagef("test: --junit: %v", err)
		}
	}
	if o.junit != "" {
		// Find out now, not after the whole run, that the report cannot
		// be written.
		if err := checkWritable(o.junit); err != nil {
			return ExitFailed, fmt.Errorf("test: --junit %s cannot be written: %w", o.junit, unwrapPath(err))
		}
	}
	if err := bpf.EnsureBPFFS(); err != nil {
		return ExitFailed, fmt.Errorf("test: %w", err)
	}
	if o.worker != "" {
		return sh.runWorker(files, o)
	}
	next := sh.suitesInOrder(files, o)
	var results []*suiteResult
	passed, failed := 0, 0
	for range files {
		r, output := next()
		if r == nil {
			break // interrupted
		}
		sh.Out.Write(output)
		results = append(results, r)
		if !sh.Session.JSON {
			sh.printSuite(r)
		}
		p, n := r.counts()
		passed, failed = passed+p, failed+n
		if sh.base.Err() != nil {
			break
		}
	}
	if sh.Session.JSON {
		resultWriter{out: sh.Out, pretty: sh.Pretty}.renderJSON(testJSON(results, passed, failed, sh.base.Err() != nil))
	} else {
		fmt.Fprintf(sh.Out, "%d passed, %d failed\n", passed, failed)
	}
	if o.junit != "" {
		if err := writeJUnit(o.junit, results); err != nil {
			return ExitFailed, err
		}
	}
	switch {
	case sh.base.Err() != nil:
		return ExitInterrupted, nil
	case failed > 0:
		return ExitFailed, nil
	}
	return ExitOK, nil
}

// checkWritable makes sure path can be written: an existing file is
// opened for writing (and left as it is), a new one is created in its
// directory and removed again.
func checkWritable(path string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return errors.New("it is a directory")
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(path)
}

// testJSON is what "test" prints with -j: each suite's cases, failures
// with their error, and the totals.
func testJSON(results []*suiteResult, passed, failed int, interrupted bool) map[string]any {
	suites := make([]map[string]any, 0, len(results))
	for _, r := range results {
		p, n := r.counts()
		cases := make([]map[string]any, 0, len(r.cases))
		for _, c := range r.cases {
			jc := map[string]any{"at": fmt.Sprint(c.at), "line": c.text, "expect": c.expect, "passed": c.err == nil}
			if c.err != nil {
				jc["error"] = clipMessage(c.err.Error())
				if d := commands.DetailOf(c.err); d != "" {
					jc["detail"] = d
				}
			}
			cases = append(cases, jc)
		}
		suites = append(suites, map[string]any{
			"file": r.file, "passed": p, "failed": n, "ok": n == 0,
			"elapsed_ms": r.elapsed.Milliseconds(), "cases": cases,
		})
	}
	return map[string]any{"suites": suites, "passed": passed, "failed": failed, "interrupted": interrupted}
}

// runSuite runs one suite file in a fresh session and pin root.
func (sh *Shell) runSuite(file string, verbose bool) *suiteResult {
	r := &suiteResult{file: file}
	start := time.Now()
	defer func() { r.elapsed = time.Since(start) }()

	abs, err := filepath.Abs(file)
	if err != nil {
		r.fail(err)
		return r
	}
	f, err := os.Open(abs)
	if err != nil {
		r.fail(fmt.Errorf("open %s: %w", file, unwrapPath(err)))
		return r
	}
	defer f.Close()
	root, err := os.MkdirTemp(bpf.BPFFSPath, "bpfsh-suite-")
	if err != nil {
		r.fail(fmt.Errorf("make a pin root: %w", err))
		return r
	}
	defer os.RemoveAll(root)
	state, err := os.MkdirTemp("", "bpfsh-suite-state-")
	if err != nil {
		r.fail(fmt.Errorf("make a state directory: %w", err))
		return r
	}
	defer os.RemoveAll(state)
	back, err := enterDir(filepath.Dir(abs))
	if err != nil {
		r.fail(err)
		return r
	}
	defer back()

	s := &commands.Session{PinRoot: root, Verbose: sh.Session.Verbose, StateDir: state}
	defer s.Close()
	var out, errOut io.Writer = io.Discard, io.Discard
	if verbose {
		out, errOut = sh.Out, sh.Err
	}
	in := New(s, out, errOut)
	in.base = sh.base
	in.TTY = sh.TTY && verbose
	in.onEvent = r.add
	in.scriptDirs = true
	in.expectGoesOn = true
	// Every failure reaches r through onEvent, with its file:line.
	in.runLines(f, file)
	return r
}

// printSuite shows a suite's failures and its line.
func (sh *Shell) printSuite(r *suiteResult) {
	for _, c := range r.cases {
		if c.err == nil {
			continue
		}
		fmt.Fprintf(sh.Out, "--- FAIL %s: %s\n", c.at, clipMessage(c.text))
		msg := clipMessage(c.err.Error())
		if !c.expect {
			msg = "failed, and the suite stopped here: " + msg
		}
		fmt.Fprintf(sh.Out, "    %s\n", msg)
		if d := commands.DetailOf(c.err); d != "" {
			for line := range strings.Lines(strings.TrimRight(d, "\n")) {
				fmt.Fprintf(sh.Out, "    %s", line)
			}
			fmt.Fprintln(sh.Out)
		}
	}
	passed, failed := r.counts()
	if failed == 0 {
		fmt.Fprintf(sh.Out, "ok    %s  (%d passed)\n", r.file, passed)
		return
	}
	fmt.Fprintf(sh.Out, "FAIL  %s  (%d passed, %d failed)\n", r.file, passed, failed)
}

// enterDir makes dir the working directory and returns how to go back.
// Changing it, rather than resolving each command's file names, covers
// every command that takes a file (load, source, @FILE packets, record).
func enterDir(dir string) (back func(), err error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("read the working directory: %w", err)
	}
	if err := os.Chdir(dir); err != nil {
		return nil, err
	}
	return func() { os.Chdir(wd) }, nil
}
