// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bare program name is not a reference, but the error says which
// NAME/OBJ under the pin root the user most likely meant.
func TestParseRefSuggestsPinnedObject(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"ex/xdp_prog_func", "ex/stats", "solo/only_prog"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for word, want := range map[string]string{
		"xdp_prog_func": "did you mean ex/xdp_prog_func?",
		"solo":          "did you mean solo/only_prog?",
		"nothing":       `"nothing" is not an object: expected an object`,
	} {
		_, _, err := ParseRef([]string{word}, root)
		if !errors.Is(err, ErrNoRef) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRef(%q): %v, want it to say %q", word, err, want)
		}
	}
}
