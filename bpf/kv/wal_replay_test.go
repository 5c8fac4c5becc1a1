// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
)

// walOf commits n random records through a writer and closes it.
func walOf(t *testing.T, n int, seed uint64) *kvFixture {
	t.Helper()
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for range n {
		f.commit(t, randomRecord(rng))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

func replay(t testing.TB, path string, h [8]byte, store, meta *ebpf.Map) ReplayReport {
	t.Helper()
	rep, err := Replay(path, h, store, meta)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return rep
}

// Replaying the WAL into fresh maps gives the store the program built;
// doing it again changes nothing.
func TestReplayReproducesStore(t *testing.T) {
	f := walOf(t, 400, 7)
	store, meta := freshMaps(t)
	rep := replay(t, f.wal, f.hash, store, meta)
	if rep.Records != 400 || rep.Applied != 400 || rep.Skipped != 0 || rep.LastSeq != 400 || rep.Torn != nil || rep.Checkpoint != "" {
		t.Fatalf("replay: %+v", rep)
	}
	want := dumpStore(t, f.objs.Store)
	sameStore(t, "model", want, f.modelAt(400))
	sameStore(t, "replayed store", dumpStore(t, store), want)
	m := readMeta(t, meta)
	var maxTx uint64
	for _, r := range f.commits {
		maxTx = max(maxTx, r.TxID)
	}
	if m.CommitSeq != 400 || m.LastTxID != maxTx {
		t.Fatalf("meta after replay: %+v, want commit_seq 400, the last txid %d", m, maxTx)
	}

	rep = replay(t, f.wal, f.hash, store, meta)
	if rep.Applied != 0 || rep.Skipped != 400 || rep.LastSeq != 400 {
		t.Fatalf("second replay: %+v", rep)
	}
	sameStore(t, "store after a second replay", dumpStore(t, store), want)
	if readMeta(t, meta) != m {
		t.Fatal("a second replay changed meta")
	}

	// A replay interrupted half-way (records applied, commit_seq not yet
	// set) just runs again.
	store2, meta2 := freshMaps(t)
	for _, r := range f.commits[:250] {
		if err := applyRecord(store2, &r); err != nil {
			t.Fatal(err)
		}
	}
	replay(t, f.wal, f.hash, store2, meta2)
	sameStore(t, "store after an interrupted replay", dumpStore(t, store2), want)
}

// A damaged tail is reported, cut from the file and not applied; what
// comes before it is.
func TestReplayCutsTornTail(t *testing.T) {
	f := walOf(t, 60, 11)
	orig, err := os.ReadFile(f.wal)
	if err != nil {
		t.Fatal(err)
	}
	last := int64(len(f.expectedWAL(1, 59))) // offset of record 60
	earlier := f.expectedWAL(1, 2)[len(f.expectedWAL(1, 1)):]
	bumped := append([]byte(nil), orig...)
	bumped[last+8+20]++ // a byte of record 60's first write, under its checksum

	cases := []struct {
		name   string
		data   []byte
		offset int64 // where the cut starts
		good   int   // records kept and applied
		reason string
	}{
		{"truncated mid-record", orig[:len(orig)-37], last, 59, "with only"},
		{"truncated in the length", orig[:last+5], last, 59, "a 5-byte record header"},
		{"flipped payload byte", bumped, last, 59, "checksum mismatch"},
		{"garbage appended", append(append([]byte(nil), orig...), "\x00\x13garbage!garbage!garbage!"...), int64(len(orig)), 60, "out of range"},
		{"zeros appended", append(append([]byte(nil), orig...), make([]byte, 4096)...), int64(len(orig)), 60, "out of range"},
		{"old record appended", append(append([]byte(nil), orig...), earlier...), int64(len(orig)), 60, "seq 2 after seq 60"},
		{"only the header", orig[:WALHeaderSize+3], WALHeaderSize, 0, "a 3-byte record header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.wal")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			store, meta := freshMaps(t)
			rep := replay(t, path, f.hash, store, meta)
			tt := rep.Torn
			if tt == nil {
				t.Fatalf("no torn tail reported: %+v", rep)
			}
			if tt.Offset != c.offset || tt.Cut != int64(len(c.data))-c.offset || tt.LastGoodSeq != uint64(c.good) || !bytes.Contains([]byte(tt.Reason), []byte(c.reason)) {
				t.Fatalf("torn tail %+v; want offset %d, %d bytes cut, last good seq %d, reason with %q", *tt, c.offset, int64(len(c.data))-c.offset, c.good, c.reason)
			}
			if rep.Applied != c.good || rep.LastSeq != uint64(c.good) {
				t.Fatalf("replay: %+v", rep)
			}
			sameStore(t, "store", dumpStore(t, store), f.modelAt(c.good))
			if got, _ := os.ReadFile(path); !bytes.Equal(got, c.data[:c.offset]) {
				t.Fatalf("file after the cut has %d bytes, want the first %d", len(got), c.offset)
			}
			// Cut once, it is clean.
			rep = replay(t, path, f.hash, store, meta)
			if rep.Torn != nil || rep.Applied != 0 {
				t.Fatalf("second replay: %+v", rep)
			}
		})
	}
}

// A WAL (or checkpoint) of another pin root is refused before anything
// is applied.
func TestReplayRefusesOtherPinRoot(t *testing.T) {
	f := walOf(t, 5, 13)
	store, meta := freshMaps(t)
	other := PinRootHash("/sys/fs/bpf/somewhere-else")
	_, err := Replay(f.wal, other, store, meta)
	if !errors.Is(err, ErrWrongPinRoot) || !contains(err, "belongs to another pin root") {
		t.Fatalf("replay into another pin root: %v", err)
	}
	if len(dumpStore(t, store)) != 0 || readMeta(t, meta).CommitSeq != 0 {
		t.Fatal("a refused replay changed the maps")
	}
	// Not a WAL at all.
	path := filepath.Join(t.TempDir(), "junk.wal")
	os.WriteFile(path, []byte("#!/bin/sh\necho hello\n"), 0o600)
	if _, err := Replay(path, f.hash, store, meta); err == nil || !contains(err, "is not a bpfsh kv file") {
		t.Fatalf("replay of junk: %v", err)
	}
	// Nothing there: nothing to do.
	rep, err := Replay(filepath.Join(t.TempDir(), "none.wal"), f.hash, store, meta)
	if err != nil || rep.Records != 0 || rep.LastSeq != 0 {
		t.Fatalf("replay without a WAL: %+v, %v", rep, err)
	}
	// Maps that are not kv's.
	if _, err := Replay(f.wal, f.hash, meta, meta); err == nil || !contains(err, "struct kv_key") {
		t.Fatalf("replay into the wrong map: %v", err)
	}
}

// Replay stops when the store map fills, saying so.
func TestReplayStoreFull(t *testing.T) {
	f := walOf(t, 30, 17)
	small, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: StoreKeySize, ValueSize: StoreValueSize, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	_, meta := freshMaps(t)
	if _, err := Replay(f.wal, f.hash, small, meta); err == nil || !contains(err, "the store map is full") {
		t.Fatalf("replay into a 3-key store: %v", err)
	}
	if readMeta(t, meta).CommitSeq != 0 {
		t.Fatal("a failed replay moved commit_seq")
	}
}

// The WAL payload decoder refuses what the writer never writes.
func TestParseWALPayloadRejects(t *testing.T) {
	good := LogRecord{Seq: 9, TxID: 3, Writes: []LogWrite{{Op: WriteSet, Key: []byte("a"), Value: []byte("b")}, {Op: WriteDel, Key: []byte("c")}}}
	p := good.AppendWALPayload(nil)
	r, err := ParseWALPayload(p)
	if err != nil || r.Seq != 9 || r.TxID != 3 || len(r.Writes) != 2 || string(r.Writes[0].Value) != "b" || r.Writes[1].Op != WriteDel || len(r.Writes[1].Value) != 0 {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), p...)) }
	bad := map[string][]byte{
		"short":       p[:10],
		"no writes":   mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 0); return b }),
		"17 writes":   mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 17); return b }),
		"op 3":        mut(func(b []byte) []byte { b[20] = 3; return b }),
		"klen 0":      mut(func(b []byte) []byte { b[21] = 0; return b }),
		"klen 65":     mut(func(b []byte) []byte { b[21] = 65; return b }),
		"vlen 513":    mut(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[22:], 513); return b }),
		"DEL value":   mut(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[len(b)-3:], 1); return append(b, 'x') }),
		"stray bytes": mut(func(b []byte) []byte { return append(b, 0) }),
		"truncated":   p[:len(p)-1],
	}
	for name, b := range bad {
		if _, err := ParseWALPayload(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Ring records decode as the kernel lays them out; a DEL's value slot
// is not logged; malformed records are refused.
func TestParseLogRecord(t *testing.T) {
	r := LogRecord{Seq: 5, TxID: 7, KtimeNS: 99, Writes: []LogWrite{
		{Op: WriteSet, Key: bytes.Repeat([]byte{'k'}, MaxKey), Value: bytes.Repeat([]byte{'v'}, MaxValue)},
		{Op: WriteDel, Key: []byte("gone")},
	}}
	b := r.AppendRing(nil)
	if len(b) != LogRecordSize || LogRecordSize != 9312 {
		t.Fatalf("ring record of %d bytes (LogRecordSize %d), want 9312", len(b), LogRecordSize)
	}
	// A DEL slot with junk in its value: dropped.
	s := b[LogRecordHeaderSize+LogWriteSize:]
	binary.NativeEndian.PutUint16(s[2:], 3)
	got, err := ParseLogRecord(b)
	if err != nil || got.Seq != 5 || got.TxID != 7 || got.KtimeNS != 99 || len(got.Writes) != 2 ||
		!bytes.Equal(got.Writes[0].Value, r.Writes[0].Value) || len(got.Writes[1].Value) != 0 || string(got.Writes[1].Key) != "gone" {
		t.Fatalf("parse: %+v, %v", got, err)
	}
	// Only the used slots need to be there.
	if _, err := ParseLogRecord(b[:LogRecordHeaderSize+2*LogWriteSize]); err != nil {
		t.Fatalf("record cut after its writes: %v", err)
	}
	if _, err := ParseLogRecord(b[:LogRecordHeaderSize+LogWriteSize]); err == nil {
		t.Fatal("record cut inside its writes: accepted")
	}
	b[LogRecordHeaderSize+1] = 0 // klen 0
	if _, err := ParseLogRecord(b); err == nil || !contains(err, "key of 0 bytes") {
		t.Fatalf("klen 0: %v", err)
	}
}

// Whatever follows a WAL header, reading it never panics, keeps only
// records with increasing seqs, and accounts for every byte.
func FuzzReadWAL(f *testing.F) {
	h := PinRootHash("/sys/fs/bpf/fuzz")
	var good []byte
	for i := range 3 {
		r := smallRecord(i)
		r.Seq = uint64(i + 1)
		good = AppendWALRecord(good, &r)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(good, 1, 2, 3))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		path := filepath.Join(t.TempDir(), "f.wal")
		if err := os.WriteFile(path, append(walHeader(h), body...), 0o600); err != nil {
			t.Fatal(err)
		}
		var last uint64
		n := 0
		info, err := ReadWAL(path, h, func(r *LogRecord) error {
			if n > 0 && r.Seq <= last {
				t.Fatalf("seq %d after %d", r.Seq, last)
			}
			if err := r.Check(); err != nil {
				t.Fatalf("a record that does not check: %v", err)
			}
			last = r.Seq
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if info.Records != n || info.End > info.Size || (info.Torn == nil) != (info.End == info.Size) {
			t.Fatalf("info %+v after %d records", info, n)
		}
		if info.Torn != nil && (info.Torn.Offset != info.End || info.Torn.Cut != info.Size-info.End) {
			t.Fatalf("torn %+v, info %+v", *info.Torn, info)
		}
	})
}
