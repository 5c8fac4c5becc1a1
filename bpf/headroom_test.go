// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// Objects that exist to be refused: tests of load's error paths use them.
var refusedOnPurpose = map[string]bool{
	"bpf/fixture/reject_bpfel.o":           true,
	"commands/testdata/pinbyname_reject.o": true,
	"commands/testdata/oddsection.o":       true,
}

// Objects that exercise one kernel feature each; where the kernel lacks
// it, their tests skip with the reason, and so does this one.
var featureFixtures = map[string]string{
	"testrun/fixture/meta_bpfel.o":   "bpf_xdp_adjust_meta in XDP",
	"testrun/fixture/stream_bpfel.o": "BPF streams (Linux 6.17+)",
	"testrun/streamprobe_bpfel.o":    "BPF streams (Linux 6.17+)",
}

// TestVerifierHeadroom loads every BPF object in the repository, program
// by program, and checks that this kernel's verifier accepts each with at
// most a quarter of its instruction limit: the same source can pass one
// kernel build and fail the next, so bpfsh's programs keep room to spare.
// -v prints the table of instructions processed and verification times.
func TestVerifierHeadroom(t *testing.T) {
	bpftest.RequireRoot(t)
	root := repoRoot(t)
	var objects []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" && strings.HasSuffix(filepath.Dir(path), "fuzz")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".o") {
			rel, _ := filepath.Rel(root, path)
			objects = append(objects, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(objects) < 10 {
		t.Fatalf("found only %d objects under %s: %v", len(objects), root, objects)
	}
	for _, rel := range objects {
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, rel))
			if err != nil {
				t.Fatal(err)
			}
			verdicts, err := bpf.Verify(data)
			if refusedOnPurpose[rel] {
				if err == nil && allAccepted(verdicts) {
					t.Errorf("%s is meant to be refused, and this kernel took it", rel)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range verdicts {
				if v.Err != nil {
					if feature, ok := featureFixtures[rel]; ok {
						t.Skipf("skipped: %s needs %s: %s", v.Program, feature, v.Rejection())
					}
					t.Errorf("%s: rejected: %v", v.Program, v.Err)
					continue
				}
				t.Logf("%-24s %-14s %9d insns %5.1f%% %10s", v.Program, v.Type, v.Insns, float64(v.Insns)*100/bpf.VerifierLimit, v.Time)
				if v.Insns > bpf.VerifierLimit/4 {
					t.Errorf("%s: %d instructions processed, over a quarter of the verifier's limit (%d): too little headroom for the next kernel build", v.Program, v.Insns, bpf.VerifierLimit/4)
				}
			}
		})
	}
}

func allAccepted(vs []bpf.ProgramVerdict) bool {
	for _, v := range vs {
		if v.Err != nil {
			return false
		}
	}
	return true
}

// repoRoot is the directory holding go.mod, found upwards from the test's
// directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
