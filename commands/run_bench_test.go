// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/shell"
	"github.com/bpfsh/bpfsh/testrun/fixture"
)

// BenchmarkRunScript is item 1 of the scale issue: a script of 1,000 `run`
// lines on xdp_count with the full report (decoded packet, map changes,
// trace lines), through the shell as `bpfsh -f` runs it. It reports the
// cost per run line (us/run); bench/runscript compares it with bpftool
// batch.
func BenchmarkRunScript(b *testing.B) {
	root := bpftest.PinRoot(b)
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		b.Skipf("skipped: %v", err)
	}
	defer p.Close()
	if err := os.MkdirAll(filepath.Join(root, "t"), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := p.XdpCount.Pin(filepath.Join(root, "t", "xdp_count")); err != nil {
		b.Fatal(err)
	}
	const lines = 1000
	script := filepath.Join(b.TempDir(), "runs.bsh")
	line := "run t/xdp_count packet Ether()/IPv4()/UDP(dport=6390)/Raw(\"ping\")\n"
	if err := os.WriteFile(script, []byte(strings.Repeat(line, lines)), 0o600); err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	for b.Loop() {
		began := time.Now()
		if code := shell.Main([]string{"--pin-root", root, "-f", script}, strings.NewReader(""), io.Discard, os.Stderr); code != 0 {
			b.Fatalf("exit %d", code)
		}
		took += time.Since(began)
	}
	b.ReportMetric(float64(took.Microseconds())/float64(b.N*lines), "us/run")
}
