// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"testing"

	"github.com/bpfsh/bpfsh/testrun"
)

// BenchmarkHit test-runs a get hit (a 3-byte value) the way `bpfsh run`
// does (fresh copies of the request, the kernel's clock for each run, the
// median less the timer's own cost) and reports kernel-ns/req;
// BenchmarkMiss a get of a key not cached.
//
//	go test ./bpf/cache -run '^$' -bench .
func BenchmarkHit(b *testing.B) {
	c := load(b)
	c.missThenFill(1, "foo", 0, "bar")
	benchRun(b, c, udpReq(b, 2, "get foo\r\n"), xdpTX)
}

// BenchmarkHit1K is a hit with a 1 KiB value.
func BenchmarkHit1K(b *testing.B) {
	c := load(b)
	v := make([]byte, MaxValue)
	for i := range v {
		v[i] = 'v'
	}
	c.missThenFill(1, "foo", 0, string(v))
	benchRun(b, c, udpReq(b, 2, "get foo\r\n"), xdpTX)
}

func BenchmarkMiss(b *testing.B) {
	c := load(b)
	benchRun(b, c, udpReq(b, 2, "get foo\r\n"), xdpPass)
}

func benchRun(b *testing.B, c *ct, in []byte, want uint32) {
	var total float64
	n := 0
	for b.Loop() {
		o, err := testrun.Run(testrun.Options{Program: c.rx, Data: in, Repeat: 400, NoTrace: true, NoMaps: true})
		if err != nil {
			b.Fatal(err)
		}
		if o.Retval != want {
			b.Fatalf("verdict %s, want %d", o.RetvalName, want)
		}
		total += float64(o.Timing.PerRun().Nanoseconds())
		n++
	}
	b.ReportMetric(total/float64(n), "kernel-ns/req")
}
