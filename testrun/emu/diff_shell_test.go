// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/commands"
	"github.com/bpfsh/bpfsh/shell"
	"github.com/bpfsh/bpfsh/tutorials"
)

// newShell is an in-process bpfsh with a fresh pin root and state
// directory: its test runs go through testrun in this process, where the
// differential observer sees them.
func newShell(t *testing.T) (*shell.Shell, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	t.Setenv("LANG", "C.UTF-8")
	s := &commands.Session{PinRoot: bpftest.PinRoot(t), StateDir: filepath.Join(state, "bpfsh")}
	t.Cleanup(func() { s.Close() })
	var out, errb bytes.Buffer
	return shell.New(s, &out, &errb), &out, &errb
}

// TestDifferentialSuites runs the suites under testrun/suites (bpfsh test)
// with every run they make held against the emulator.
func TestDifferentialSuites(t *testing.T) {
	differential(t)
	sh, out, errb := newShell(t)
	if code := sh.Test([]string{filepath.Join(repoRoot(t), "testrun", "suites")}); code != 0 {
		t.Fatalf("bpfsh test testrun/suites: exit %d\n%s\n%s", code, out, errb)
	}
}

// TestDifferentialLessons goes through every lesson's solution and check
// (lab start, source solution.bpfsh, lab check), as the labs' own test
// does, with every run held against the emulator.
func TestDifferentialLessons(t *testing.T) {
	bpftest.RequireRoot(t)
	t.Setenv(commands.LabsEnv, "")
	lessons, err := tutorials.Lessons()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lessons {
		t.Run(l.Dir, func(t *testing.T) {
			for _, p := range l.Needs {
				if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", p).Output(); err != nil || string(out) != "installed" {
					t.Skipf("skipped: %s needs %s", l.Dir, p)
				}
			}
			differential(t)
			t.Chdir(t.TempDir())
			sh, out, errb := newShell(t)
			sol := filepath.Join(t.TempDir(), "solution.bpfsh")
			if err := writeFile(sol, l.Solution.Text+"\n"); err != nil {
				t.Fatal(err)
			}
			script := fmt.Sprintf("lab start %d\nsource %s\nlab check\nlab reset\n", l.Number, sol)
			if code := sh.RunScript(strings.NewReader(script), "-c"); code != 0 {
				t.Fatalf("lab start, the solution, lab check: exit %d\n%s\n%s", code, out, errb)
			}
		})
	}
}
