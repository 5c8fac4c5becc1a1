// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Comparison is the verdict of holding an emulated run against the
// kernel's run of the same program on the same input and maps.
type Comparison struct {
	Program string `json:"program"`
	// Agree is true when everything compared is equal.
	Agree bool `json:"agree"`
	// Diffs are the differences, the first one first.
	Diffs []string `json:"diffs,omitempty"`
	// Checked lists what was compared ("retval", "packet 46 bytes",
	// "map hits: 3 entries", "2 trace lines").
	Checked []string `json:"checked"`
	// NotComparable lists what could not be compared, and why (values
	// that depend on the time or random numbers, maps too large to read).
	NotComparable []string `json:"not_comparable,omitempty"`
}

// Summary is one line: "the kernel agrees" or the first difference.
func (c *Comparison) Summary() string {
	if c.Agree {
		s := "the kernel agrees"
		if len(c.NotComparable) > 0 {
			s += fmt.Sprintf(" (%d thing(s) not comparable: %s)", len(c.NotComparable), c.NotComparable[0])
		}
		return s
	}
	return "the kernel differs: " + c.Diffs[0]
}

func (c *Comparison) differ(format string, args ...any) {
	c.Agree = false
	c.Diffs = append(c.Diffs, fmt.Sprintf(format, args...))
}

func (c *Comparison) skip(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !slices.Contains(c.NotComparable, s) {
		c.NotComparable = append(c.NotComparable, s)
	}
}

// kernelRun is what the kernel did.
type kernelRun struct {
	retval  uint64
	dataOut []byte
	ctxOut  []byte
	// trace is nil when the lines were not captured.
	trace     []string
	traceOK   bool
	maps      map[string]*mapSnap // after the run
	rings     map[string][]RingRecord
	ringEnd   map[string]uint64 // producer positions after the run
	ringStart map[string]uint64 // and before
	queues    map[string][][]byte
	noCtxOut  bool
}

// mapSnap is a map's contents as read from the kernel.
type mapSnap struct {
	name    string
	entries map[string][]byte
	// partial means only some keys were read (the map is too large).
	partial bool
	note    string
}

// compare holds two emulated runs (the same input at different times and
// seeds: what differs between them depends on time or randomness and is
// not compared) against the kernel's.
func compare(name string, emu, alt *Result, before map[string]*mapSnap, k *kernelRun, hard []string) *Comparison {
	c := &Comparison{Program: name, Agree: true}
	for _, h := range hard {
		c.skip("%s", h)
	}
	// A difference the emulator knows it cannot rule out is reported as
	// not comparable rather than as a disagreement.
	failed := func(what string, args ...any) {
		if len(hard) > 0 {
			c.skip("%s (the run is not comparable: %s)", fmt.Sprintf(what, args...), hard[0])
			return
		}
		c.differ(what, args...)
	}

	// The verdict.
	switch {
	case emu.Retval != alt.Retval:
		c.skip("the return value depends on the time or random numbers (%d or %d)", int64(emu.Retval), int64(alt.Retval))
	case uint32(emu.Retval) != uint32(k.retval):
		failed("retval: the emulator returned %d, the kernel %d", int64(int32(emu.Retval)), int64(int32(k.retval)))
	default:
		c.Checked = append(c.Checked, "retval")
	}

	// The packet (or flow keys).
	if emu.DataOut != nil || k.dataOut != nil {
		if diff, masked := maskedDiff(emu.DataOut, alt.DataOut, k.dataOut); diff != "" {
			failed("data out: %s", diff)
		} else {
			c.Checked = append(c.Checked, fmt.Sprintf("data out %d bytes", len(k.dataOut)))
			if masked > 0 {
				c.skip("%d byte(s) of the output depend on the time or random numbers", masked)
			}
		}
	}

	// The context handed back.
	if !k.noCtxOut && (emu.CtxOut != nil || k.ctxOut != nil) {
		if diff, masked := maskedDiff(emu.CtxOut, alt.CtxOut, k.ctxOut); diff != "" {
			failed("ctx out: %s", diff)
		} else {
			c.Checked = append(c.Checked, "ctx out")
			if masked > 0 {
				c.skip("%d byte(s) of the context depend on the time or random numbers", masked)
			}
		}
	}

	// bpf_printk lines.
	if k.traceOK {
		switch {
		case !slices.Equal(emu.Trace, alt.Trace):
			c.skip("the trace lines depend on the time or random numbers")
		case len(emu.Trace) != len(k.trace):
			failed("trace: the emulator printed %d line(s) %q, the kernel %d %q", len(emu.Trace), emu.Trace, len(k.trace), k.trace)
		default:
			ok := true
			for i := range emu.Trace {
				if strings.TrimRight(emu.Trace[i], " \n") != strings.TrimRight(k.trace[i], " \n") {
					failed("trace line %d: the emulator printed %q, the kernel %q", i+1, emu.Trace[i], k.trace[i])
					ok = false
					break
				}
			}
			if ok {
				c.Checked = append(c.Checked, fmt.Sprintf("%d trace line(s)", len(k.trace)))
			}
		}
	}

	// Maps: the kernel's after must be before plus the emulator's writes.
	names := make([]string, 0, len(k.maps))
	for n := range k.maps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		after, b := k.maps[n], before[n]
		if b == nil {
			continue
		}
		if b.note != "" || after.note != "" {
			c.skip("map %s: %s", n, b.note+after.note)
			continue
		}
		exp := applyChanges(b.entries, emu.Maps, n)
		alt := applyChanges(b.entries, alt.Maps, n)
		keys := map[string]bool{}
		for k := range exp {
			keys[k] = true
		}
		for k := range after.entries {
			keys[k] = true
		}
		if b.partial {
			// Only the keys the emulator changed were read.
			for k := range keys {
				if !changedKey(emu.Maps, n, k) {
					delete(keys, k)
				}
			}
			c.skip("map %s is too large to read whole: only the entries the emulator changed were compared", n)
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		bad := false
		for _, key := range sorted {
			e, eok := exp[key]
			a, aok := alt[key]
			g, gok := after.entries[key]
			if eok != aok {
				c.skip("map %s key %x: whether it exists depends on the time or random numbers", n, key)
				continue
			}
			switch {
			case eok && !gok:
				failed("map %s key %x: the emulator has %x, the kernel has no such key", n, key, e)
				bad = true
			case !eok && gok:
				failed("map %s key %x: the kernel has %x, the emulator no such key", n, key, g)
				bad = true
			case eok && gok:
				if diff, masked := maskedDiff(e, a, g); diff != "" {
					failed("map %s key %x: %s", n, key, diff)
					bad = true
				} else if masked > 0 {
					c.skip("map %s: %d byte(s) of values depend on the time or random numbers", n, masked)
				}
			}
			if bad {
				break
			}
		}
		if !bad {
			c.Checked = append(c.Checked, fmt.Sprintf("map %s: %d entries", n, len(sorted)))
		}
	}

	// Ring buffer records: the producer must have moved as far as the
	// emulator's did; the records still there (a reader may have consumed
	// some) must hold the same bytes.
	for n, kr := range k.rings {
		mine := ringRecords(emu.Rings, n)
		other := ringRecords(alt.Rings, n)
		want, moved := emu.RingEnd[n]
		if !moved {
			want = k.ringStart[n] // the emulator left the ring alone
		}
		if k.ringEnd[n] != want {
			failed("ring buffer %s: the emulator's producer position moved to %d, the kernel's to %d (the emulator submitted %d record(s))", n, want, k.ringEnd[n], len(mine))
			continue
		}
		ok := true
		seen := 0
		for _, got := range kr {
			i := slices.IndexFunc(mine, func(r RingRecord) bool { return r.Pos == got.Pos })
			if i < 0 {
				failed("ring buffer %s: the kernel has a record at %d, the emulator none", n, got.Pos)
				ok = false
				break
			}
			em := mine[i]
			var al []byte
			if i < len(other) {
				al = other[i].Data
			}
			// Bytes the program did not write hold whatever the ring
			// held there before: not compared.
			exp, gotData := maskLike(em.Data, em.Written), maskLike(got.Data, em.Written)
			if diff, _ := maskedDiff(exp, maskLike(al, em.Written), gotData); diff != "" {
				failed("ring buffer %s record at %d: %s", n, got.Pos, diff)
				ok = false
				break
			}
			seen++
		}
		if ok {
			c.Checked = append(c.Checked, fmt.Sprintf("ring buffer %s: %d record(s)", n, len(mine)))
			if seen < len(mine) {
				c.skip("ring buffer %s: %d record(s) were consumed by a reader before they could be compared (their positions agree)", n, len(mine)-seen)
			}
		}
	}

	// Queues and stacks.
	for n, vals := range k.queues {
		var exp [][]byte
		found := false
		for _, q := range emu.Queues {
			if q.Map == n {
				exp, found = q.After, true
			}
		}
		if !found {
			continue // the emulator left it alone; compared via the map diff's absence
		}
		if !slices.EqualFunc(exp, vals, bytes.Equal) {
			failed("queue %s: the emulator left %x, the kernel %x", n, exp, vals)
		} else {
			c.Checked = append(c.Checked, fmt.Sprintf("queue %s", n))
		}
	}
	return c
}

func maskLike(b []byte, written []bool) []byte {
	if b == nil {
		return nil
	}
	out := bytes.Clone(b)
	for j := range out {
		if j < len(written) && !written[j] {
			out[j] = 0
		}
	}
	return out
}

func ringRecords(recs []RingRecord, name string) []RingRecord {
	var out []RingRecord
	for _, r := range recs {
		if r.Map == name {
			out = append(out, r)
		}
	}
	return out
}

func changedKey(changes []MapChange, name, key string) bool {
	for _, c := range changes {
		if c.Map == name && string(c.Key) == key {
			return true
		}
	}
	return false
}

// applyChanges is a map's entries with a run's changes applied.
func applyChanges(before map[string][]byte, changes []MapChange, name string) map[string][]byte {
	out := make(map[string][]byte, len(before))
	for k, v := range before {
		out[k] = v
	}
	for _, c := range changes {
		if c.Map != name {
			continue
		}
		if c.After == nil {
			delete(out, string(c.Key))
		} else {
			out[string(c.Key)] = c.After
		}
	}
	return out
}

// maskedDiff compares emu with got, ignoring the bytes where emu and alt
// (the other emulated run) differ. It returns the first difference ("" if
// none) and how many bytes were ignored.
func maskedDiff(emu, alt, got []byte) (string, int) {
	if len(emu) != len(alt) {
		// The length itself depends on time or randomness.
		return "", len(emu)
	}
	if len(emu) != len(got) {
		return fmt.Sprintf("%d bytes from the emulator, %d from the kernel; first difference at byte %d", len(emu), len(got), firstDiff(emu, got)), 0
	}
	masked := 0
	for i := range emu {
		if emu[i] != alt[i] {
			masked++
			continue
		}
		if emu[i] != got[i] {
			lo, hi := max(0, i-4), min(len(emu), i+12)
			return fmt.Sprintf("byte %d: the emulator has % x, the kernel % x (bytes %d..%d)", i, emu[lo:hi], got[lo:hi], lo, hi), masked
		}
	}
	return "", masked
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
