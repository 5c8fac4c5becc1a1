package testrun

import (
	"testing"

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
