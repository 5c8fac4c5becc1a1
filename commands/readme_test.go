// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// readmeSession returns what README.md's first session shows after the
// prompt line "bpfsh> LINE", up to the next prompt.
func readmeSession(t *testing.T, line string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\nbpfsh> "+line+"\n")
	if !ok {
		t.Fatalf("README.md has no line %q", "bpfsh> "+line)
	}
	end := strings.Index(after, "\nbpfsh> ")
	if end < 0 {
		t.Fatalf("README.md: no prompt after %q", line)
	}
	return after[:end+1]
}

// The README's btf dump and unload lines are what bpfsh prints (issue 13
// item 18).
func TestReadmeFirstSession(t *testing.T) {
	root := bpftest.PinRoot(t)
	bpfshOK(t, root, "load "+filepath.Join("..", "bpf", "fixture", "fixture_bpfel.o")+" name fx")
	for _, line := range []string{"map dump fx/flows", "btf dump fx/flows"} {
		if line == "map dump fx/flows" {
			bpfshOK(t, root, `map update fx/flows key {saddr: 10.0.0.1, sport: 40000} value {packets: 1, comment: "first"}`)
		}
		want := readmeSession(t, line)
		if got := bpfshOK(t, root, line); got != want {
			t.Errorf("README.md shows for %q:\n%s\nbpfsh prints:\n%s", line, want, got)
		}
	}
	got := bpfshOK(t, root, "unload fx")
	want := "unloaded fx: removed 10 pins and /sys/fs/bpf/bpfsh/fx (and the pin root /sys/fs/bpf/bpfsh, now empty)\n"
	if data, _ := os.ReadFile(filepath.Join("..", "README.md")); !strings.Contains(string(data), "bpfsh> unload fx\n"+want) {
		t.Errorf("README.md does not show unload fx as %q", want)
	}
	want = strings.ReplaceAll(want, "/sys/fs/bpf/bpfsh", root)
	if got != want {
		t.Errorf("unload prints %q; the README shows %q (with its pin root)", got, want)
	}
}
