// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/shell"
)

// bpfsh runs the shell in-process, as `bpfsh --pin-root root ARGS...` with
// nothing on stdin, and returns its exit status, stdout and stderr. Every
// command test goes through it, so each runs the command as a user would.
func bpfsh(t *testing.T, root string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := shell.Main(append([]string{"--pin-root", root}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// bpfshOK runs the command line (after flags such as -j) and fails the
// test unless it succeeds; it returns what it printed.
func bpfshOK(t *testing.T, root, line string, flags ...string) string {
	t.Helper()
	code, out, errb := bpfsh(t, root, append(flags, "-c", line)...)
	if code != 0 {
		t.Fatalf("%q: exit %d\nstdout:\n%s\nstderr:\n%s", line, code, out, errb)
	}
	return out
}

// bpfshFails runs the command line, wants exit status code and an error
// of one line ("error: ...") containing each of wants, and returns it.
func bpfshFails(t *testing.T, root, line string, code int, wants ...string) string {
	t.Helper()
	got, out, errb := bpfsh(t, root, "-c", line)
	if got != code {
		t.Fatalf("%q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", line, got, code, out, errb)
	}
	if strings.Count(strings.TrimRight(errb, "\n"), "\n") != 0 || !strings.HasPrefix(errb, "error: ") {
		t.Errorf("%q: want one error line, got:\n%s", line, errb)
	}
	for _, w := range wants {
		if !strings.Contains(errb, w) {
			t.Errorf("%q: error %q does not say %q", line, strings.TrimSpace(errb), w)
		}
	}
	return errb
}

// decodeJSON decodes what a command printed with -j.
func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, out)
	}
	return v
}
