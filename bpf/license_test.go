// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestObjectsDeclareDualLicence: the license section of every committed
// object says what its source's SPDX line says. "Dual BSD/GPL" is the
// spelling the kernel's license_is_gpl_compatible accepts for the
// GPL-only helpers (bpf_trace_printk, bpf_probe_read_kernel, ...).
func TestObjectsDeclareDualLicence(t *testing.T) {
	root := repoRoot(t)
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".o") {
			return nil
		}
		spec, err := ebpf.LoadCollectionSpec(path)
		if err != nil {
			return nil // not every .o is meant to parse (load's error tests)
		}
		rel, _ := filepath.Rel(root, path)
		for name, p := range spec.Programs {
			n++
			if p.License != "Dual BSD/GPL" {
				t.Errorf("%s: program %s declares licence %q, want \"Dual BSD/GPL\" (char LICENSE[] SEC(\"license\") in its C source)", rel, name, p.License)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("found no programs in any object")
	}
}
