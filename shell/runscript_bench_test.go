// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/shell"
)

// BenchmarkRunScript1000 is bench/runscript's bpfsh half in-process, for
// profiling (go test -cpuprofile): a script of 1,000 `run` lines of the
// fixture's xdp_count with the full report, the object loaded with `load`
// as the benchmark does (so that run knows its instructions, unlike
// commands' BenchmarkRunScript, which pins the programs from Go). It
// reports µs per run.
func BenchmarkRunScript1000(b *testing.B) {
	bpftest.RequireRoot(b)
	b.Setenv("XDG_STATE_HOME", b.TempDir()) // load's manifest
	root := bpftest.PinRoot(b)
	obj, err := filepath.Abs("../testrun/fixture/progs_bpfel.o") // bench/runscript's object
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	if code := shell.Main([]string{"--pin-root", root, "-c", "load " + obj + " name fx"}, strings.NewReader(""), &out, &out); code != 0 {
		b.Fatalf("load: exit %d:\n%s", code, out.String())
	}
	script := filepath.Join(b.TempDir(), "runs.bsh")
	line := "run fx/xdp_count " + suiteFrame + "\n"
	if err := os.WriteFile(script, []byte(strings.Repeat(line, 1000)), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		out.Reset()
		if code := shell.Main([]string{"--pin-root", root, "-f", script}, strings.NewReader(""), &out, &out); code != 0 {
			b.Fatalf("exit %d:\n%s", code, out.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/run")
}
