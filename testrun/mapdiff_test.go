// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

func findChange(cs []MapChange, m, change string) []MapChange {
	var out []MapChange
	for _, c := range cs {
		if c.Map == m && c.Change == change {
			out = append(out, c)
		}
	}
	return out
}

func TestMapDiff(t *testing.T) {
	p := progs(t)
	in := udpFrame("count me")
	o := mustRun(t, Options{Program: p.XdpCount, Data: in})
	if o.RetvalName != "XDP_PASS" {
		t.Fatalf("retval %s", o.RetvalName)
	}
	// hits: key 17 (UDP) added with 1, decoded by the map's BTF.
	added := findChange(o.Maps, "hits", "added")
	if len(added) != 1 {
		t.Fatalf("hits changes %+v, want one added entry", o.Maps)
	}
	if added[0].Key != "17" || added[0].Before != "" || added[0].After != "1" {
		t.Errorf("hits added %+v, want key 17 with value 1", added[0])
	}
	// bytes: per-CPU array, summed over CPUs.
	changed := findChange(o.Maps, "bytes", "changed")
	if len(changed) != 1 || !strings.Contains(changed[0].After, "CPUs)") {
		t.Errorf("bytes changes %+v, want key 0 changed, summed over the CPUs", changed)
	}
	last := findChange(o.Maps, "last", "changed")
	if len(last) != 1 {
		t.Errorf("last changes %+v", last)
	}
	for _, c := range o.Maps {
		if c.Map == "lens" || c.Map == "events" || c.Map == "seen" {
			t.Errorf("change in %s: queues and ring buffers are not diffed, seen is untouched: %+v", c.Map, c)
		}
	}
	if len(o.Maps) != 3 {
		t.Errorf("changes %+v, want exactly hits, bytes and last", o.Maps)
	}

	// A second run changes hits in place.
	o = mustRun(t, Options{Program: p.XdpCount, Data: in})
	if ch := findChange(o.Maps, "hits", "changed"); len(ch) != 1 || ch[0].Before == ch[0].After {
		t.Errorf("second run: hits %+v", o.Maps)
	}

	o = mustRun(t, Options{Program: p.XdpCount, Data: in, NoMaps: true})
	if o.Maps != nil {
		t.Errorf("NoMaps: %+v", o.Maps)
	}
}

func TestMapChangesAddRemoveChange(t *testing.T) {
	snap := &mapSnap{name: "m", keySize: 1, valueSize: 1, ncpu: 1}
	before := map[string][]byte{"\x01": {1}, "\x02": {2}, "\x03": {3}}
	after := map[string][]byte{"\x01": {1}, "\x02": {9}, "\x04": {4}}
	got := snap.changes(before, after, nil)
	want := []struct{ change, key, before, after string }{
		{"changed", "02", "02", "09"}, {"removed", "03", "03", ""}, {"added", "04", "", "04"},
	}
	if len(got) != len(want) {
		t.Fatalf("changes %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if g.Change != w.change || g.Key != w.key || g.Before != w.before || g.After != w.after {
			t.Errorf("change %d = %+v, want %+v", i, g, w)
		}
	}
}

// There is no bound on entries any more: seen, filled with more than the
// old bound of 10,000, is still diffed (it is looked up and left alone),
// and the other maps too.
func TestMapDiffNoEntryBound(t *testing.T) {
	p := progs(t)
	keys := make([]uint32, 10001)
	vals := make([]uint32, len(keys))
	for i := range keys {
		keys[i] = uint32(1000 + i) // not the frame's length, which xdp_count looks up
	}
	if _, err := p.Seen.BatchUpdate(keys, vals, &ebpf.BatchOptions{}); err != nil {
		t.Fatalf("fill seen: %v", err)
	}
	o := mustRun(t, Options{Program: p.XdpCount, Data: udpFrame("bounds")})
	if notes := strings.Join(o.MapNotes, "\n"); strings.Contains(notes, "seen") {
		t.Errorf("notes %q", notes)
	}
	if len(findChange(o.Maps, "hits", "added")) != 1 {
		t.Errorf("the other maps are still diffed: %+v", o.Maps)
	}
	for _, c := range o.Maps {
		if c.Map == "seen" {
			t.Errorf("seen was only looked up, yet: %+v", c)
		}
	}
}

func TestPerCPUSum(t *testing.T) {
	// Two CPUs holding 3 and 4: the sum is 7, whatever the formatter.
	snap := &mapSnap{valueSize: 8, ncpu: 2}
	v := append(le64(3), le64(4)...)
	text, _ := snap.formatValue(v, make([]byte, 16), nil)
	if !strings.HasPrefix(text, hex.EncodeToString(le64(7))[:2]) || !strings.Contains(text, "sum of 2 CPUs") {
		t.Errorf("sum %q", text)
	}
	// A value that is not made of integers shows the CPU that changed.
	snap = &mapSnap{valueSize: 3, ncpu: 2}
	text, _ = snap.formatValue(make([]byte, 6), []byte{0, 0, 0, 1, 0, 0}, nil)
	if !strings.HasPrefix(text, "cpu1: ") {
		t.Errorf("odd-sized per-CPU value %q", text)
	}
}

func le64(v uint64) []byte {
	b := make([]byte, 8)
	putUint(b, v)
	return b
}

// With repeat N the map changes are across every run, and say so: the
// run shown, the timed runs and the kernel's repeat (issue item 6).
func TestMapDiffAcrossRepeats(t *testing.T) {
	p := progs(t)
	in := udpFrame("count me")
	mustRun(t, Options{Program: p.XdpCount, Data: in}) // hits 17 exists from here on
	var before uint64
	if err := p.Hits.Lookup(uint32(17), &before); err != nil {
		t.Fatal(err)
	}
	o := mustRun(t, Options{Program: p.XdpCount, Data: in, Repeat: 10, Bench: true})
	if o.MapRuns != 1+10+10 {
		t.Errorf("MapRuns %d, want 21: the run shown, 10 fresh and a kernel repeat of 10", o.MapRuns)
	}
	var after uint64
	if err := p.Hits.Lookup(uint32(17), &after); err != nil {
		t.Fatal(err)
	}
	ch := findChange(o.Maps, "hits", "changed")
	if len(ch) != 1 || ch[0].Before != strconv.FormatUint(before, 10) || ch[0].After != strconv.FormatUint(after, 10) || after-before != 21 {
		t.Errorf("hits %+v; the map went from %d to %d, want 21 more and the diff to say so", ch, before, after)
	}
	if ch[0].Others {
		t.Errorf("nothing else writes hits, but the change is marked as another writer's")
	}
}

// A before/after diff sees every writer: an entry another writer keeps
// changing is marked, the run's own entries are not (issue item 7).
func TestMapDiffMarksOtherWriters(t *testing.T) {
	p := progs(t)
	in := udpFrame("count me")
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
			p.Hits.Put(uint32(99), n) // another writer, on its own key
			time.Sleep(20 * time.Microsecond)
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(time.Millisecond)
	// The writer must get a turn both while the runs go on and in the look
	// after them. Under qemu's single-threaded TCG a vCPU can hold the host
	// thread for longer than a whole run, so a run that saw no other write
	// is tried again (at most 5 times); every try must keep the run's own
	// entry unmarked.
	var o *Outcome
	var ours, theirs *MapChange
	for try := 1; try <= 5; try++ {
		o = mustRun(t, Options{Program: p.XdpCount, Data: in, Repeat: 20000})
		ours, theirs = nil, nil
		for i, c := range o.Maps {
			switch {
			case c.Map == "hits" && c.Key == "17":
				ours = &o.Maps[i]
			case c.Map == "hits" && c.Key == "99":
				theirs = &o.Maps[i]
			}
		}
		if ours == nil {
			t.Fatalf("changes %+v, want hits 17 (the run's)", o.Maps)
		}
		if ours.Others {
			t.Fatalf("try %d: the run's own entry is marked as another writer's: %+v", try, *ours)
		}
		if theirs != nil && theirs.Others {
			break
		}
		t.Logf("try %d: the other writer did not write in both windows (%+v); again", try, theirs)
	}
	if theirs == nil {
		t.Fatalf("changes %+v, want hits 99 (the other writer's) too", o.Maps)
	}
	if ours.Others || !theirs.Others {
		t.Errorf("the run's entry marked %v, the other writer's %v; want false, true", ours.Others, theirs.Others)
	}
	notes := strings.Join(o.MapNotes, "\n")
	if !strings.Contains(notes, "map hits changed again in the ") || !strings.Contains(notes, "another writer") {
		t.Errorf("notes %q do not name the other writer", notes)
	}
	if j, _ := json.Marshal(o.Maps); !strings.Contains(string(j), `"others":true`) {
		t.Errorf("JSON %s lacks others", j)
	}
}
