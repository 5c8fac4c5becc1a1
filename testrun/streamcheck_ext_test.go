// SPDX-License-Identifier: Apache-2.0

package testrun_test

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/fixture"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// A program that writes to its streams still has its stream lines in the
// report when run with the check that lets others skip reading them.
func TestStreamWriterKeepsItsLinesWithTheCheck(t *testing.T) {
	bpftest.RequireRoot(t)
	if err := testrun.ProgStreamsSupported(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	var st fixture.StreamObjects
	if err := fixture.LoadStreamObjects(&st, nil); err != nil {
		t.Skipf("skipped: the bpf_stream_vprintk_impl kfunc does not load here: %v", err)
	}
	defer st.Close()
	data, err := os.ReadFile("fixture/stream_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := emu.LoadObject("stream", data)
	if err != nil {
		t.Fatal(err)
	}
	check := func(p *ebpf.Program) (bool, error) { return emu.StreamWrites(p, obj) }
	// The kernel's instructions of a kfunc caller do not carry the
	// object's tag (the call is relocated), so the check may not find it;
	// either way it must not say "cannot write".
	if may, err := check(st.XdpStream); !may {
		t.Fatalf("StreamWrites(xdp_stream) = %v, %v; want true", may, err)
	}
	if err := testrun.StreamWritesWork(); err != nil {
		t.Skipf("skipped the run: %v", err)
	}
	for range 2 {
		o, err := testrun.Run(testrun.Options{Program: st.XdpStream, Data: packet.MustBuild(`Ether()/IPv4()/UDP()/Raw("stream")`), StreamCheck: check})
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Streams) != 2 || o.Streams[0].Stream != "stdout" || o.Streams[1].Stream != "stderr" {
			t.Errorf("streams %+v, want a stdout and a stderr line", o.Streams)
		}
	}
}

// The loaded fixture's xdp_count, found in its object, cannot write to
// its streams.
func TestStreamWritesOfLoadedProgram(t *testing.T) {
	p, _ := progsWithCheck(t)
	data, err := os.ReadFile("fixture/progs_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := emu.LoadObject("progs", data)
	if err != nil {
		t.Fatal(err)
	}
	if may, err := emu.StreamWrites(p.XdpCount, obj); may || err != nil {
		t.Errorf("StreamWrites(xdp_count) = %v, %v; want false", may, err)
	}
}
