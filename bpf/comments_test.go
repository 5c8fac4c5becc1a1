// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCommentsNameFilesThatExist keeps comments honest: every NAME.go a
// Go comment in the repository points at ("see NAME.go") is a file of
// the repository.
func TestCommentsNameFilesThatExist(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	var sources []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			have[d.Name()] = true
			sources = append(sources, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`\b([a-z0-9_]+)\.go\b`)
	for _, path := range sources {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			_, comment, ok := strings.Cut(line, "//")
			if !ok {
				continue
			}
			for _, m := range named.FindAllStringSubmatch(comment, -1) {
				if !have[m[1]+".go"] {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s:%d: the comment names %s.go, which is not in the repository", rel, i+1, m[1])
				}
			}
		}
	}
}
