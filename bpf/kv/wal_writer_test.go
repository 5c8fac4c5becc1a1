// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openWriter(t testing.TB, f *kvFixture, opts WriterOptions) *Writer {
	t.Helper()
	w, err := OpenWriter(f.wal, f.hash, f.objs.Log, f.objs.Meta, opts)
	if err != nil {
		t.Fatalf("open writer: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func syncWriter(t testing.TB, w *Writer) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seq, err := w.Sync(ctx)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return seq
}

// The producer's commits reach the WAL in seq order, byte for byte as
// PROTOCOL.md frames them, and the store the program built is the model.
func TestWriterAppendsCommitsInOrder(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	if info := w.Opened(); info.Records != 0 || info.Torn != nil || info.End != WALHeaderSize {
		t.Fatalf("new WAL: %+v", info)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		f.commit(t, randomRecord(rng))
	}
	if got := syncWriter(t, w); got != 300 {
		t.Fatalf("sync returned seq %d, want 300", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.wal)
	if err != nil {
		t.Fatal(err)
	}
	want := f.expectedWAL(1, 300)
	if !bytes.Equal(got, want) {
		n := 0
		for n < min(len(got), len(want)) && got[n] == want[n] {
			n++
		}
		t.Fatalf("WAL has %d bytes, want %d; first difference at offset %d", len(got), len(want), n)
	}
	var seqs []uint64
	info, err := ReadWAL(f.wal, f.hash, func(r *LogRecord) error {
		seqs = append(seqs, r.Seq)
		return nil
	})
	if err != nil || info.Records != 300 || info.FirstSeq != 1 || info.LastSeq != 300 || info.Torn != nil {
		t.Fatalf("ReadWAL: %+v, %v", info, err)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, s)
		}
	}
	sameStore(t, "kernel store", dumpStore(t, f.objs.Store), f.modelAt(300))
	st := w.Stats()
	if st.Records != 300 || st.DurableSeq != 300 || st.Bytes != uint64(len(want)-WALHeaderSize) || st.Batches == 0 || st.Batches > 300 {
		t.Fatalf("stats: %+v", st)
	}
}

// Sync returns only once everything committed before it is in the file.
func TestSyncWaitsForCommits(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 1; round <= 5; round++ {
		for range 40 * round {
			f.commit(t, randomRecord(rng))
		}
		n := len(f.commits)
		seq := syncWriter(t, w)
		if seq < uint64(n) {
			t.Fatalf("round %d: sync returned seq %d before commit %d", round, seq, n)
		}
		// Read the file while the writer runs: every commit made
		// before Sync is there already.
		got, err := os.ReadFile(f.wal)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.expectedWAL(1, n); !bytes.HasPrefix(got, want) {
			t.Fatalf("round %d: after sync the WAL (%d bytes) lacks commits up to %d (%d bytes)", round, len(got), n, len(want))
		}
	}

	// With the writer held up, Sync waits for the commit and gives up
	// with ctx, saying how far it got.
	w.fileMu.Lock()
	f.commit(t, smallRecord(0))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	seq, err := w.Sync(ctx)
	cancel()
	w.fileMu.Unlock()
	if !errors.Is(err, context.DeadlineExceeded) || seq >= uint64(len(f.commits)) {
		t.Fatalf("held-up sync: seq %d, %v; want a deadline error below seq %d", seq, err, len(f.commits))
	}
	if seq := syncWriter(t, w); seq != uint64(len(f.commits)) {
		t.Fatalf("sync after release: seq %d, want %d", seq, len(f.commits))
	}
}

// Whatever arrived while the writer was busy goes to disk with one fsync.
func TestWriterGroupCommit(t *testing.T) {
	f := newKVFixture(t)
	// 300 commits wait in the ring before the writer starts: one batch.
	for i := range 300 {
		f.commit(t, smallRecord(i))
	}
	w := openWriter(t, f, WriterOptions{})
	syncWriter(t, w)
	if st := w.Stats(); st.Records != 300 || st.Batches != 1 {
		t.Fatalf("300 waiting records: %d records in %d fsyncs, want 1 fsync", st.Records, st.Batches)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// A batch stops at MaxBatch bytes: the next 300 take several.
	for i := range 300 {
		f.commit(t, smallRecord(i))
	}
	w = openWriter(t, f, WriterOptions{MaxBatch: 4096})
	syncWriter(t, w)
	st := w.Stats()
	frames := uint64(len(f.expectedWAL(301, 600)) - WALHeaderSize)
	if st.Records != 300 || st.Bytes != frames || st.Batches < 2 || st.Batches > frames/4096+1 {
		t.Fatalf("%d bytes with MaxBatch 4096: %+v", frames, st)
	}
	w.Close()
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(1, 600)) {
		t.Fatal("WAL after two writers is not commits 1..600")
	}
}

// Close drains what the ring holds, and Sync after Close says so.
func TestWriterCloseDrains(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	w.fileMu.Lock() // hold the writer so the commits stay in the ring
	for i := range 100 {
		f.commit(t, smallRecord(i))
	}
	w.fileMu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(1, 100)) {
		t.Fatal("after Close the WAL is not commits 1..100")
	}
	f.commit(t, smallRecord(100))
	if _, err := w.Sync(context.Background()); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("sync after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// A writer started after another died takes the records that are still
// in the ring, skips those the WAL already has, and cuts a torn tail.
func TestWriterRestartAfterCrash(t *testing.T) {
	f := newKVFixture(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		f.commit(t, randomRecord(rng))
	}
	// What a writer killed after fsyncing 1..30, before releasing the
	// ring, and in the middle of appending 31 leaves behind.
	wal := f.expectedWAL(1, 31)
	cut := len(wal) - 100
	if err := os.MkdirAll(filepath.Dir(f.wal), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.wal, wal[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, f, WriterOptions{})
	info := w.Opened()
	if info.Records != 30 || info.LastSeq != 30 || info.Torn == nil || info.Torn.LastGoodSeq != 30 ||
		info.Torn.Offset != int64(len(f.expectedWAL(1, 30))) || info.Torn.Cut != int64(cut)-info.Torn.Offset {
		t.Fatalf("opened: %+v torn %v", info, info.Torn)
	}
	syncWriter(t, w)
	if st := w.Stats(); st.Skipped != 30 || st.Records != 20 {
		t.Fatalf("restart: %+v, want 30 skipped and 20 written", st)
	}
	w.Close()
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(1, 50)) {
		t.Fatal("after the restart the WAL is not commits 1..50")
	}
}

// A writer refuses a WAL ahead of the store (not replayed), a WAL of
// another pin root, and a WAL another writer holds.
func TestWriterRefuses(t *testing.T) {
	f := newKVFixture(t)
	for i := range 10 {
		f.commit(t, smallRecord(i))
	}
	w := openWriter(t, f, WriterOptions{})
	syncWriter(t, w)
	if _, err := OpenWriter(f.wal, f.hash, f.objs.Log, f.objs.Meta, WriterOptions{}); !errors.Is(err, ErrWALBusy) || !contains(err, "this process") {
		t.Fatalf("second writer: %v", err)
	}
	store, meta := freshMaps(t)
	if _, err := Replay(f.wal, f.hash, store, meta); !errors.Is(err, ErrWALBusy) {
		t.Fatalf("replay while a writer runs: %v", err)
	}
	w.Close()

	g := newKVFixture(t) // fresh maps: commit_seq 0
	if _, err := OpenWriter(f.wal, f.hash, g.objs.Log, g.objs.Meta, WriterOptions{}); err == nil || !contains(err, "replay it into the store first") {
		t.Fatalf("WAL ahead of the store: %v", err)
	}
	if _, err := OpenWriter(f.wal, g.hash, f.objs.Log, f.objs.Meta, WriterOptions{}); !errors.Is(err, ErrWrongPinRoot) {
		t.Fatalf("WAL of another pin root: %v", err)
	}
	if _, err := OpenWriter(f.wal, f.hash, f.objs.Store, f.objs.Meta, WriterOptions{}); err == nil || !contains(err, "not a ringbuf") {
		t.Fatalf("store as the log: %v", err)
	}
	if err := os.WriteFile(f.wal, []byte("not a WAL at all, really"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWriter(f.wal, f.hash, f.objs.Log, f.objs.Meta, WriterOptions{}); err == nil || !contains(err, "is not a bpfsh kv file") {
		t.Fatalf("not a WAL: %v", err)
	}
}

func contains(err error, s string) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte(s))
}

// A commit that takes a seq and then discards its record (here: the
// store is full) leaves a gap: Sync does not wait for that seq forever,
// the WAL skips it, and replay carries on past it.
func TestSyncAcrossDiscardedSeq(t *testing.T) {
	f := newKVFixtureStore(t, 2)
	w := openWriter(t, f, WriterOptions{})
	set := func(k string) LogRecord {
		return LogRecord{Writes: []LogWrite{{Op: WriteSet, Key: []byte(k), Value: []byte("v-" + k)}}}
	}
	f.commit(t, set("a"))
	f.commit(t, set("b"))
	if st := f.tryCommit(t, set("c")); st != uint32(StatusStoreFull) {
		t.Fatalf("third key in a 2-key store: status %s", Status(st))
	}
	if m := readMeta(t, f.objs.Meta); m.CommitSeq != 3 {
		t.Fatalf("commit_seq %d, want 3 (taken by the failed commit)", m.CommitSeq)
	}
	if seq := syncWriter(t, w); seq != 2 {
		t.Fatalf("sync over the gap returned seq %d, want 2", seq)
	}
	f.commit(t, set("a"))
	if seq := syncWriter(t, w); seq != 4 {
		t.Fatalf("sync after the gap returned seq %d, want 4", seq)
	}
	if st := w.Stats(); st.Discarded != 1 || st.Records != 3 {
		t.Fatalf("stats: %+v", st)
	}
	w.Close()
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(1, 3)) {
		t.Fatal("the WAL is not seqs 1, 2, 4")
	}
	store, meta := freshMaps(t)
	if rep := replay(t, f.wal, f.hash, store, meta); rep.LastSeq != 4 || rep.Applied != 3 {
		t.Fatalf("replay: %+v", rep)
	}
	sameStore(t, "replayed store", dumpStore(t, store), dumpStore(t, f.objs.Store))
}

// Close returns while commits keep coming; a later writer takes those.
func TestWriterCloseUnderLoad(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		rng := rand.New(rand.NewPCG(51, 52))
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if st, err := f.tryCommitErr(randomRecord(rng)); err != nil || (st != uint32(StatusOK) && st != uint32(StatusLogFull)) {
				done <- fmt.Errorf("commit: status %d, %v", st, err)
				return
			}
		}
	}()
	for w.Stats().Records < 200 {
		time.Sleep(time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w2 := openWriter(t, f, WriterOptions{})
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(1, len(f.commits))) {
		t.Fatalf("the WAL is not commits 1..%d", len(f.commits))
	}
}
