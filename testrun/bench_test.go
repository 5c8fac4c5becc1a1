// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/fixture"
)

// BenchmarkRun is what one `run` costs end to end (info, context, map
// diff, trace capture, stream read) for a program with six maps that
// prints: bpfsh should add well under a millisecond to the kernel's time.
func BenchmarkRun(b *testing.B) {
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		b.Skipf("skipped: %v", err)
	}
	defer p.Close()
	in := udpFrame("bench")
	b.ResetTimer()
	for b.Loop() {
		if _, err := Run(Options{Program: p.XdpCount, Data: in}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunBare is the same without the map diff and trace capture.
func BenchmarkRunBare(b *testing.B) {
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		b.Skipf("skipped: %v", err)
	}
	defer p.Close()
	in := udpFrame("bench")
	for b.Loop() {
		if _, err := Run(Options{Program: p.XdpCount, Data: in, NoMaps: true, NoTrace: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBenchVsBpftool compares bench's per-run figure with what
// `bpftool prog run ... repeat N` prints, for a program that leaves its
// input alone (they should agree within 10%) and one that rewrites it
// (bpftool times the rewritten path; bench's figure comes from fresh
// copies). It reports both as metrics; it is a benchmark, not a test,
// because timings vary with the machine.
func BenchmarkBenchVsBpftool(b *testing.B) {
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		b.Skip("skipped: bpftool is not installed")
	}
	root := bpftest.PinRoot(b)
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		b.Skipf("skipped: %v", err)
	}
	defer p.Close()
	in := udpFrame("bench")
	input := filepath.Join(b.TempDir(), "in.bin")
	if err := os.WriteFile(input, in, 0o644); err != nil {
		b.Fatal(err)
	}
	const repeat = 200000
	for _, c := range []struct {
		name string
		prog *ebpf.Program
	}{{"xdp_count", p.XdpCount}, {"xdp_reflect", p.XdpReflect}} {
		b.Run(c.name, func(b *testing.B) {
			pinned := filepath.Join(root, c.name)
			if err := c.prog.Pin(pinned); err != nil {
				b.Fatal(err)
			}
			var bpftoolNS, bpfshNS float64
			for b.Loop() {
				out, err := exec.Command(bpftool, "-j", "prog", "run", "pinned", pinned, "data_in", input, "repeat", fmt.Sprint(repeat)).Output()
				if err != nil {
					b.Fatalf("bpftool: %v", err)
				}
				var r struct{ Duration float64 }
				if err := json.Unmarshal(out, &r); err != nil {
					b.Fatalf("bpftool said %q: %v", out, err)
				}
				o, err := Run(Options{Program: c.prog, Data: in, Repeat: repeat, Bench: true, NoMaps: true, NoTrace: true})
				if err != nil {
					b.Fatal(err)
				}
				bpftoolNS += r.Duration
				bpfshNS += float64(o.Timing.PerRun().Nanoseconds())
			}
			b.ReportMetric(bpftoolNS/float64(b.N), "bpftool-ns/run")
			b.ReportMetric(bpfshNS/float64(b.N), "bench-ns/run")
		})
	}
}
