// SPDX-License-Identifier: Apache-2.0

package testrun_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
)

// bigLearner is an emulator that knows the fixture's object.
func bigLearner(tb testing.TB) *emu.Learner {
	tb.Helper()
	data, err := os.ReadFile("fixture/big_bpfel.o")
	if err != nil {
		tb.Fatal(err)
	}
	o, err := emu.LoadObject("testrun/fixture/big_bpfel.o", data)
	if err != nil {
		tb.Fatal(err)
	}
	return &emu.Learner{Objects: []*emu.Object{o}}
}

// bigFrame is a minimal Ethernet frame: xdp_big does not read it.
func bigFrame() []byte {
	f := make([]byte, 64)
	f[12], f[13] = 0x08, 0x00
	return f
}

func run(tb testing.TB, opts testrun.Options) *testrun.Outcome {
	tb.Helper()
	o, err := testrun.Run(opts)
	if err != nil {
		tb.Fatalf("run: %v", err)
	}
	return o
}

// wantChanges checks the run reported exactly the changes want (key ->
// change, before, after) of map big.
func wantChanges(t *testing.T, o *testrun.Outcome, want map[string][3]string) {
	t.Helper()
	if len(o.Maps) != len(want) {
		t.Fatalf("changes %+v, want %v", o.Maps, want)
	}
	for _, c := range o.Maps {
		w, ok := want[c.Key]
		if !ok || c.Map != "big" || c.Change != w[0] || c.Before != w[1] || c.After != w[2] {
			t.Errorf("change %s %s: %q -> %q, want %v", c.Change, c.Key, c.Before, c.After, w)
		}
	}
}

func wantMethod(t *testing.T, o *testrun.Outcome, want string) {
	t.Helper()
	if len(o.MapMethods) != 1 || !strings.Contains(o.MapMethods[0], want) {
		t.Errorf("methods %q, want one saying %q", o.MapMethods, want)
	}
}

// A run that changes two entries of a 1,000,000-entry hash map, one in
// place through the pointer a lookup returned and one through
// bpf_map_update_elem, is diffed by the keys the emulator saw it touch
// (issue 14 item 2; the time is a benchmark's,
// BenchmarkRunMillionEntryMap). A run the emulator cannot stand in for
// (an insert into the map, whose count it would have to walk the map
// for) is diffed by the in-kernel copy, and says so.
func TestLearnedMillionEntries(t *testing.T) {
	p := testrun.BigFilled(t)
	l := bigLearner(t)
	began := time.Now()
	o := run(t, testrun.Options{Program: p.XdpBig, Data: bigFrame(), Learner: l})
	t.Logf("run took %v; %q", time.Since(began), o.MapMethods)
	if len(o.MapNotes) > 0 {
		t.Errorf("notes: %q", o.MapNotes)
	}
	wantMethod(t, o, "by the 2 key(s) the emulator saw the run touch")
	wantChanges(t, o, map[string][3]string{"7": {"changed", "70", "71"}, "8": {"changed", "80", "1080"}})

	// Again: the values moved on.
	o = run(t, testrun.Options{Program: p.XdpBig, Data: bigFrame(), Learner: l})
	wantMethod(t, o, "by the 2 key(s)")
	wantChanges(t, o, map[string][3]string{"7": {"changed", "71", "72"}, "8": {"changed", "1080", "2080"}})

	// Without 7 and 8 the run inserts 8: the emulator would have to count
	// the map's entries (is it full?), which it does not for maps this
	// large, so the map is copied, and the insert still shows.
	if err := p.Big.Delete(uint32(7)); err != nil {
		t.Fatal(err)
	}
	if err := p.Big.Delete(uint32(8)); err != nil {
		t.Fatal(err)
	}
	o = run(t, testrun.Options{Program: p.XdpBig, Data: bigFrame(), Learner: l})
	wantMethod(t, o, "copied whole in the kernel")
	wantChanges(t, o, map[string][3]string{"8": {"added", "", "1000"}})
	if len(o.MapNotes) > 0 {
		t.Errorf("notes: %q", o.MapNotes)
	}

	// Repeated runs are not emulated (the first run and 3 more: 7 stays
	// absent, 8 gains 1000 each time).
	o = run(t, testrun.Options{Program: p.XdpBig, Data: bigFrame(), Learner: l, Repeat: 3})
	wantMethod(t, o, "not repeated ones")
	wantChanges(t, o, map[string][3]string{"8": {"changed", "1000", "5000"}})
}

// A program the emulator cannot run (here: it does not know the object
// it came from) has its large map copied in the kernel, and the report
// says why.
func TestLearnerFallsBack(t *testing.T) {
	p := testrun.BigFilled(t)
	o := run(t, testrun.Options{Program: p.XdpBig, Data: bigFrame(), Learner: &emu.Learner{}})
	wantMethod(t, o, "copied whole in the kernel before and after")
	wantMethod(t, o, "no object the emulator knows holds this program")
	wantChanges(t, o, map[string][3]string{"7": {"changed", "70", "71"}, "8": {"changed", "80", "1080"}})
}

// BenchmarkRunMillionEntryMap is a whole run, map changes included, of a
// program that changes two entries of a 1,000,000-entry hash map, with
// the emulator naming the keys it touches.
func BenchmarkRunMillionEntryMap(b *testing.B) {
	p := testrun.BigFilled(b)
	l := bigLearner(b)
	in := bigFrame()
	for b.Loop() {
		o, err := testrun.Run(testrun.Options{Program: p.XdpBig, Data: in, Learner: l})
		if err != nil || len(o.Maps) != 2 || len(o.MapNotes) > 0 || !strings.Contains(strings.Join(o.MapMethods, ""), "emulator saw") {
			b.Fatalf("%v %+v", err, o)
		}
	}
}
