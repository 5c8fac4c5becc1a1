// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/commands"
)

func TestHistoryPath(t *testing.T) {
	s := &commands.Session{StateDir: "/state/bpfsh"}
	t.Setenv("BPFSH_HISTORY", "")
	if got := HistoryPath(s); got != "/state/bpfsh/history" {
		t.Errorf("default %q", got)
	}
	t.Setenv("BPFSH_HISTORY", "/elsewhere/h")
	if got := HistoryPath(s); got != "/elsewhere/h" {
		t.Errorf("$BPFSH_HISTORY: %q", got)
	}
}

func TestHistoryKeepsLinesAcrossOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "history")
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"help", "help", "  ", "map show x/y", "paste\nof two"} {
		if err := h.Add(l); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode(), mode, err)
		}
	}
	h, err = OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if want := []string{"help", "map show x/y", "paste of two"}; !slices.Equal(h.Lines(), want) {
		t.Errorf("lines %q, want %q", h.Lines(), want)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history")
	var b strings.Builder
	total := 2*HistoryMax + 7
	for i := range total {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := h.Lines()
	if len(lines) != HistoryMax || lines[0] != fmt.Sprintf("line %d", total-HistoryMax) || lines[len(lines)-1] != fmt.Sprintf("line %d", total-1) {
		t.Errorf("kept %d lines, %q ... %q", len(lines), lines[0], lines[len(lines)-1])
	}
	h.Add("one more")
	h.Close()
	// The file was cut back to what is kept, and still appends.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != HistoryMax+1 || !strings.HasSuffix(string(data), "one more\n") {
		t.Errorf("file has %d lines, ends %q", n, tail(string(data), 30))
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Errorf("rewritten file mode %v, want 0600", fi.Mode())
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

func TestKeyLen(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"help\r", 4},
		{"\rhelp", 1},
		{"\t", 1},
		{"\x1b[A\x1b[B", 3},
		{"\x1b[1;5C", 6},
		{"\x1b\x1b[C", 4},
		{"\x1bb", 2},
		{"\x1b", 1},
		{"\x1b[[A", 4},
		{"héllo\x03", 6},
		{"\xc3", 1}, // half a character is handed over as is
		{"ab\xc3", 2},
	} {
		if got := keyLen([]byte(c.in)); got != c.want {
			t.Errorf("keyLen(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
