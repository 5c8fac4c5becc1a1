package commands_test

import (
	"bytes"
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
