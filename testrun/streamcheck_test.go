// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"testing"

	"github.com/cilium/ebpf"
)

// A program StreamCheck says cannot write to its streams has them left
// unread; one it says may (or cannot tell about) has them read; the check
// runs once per program.
func TestRunReadsStreamsOnlyWhenWritable(t *testing.T) {
	if ProgStreamsSupported() != nil {
		t.Skip("skipped: this kernel has no BPF program streams")
	}
	p := progs(t)
	asked := map[string]int{}
	check := func(may bool, err error) StreamCheck {
		return func(prog *ebpf.Program) (bool, error) {
			info, _ := prog.Info()
			asked[info.Name]++
			return may, err
		}
	}
	in := udpFrame("streams")
	for _, c := range []struct {
		prog  *ebpf.Program
		name  string
		check StreamCheck
		reads int64
	}{
		{p.XdpCount, "xdp_count", check(false, nil), 0},
		{p.XdpPass, "xdp_pass", check(true, nil), 2},
		{p.XdpReflect, "xdp_reflect", check(false, errUnknownForTest), 2},
		{p.TcMark, "tc_mark", nil, 2},
	} {
		for range 3 {
			before := streamReads.Load()
			if _, err := Run(Options{Program: c.prog, Data: in, StreamCheck: c.check, NoMaps: true, NoTrace: true}); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got := streamReads.Load() - before; got != c.reads {
				t.Errorf("%s: %d stream reads, want %d", c.name, got, c.reads)
			}
		}
		if c.check != nil && asked[c.name] != 1 {
			t.Errorf("%s: the check ran %d times in 3 runs, want once", c.name, asked[c.name])
		}
	}
}

var errUnknownForTest = errorString("cannot tell")

type errorString string

func (e errorString) Error() string { return string(e) }
