// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/shell"
)

// A whole session piped into bpfsh, as CI feeds it: load an object, type a
// struct key and value by BTF, read them back, dump, and unload; then the
// same script with a mistake stops there with status 1 and leaves what the
// script loaded for the user to see.
func TestPipedSession(t *testing.T) {
	root := bpftest.PinRoot(t)
	obj := bpftest.FixtureObject(t)
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	script := strings.Join([]string{
		"# a session as a user would type it",
		"load " + obj + " name fx",
		`map update fx/flows key {saddr: 10.0.0.1, sport: 40000} value {packets: 3, comment: "first"}`,
		"map lookup fx/flows key {saddr: 10.0.0.1, sport: 40000}",
		"map dump fx/counters",
		"unload fx",
	}, "\n")
	var out, errb bytes.Buffer
	code := shell.Main([]string{"--pin-root", root}, strings.NewReader(script), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"flows", `comment: "first"`, "packets: 3", "unloaded fx"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(root + "/fx"); !os.IsNotExist(err) {
		t.Errorf("unload left %s/fx behind (%v)", root, err)
	}

	bad := strings.Replace(script, "sport: 40000} value", "sport: 70000} value", 1)
	out.Reset()
	errb.Reset()
	code = shell.Main([]string{"--pin-root", root}, strings.NewReader(bad), &out, &errb)
	if code != 2 {
		t.Errorf("a key that does not fit: exit %d, want 2 (usage)", code)
	}
	if msg := errb.String(); !strings.Contains(msg, "stdin:3:") || !strings.Contains(msg, "sport") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr %q: want one line naming stdin:3 and the field", msg)
	}
	if strings.Contains(out.String(), "unloaded") {
		t.Errorf("the script went on past the failing line:\n%s", out.String())
	}
	bpfsh(t, root, "unload", "fx")
}
