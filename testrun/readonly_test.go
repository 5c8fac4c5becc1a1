// SPDX-License-Identifier: Apache-2.0

package testrun_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/fixture"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// progsWithCheck loads the fixture programs and a WriteCheck that knows
// their object.
func progsWithCheck(t *testing.T) (*fixture.ProgsObjects, testrun.WriteCheck) {
	t.Helper()
	bpftest.RequireRoot(t)
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	data, err := os.ReadFile("fixture/progs_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := emu.LoadObject("progs", data)
	if err != nil {
		t.Fatal(err)
	}
	return &p, func(prog *ebpf.Program) (map[ebpf.MapID]bool, error) { return emu.WrittenMaps(prog, obj) }
}

func changesOf(o *testrun.Outcome, m string) []testrun.MapChange {
	var out []testrun.MapChange
	for _, c := range o.Maps {
		if c.Map == m {
			out = append(out, c)
		}
	}
	return out
}

// seen, which xdp_count only looks keys up in, is not read; the maps it
// writes are, including bytes and last, which it writes only through the
// pointers lookups return.
func TestRunLeavesUnwrittenMapsUnread(t *testing.T) {
	p, check := progsWithCheck(t)
	in := packet.MustBuild(`Ether()/IPv4()/UDP()/Raw("count me")`)
	o, err := testrun.Run(testrun.Options{Program: p.XdpCount, Data: in, WriteCheck: check})
	if err != nil {
		t.Fatal(err)
	}
	notRead := strings.Join(o.MapsNotRead, "\n")
	if !strings.Contains(notRead, "seen: not read: xdp_count never writes it") || strings.Count(notRead, "not read") != 1 {
		t.Errorf("MapsNotRead %q, want seen alone", o.MapsNotRead)
	}
	if len(changesOf(o, "hits")) != 1 || len(changesOf(o, "bytes")) != 1 || len(changesOf(o, "last")) != 1 {
		t.Errorf("changes %+v, want hits, bytes and last (written through lookup pointers)", o.Maps)
	}
	if j := o.JSON(); j["maps_not_read"] == nil {
		t.Errorf("JSON lacks maps_not_read: %v", j)
	}

	// Without the check, and with AllMaps, every map is read.
	for _, opts := range []testrun.Options{
		{Program: p.XdpCount, Data: in},
		{Program: p.XdpCount, Data: in, WriteCheck: check, AllMaps: true},
	} {
		o, err := testrun.Run(opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.MapsNotRead) != 0 {
			t.Errorf("AllMaps %v, check %v: MapsNotRead %q", opts.AllMaps, opts.WriteCheck != nil, o.MapsNotRead)
		}
	}
}

// Another writer: its changes to a map the run writes are still shown and
// marked (+others); its changes to a map the run cannot write are not
// shown unless AllMaps asks for every map.
func TestRunUnreadMapsAndOtherWriters(t *testing.T) {
	p, check := progsWithCheck(t)
	in := packet.MustBuild(`Ether()/IPv4()/UDP()/Raw("count me")`)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := uint64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			p.Hits.Put(uint32(99), n)           // a map the run writes
			p.Seen.Put(uint32(4242), uint32(n)) // a map it only reads
			time.Sleep(20 * time.Microsecond)
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(time.Millisecond)

	// As in TestMapDiffMarksOtherWriters: under qemu's TCG the writer may
	// get no turn in a run's windows, so a run is tried again.
	var theirs, seen *testrun.MapChange
	for try := 1; try <= 5 && (theirs == nil || !theirs.Others); try++ {
		o, err := testrun.Run(testrun.Options{Program: p.XdpCount, Data: in, Repeat: 20000, WriteCheck: check})
		if err != nil {
			t.Fatal(err)
		}
		theirs = nil
		for i, c := range o.Maps {
			switch {
			case c.Map == "hits" && c.Key == "99":
				theirs = &o.Maps[i]
			case c.Map == "seen":
				t.Fatalf("seen is not read, yet: %+v", c)
			}
		}
		if !strings.Contains(strings.Join(o.MapsNotRead, "\n"), "seen: not read") {
			t.Fatalf("MapsNotRead %q lacks seen", o.MapsNotRead)
		}
	}
	if theirs == nil || !theirs.Others {
		t.Errorf("the other writer's hits 99: %+v, want it shown and marked", theirs)
	}

	for try := 1; try <= 5 && seen == nil; try++ {
		o, err := testrun.Run(testrun.Options{Program: p.XdpCount, Data: in, Repeat: 20000, WriteCheck: check, AllMaps: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range o.Maps {
			if c.Map == "seen" && c.Key == "4242" {
				seen = &o.Maps[i]
			}
		}
	}
	if seen == nil {
		t.Errorf("with AllMaps, the other writer's change to seen is not shown")
	}
}
