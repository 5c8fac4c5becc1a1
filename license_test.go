// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// spdxFor is the licence each kind of source file carries: Go code and
// scripts Apache-2.0; BPF C code dual-licensed, GPL for the kernel's
// GPL-only helpers and BSD so the objects can be embedded anywhere.
func spdxFor(path string) string {
	switch base := filepath.Base(path); {
	case strings.HasSuffix(base, ".go"):
		return "Apache-2.0"
	case strings.HasSuffix(base, ".c"), strings.HasSuffix(base, ".h"):
		return "(GPL-2.0-only OR BSD-2-Clause)"
	case strings.HasSuffix(base, ".sh"), strings.HasSuffix(base, ".bpfsh"),
		base == "Makefile", base == "Vagrantfile", path == filepath.Join(".ci", "run"):
		return "Apache-2.0"
	}
	return ""
}

// TestSourceFilesCarrySPDX fails on every source file without its SPDX
// line in the first five lines; scripts/spdx.sh adds the missing ones.
func TestSourceFilesCarrySPDX(t *testing.T) {
	for _, f := range []string{"LICENSE", "LICENSES/Apache-2.0.txt", "LICENSES/GPL-2.0-only.txt", "LICENSES/BSD-2-Clause.txt"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s is missing: %v", f, err)
		}
	}
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && strings.HasPrefix(name, ".") && name != ".ci" || name == "fuzz" {
				return filepath.SkipDir
			}
			return nil
		}
		want := spdxFor(path)
		if want == "" {
			return nil
		}
		head, err := firstLines(path, 5)
		if err != nil {
			return err
		}
		if strings.HasPrefix(head[0], "// Code generated") && strings.HasSuffix(head[0], "DO NOT EDIT.") {
			return nil
		}
		checked++
		for _, l := range head {
			if _, id, ok := strings.Cut(l, "SPDX-License-Identifier: "); ok {
				if id = strings.TrimSpace(strings.TrimSuffix(id, "*/")); id != want {
					t.Errorf("%s: SPDX-License-Identifier %s, want %s", path, id, want)
				}
				return nil
			}
		}
		t.Errorf("%s: no SPDX-License-Identifier line in its first 5 lines (run scripts/spdx.sh)", path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d source files; is the test running from the repository root?", checked)
	}
}

func firstLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for len(lines) < n && s.Scan() {
		lines = append(lines, s.Text())
	}
	if len(lines) == 0 {
		lines = append(lines, "")
	}
	return lines, s.Err()
}
