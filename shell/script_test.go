// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/shell"
)

// run runs bpfsh with args and stdin and returns its exit status and output.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := shell.Main(append([]string{"--pin-root", "/sys/fs/bpf/bpfsh-test-unused"}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPipedStdinRunsEveryLine(t *testing.T) {
	code, out, errs := run(t, "help\n# a comment\n\nhelp exit\n")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "COMMAND") || !strings.Contains(out, "usage: exit") {
		t.Errorf("output lacks the command table or exit's help:\n%s", out)
	}
}

func TestExitStatuses(t *testing.T) {
	cases := []struct {
		name   string
		script string
		want   int
		errHas string
	}{
		{"ok", "help", 0, ""},
		{"unknown command is usage", "help\nfrobnicate", 2, `stdin:2: unknown command "frobnicate"`},
		{"syntax is usage", `help "open`, 2, "unterminated \" quote"},
		{"failed command", "source /nonexistent/x.bpfsh", 1, "source /nonexistent/x.bpfsh: no such file or directory"},
		{"stops at first failure", "source /nonexistent\nfrobnicate", 1, "stdin:1:"},
		{"exit ends early", "exit\nfrobnicate", 0, ""},
		{"dangling continuation", "help \\", 2, "ends in '\\'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := run(t, c.script)
			if code != c.want {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.want, errs)
			}
			if !strings.Contains(errs, c.errHas) {
				t.Errorf("stderr %q lacks %q", errs, c.errHas)
			}
			if c.errHas != "" && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("error is more than one line: %q", errs)
			}
		})
	}
}

func TestKeepGoingRunsPastFailures(t *testing.T) {
	code, out, errs := run(t, "frobnicate\nhelp exit\n", "--keep-going")
	if code != 2 {
		t.Errorf("exit %d, want 2: the failure still counts", code)
	}
	if !strings.Contains(out, "usage: exit") {
		t.Errorf("the line after the failure did not run; stderr %q", errs)
	}
}

func TestDashCSeparatesWithSemicolons(t *testing.T) {
	code, out, _ := run(t, "", "-c", "help exit; help source")
	if code != 0 || !strings.Contains(out, "usage: exit") || !strings.Contains(out, "usage: source FILE") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

// A bpftool batch file: comments, continuation lines and quotes.
func TestBatchFileSyntax(t *testing.T) {
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner.bpfsh")
	os.WriteFile(inner, []byte("help exit\n"), 0o644)
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte("# setup\nhelp \\\n  source   # continued\nsource '"+inner+"'\n"), 0o644)
	code, out, errs := run(t, "", "-f", batch)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "usage: source FILE") || !strings.Contains(out, "usage: exit") {
		t.Errorf("output:\n%s", out)
	}
}

func TestSourcedFailureNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner.bpfsh")
	os.WriteFile(inner, []byte("help\nnope\n"), 0o644)
	code, _, errs := run(t, "source "+inner+"\nhelp\n")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(errs, "inner.bpfsh:2: unknown command") {
		t.Errorf("stderr %q does not name inner.bpfsh:2", errs)
	}
}

func TestSourceLoopIsStopped(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "self.bpfsh")
	os.WriteFile(self, []byte("source "+self+"\n"), 0o644)
	code, _, errs := run(t, "source "+self+"\n")
	if code != 1 || !strings.Contains(errs, "nested more than 16 deep") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestJSONErrorsAreObjects(t *testing.T) {
	code, out, errs := run(t, "", "-j", "frobnicate")
	if code != 2 || errs != "" {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if !strings.HasPrefix(out, `{"error":"unknown command \"frobnicate\"`) {
		t.Errorf("output %q is not a JSON error object", out)
	}
}

func TestPrefixesAndAmbiguity(t *testing.T) {
	if code, out, _ := run(t, "", "h", "exi"); code != 0 || !strings.Contains(out, "usage: exit") {
		t.Errorf("'h exi' should be 'help exit': exit %d\n%s", code, out)
	}
	if code, _, errs := run(t, "", "h", "ex"); code != 2 || !strings.Contains(errs, "expect, exit") {
		t.Errorf("'h ex' should be ambiguous between expect and exit: exit %d, stderr %q", code, errs)
	}
	code, _, errs := run(t, "", "help", "s", "x")
	if code != 2 || !strings.Contains(errs, "source") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestUsageFlagsExitTwo(t *testing.T) {
	if code, _, _ := run(t, "", "--no-such-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code, _, _ := run(t, "", "-c", "help", "-f", "x"); code != 2 {
		t.Errorf("-c with -f: exit %d, want 2", code)
	}
}

// Each ';' command of -c is named -c:LINE.N, and --keep-going goes on
// past a failing one to the rest of the line (issue item 3).
func TestDashCNamesAndKeepsGoingBetweenSemicolons(t *testing.T) {
	code, out, errs := run(t, "", "-c", "help exit; frobnicate; help source")
	if code != 2 || !strings.Contains(errs, `-c:1.2: unknown command "frobnicate"`) {
		t.Errorf("exit %d, stderr %q; want 2 and -c:1.2", code, errs)
	}
	if !strings.Contains(out, "usage: exit") || strings.Contains(out, "usage: source") {
		t.Errorf("without --keep-going the commands after the failure ran, or the one before did not:\n%s", out)
	}
	code, out, errs = run(t, "", "--keep-going", "-c", "frobnicate; help source\nhelp exit; frob2")
	if code != 2 || !strings.Contains(out, "usage: source FILE") || !strings.Contains(out, "usage: exit") {
		t.Errorf("--keep-going: exit %d, output:\n%s\nstderr %q", code, out, errs)
	}
	for _, want := range []string{`-c:1.1: unknown command "frobnicate"`, `-c:2.2: unknown command "frob2"`} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q lacks %q", errs, want)
		}
	}
	// A line with one command keeps the plain file:line.
	if _, _, errs := run(t, "", "-c", "frobnicate"); !strings.Contains(errs, "-c:1: unknown") {
		t.Errorf("stderr %q, want -c:1:", errs)
	}
}

// A failed expectation stops a -c or -f script, as any failing command
// does, unless --keep-going; the status is 1 (issue item 4).
func TestFailedExpectStopsScripts(t *testing.T) {
	script := "help exit\nexpect error contains nope\nhelp source\n"
	file := filepath.Join(t.TempDir(), "s.bpfsh")
	os.WriteFile(file, []byte(script), 0o644)
	for _, args := range [][]string{{"-f", file}, {"-c", script}, {"-c", "help exit; expect error contains nope; help source"}} {
		code, out, errs := run(t, "", args...)
		if code != 1 || strings.Contains(out, "usage: source") || !strings.Contains(errs, "expect error") {
			t.Errorf("%v: exit %d, stderr %q, output:\n%s\nwant exit 1 and nothing run after the expect line", args, code, errs, out)
		}
		code, out, _ = run(t, "", append([]string{"--keep-going"}, args...)...)
		if code != 1 || !strings.Contains(out, "usage: source") {
			t.Errorf("--keep-going %v: exit %d, output:\n%s\nwant exit 1 and the last line run", args, code, out)
		}
	}
	// An expect line typed wrong stops a script with status 2.
	code, out, errs := run(t, "", "-c", "help exit; expect frobnicate; help source")
	if code != 2 || strings.Contains(out, "usage: source") || strings.Count(errs, "\n") != 1 {
		t.Errorf("a malformed expect: exit %d, stderr %q, output:\n%s", code, errs, out)
	}
}
