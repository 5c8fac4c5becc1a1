// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/fixture"
)

// BigFilled loads the million-entry fixture and fills it: key i holds
// 10*i. Exported for the package's external tests (learn_test.go).
func BigFilled(tb testing.TB) *fixture.BigObjects {
	tb.Helper()
	bpftest.RequireRoot(tb)
	var p fixture.BigObjects
	if err := fixture.LoadBigObjects(&p, nil); err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	const n = 1_000_000
	keys := make([]uint32, n)
	vals := make([]uint64, n)
	for i := range keys {
		keys[i], vals[i] = uint32(i), uint64(10*i)
	}
	if _, err := p.Big.BatchUpdate(keys, vals, &ebpf.BatchOptions{}); err != nil {
		tb.Fatalf("fill: %v", err)
	}
	return &p
}

// A run that changes two entries of a 1,000,000-entry hash map, one in
// place through the pointer a lookup returned and one through
// bpf_map_update_elem, reports both with their old and new values (issue
// 14 item 2; the time is a benchmark's, BenchmarkRunMillionEntryMap).
func TestMapDiffMillionEntries(t *testing.T) {
	p := BigFilled(t)
	began := time.Now()
	o := mustRun(t, Options{Program: p.XdpBig, Data: udpFrame("big")})
	t.Logf("run took %v", time.Since(began))
	if len(o.MapNotes) > 0 {
		t.Errorf("notes: %q", o.MapNotes)
	}
	want := map[string][2]string{"7": {"70", "71"}, "8": {"80", "1080"}}
	got := findChange(o.Maps, "big", "changed")
	if len(got) != 2 || len(o.Maps) != 2 {
		t.Fatalf("changes %+v", o.Maps)
	}
	for _, c := range got {
		w, ok := want[c.Key]
		if !ok || c.Before != w[0] || c.After != w[1] {
			t.Errorf("change %s: %s -> %s, want %v", c.Key, c.Before, c.After, w)
		}
	}
	// Entries added and removed show as such too.
	if err := p.Big.Delete(uint32(7)); err != nil {
		t.Fatal(err)
	}
	if err := p.Big.Delete(uint32(8)); err != nil {
		t.Fatal(err)
	}
	o = mustRun(t, Options{Program: p.XdpBig, Data: udpFrame("big")})
	if a := findChange(o.Maps, "big", "added"); len(a) != 1 || a[0].Key != "8" || a[0].After != "1000" || len(o.Maps) != 1 {
		t.Errorf("after deleting 7 and 8: %+v", o.Maps)
	}
}

// compare finds the changes between two copies wherever they are, also
// when the copies drift apart by more than it looks ahead.
func TestCopierCompare(t *testing.T) {
	c := &copier{ks: 4, vs: 8, koff: 8, rec: 16, room: 1000}
	c.mem = make([]byte, 2*int(c.room)*c.rec)
	put := func(slot, i int, k uint32, v uint64) {
		off := (slot*int(c.room) + i) * c.rec
		binary.LittleEndian.PutUint32(c.mem[off:], k)
		binary.LittleEndian.PutUint64(c.mem[off+8:], v)
	}
	for i := range 900 {
		put(0, i, uint32(i), uint64(i))
	}
	// After: 5 changed, 10 removed, 700 added at the front (moving every
	// record along), 800..899 reversed (moved inside their buckets).
	j := 0
	put(1, j, 700, 7)
	j++
	for i := range 900 {
		switch {
		case i == 10:
			continue
		case i == 5:
			put(1, j, 5, 55)
		case i >= 800:
			put(1, j, uint32(1699-i), uint64(1699-i))
		default:
			put(1, j, uint32(i), uint64(i))
		}
		j++
	}
	c.n = [2]uint32{900, uint32(j)}
	before, after := c.compare(0, 1)
	got := fmt.Sprint(len(before), len(after))
	if got != "2 2" {
		t.Fatalf("before %d entries, after %d; want 2 2 (5 changed, 10 removed, 700 added)", len(before), len(after))
	}
	key := func(k uint32) string { return string(binary.LittleEndian.AppendUint32(nil, k)) }
	if v := after[key(5)]; !bytes.Equal(v, binary.LittleEndian.AppendUint64(nil, 55)) {
		t.Errorf("5 after %x", v)
	}
	if _, ok := before[key(10)]; !ok {
		t.Error("10 not seen removed")
	}
	if _, ok := after[key(700)]; !ok {
		t.Error("700 not seen added")
	}
}

// BenchmarkCopyMillionEntryMap is a whole run, map changes included, of a
// program that changes two entries of a 1,000,000-entry hash map.
func BenchmarkCopyMillionEntryMap(b *testing.B) {
	p := BigFilled(b)
	in := udpFrame("big")
	for b.Loop() {
		o, err := Run(Options{Program: p.XdpBig, Data: in})
		if err != nil || len(o.Maps) != 2 {
			b.Fatalf("%v %+v", err, o)
		}
	}
}
