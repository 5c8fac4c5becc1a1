// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// readWhole reads what os.ReadFile reads and fails as it fails.
func TestReadWholeAsReadFile(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789"), 100000)
	for name, data := range map[string][]byte{"empty": {}, "frame": big[:46], "big": big} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// /proc/self/stat: size 0 in stat, yet not empty.
	for _, path := range []string{"empty", "frame", "big", "missing", ".", "/proc/self/stat"} {
		if path[0] != '/' {
			path = filepath.Join(dir, path)
		}
		want, werr := os.ReadFile(path)
		got, gerr := readWhole(path)
		if fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Errorf("%s: error %v, os.ReadFile's %v", path, gerr, werr)
		}
		if path != "/proc/self/stat" && !bytes.Equal(got, want) || len(got) == 0 && len(want) != 0 {
			t.Errorf("%s: read %d bytes, os.ReadFile %d", path, len(got), len(want))
		}
	}
}
