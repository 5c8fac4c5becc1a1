// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

func checkpoint(t testing.TB, f *kvFixture, w *Writer) CheckpointReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := w.Checkpoint(ctx, f.objs.Store)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return rep
}

// A checkpoint, more commits, and a replay give the store; the WAL keeps
// only what came after the checkpoint.
func TestCheckpointThenReplay(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	rng := rand.New(rand.NewPCG(21, 22))
	for range 200 {
		f.commit(t, randomRecord(rng))
	}
	syncWriter(t, w)
	before, _ := os.Stat(f.wal)
	rep := checkpoint(t, f, w)
	if rep.Seq != 200 || rep.Entries != len(f.modelAt(200)) || rep.KeptRecords != 0 || rep.WALAfter != WALHeaderSize || rep.WALBefore != before.Size() {
		t.Fatalf("checkpoint: %+v (WAL was %d bytes, model has %d keys)", rep, before.Size(), len(f.modelAt(200)))
	}
	snap, err := ReadCheckpoint(rep.Path, f.hash)
	if err != nil || snap.Seq != 200 || len(snap.Entries) != rep.Entries {
		t.Fatalf("read checkpoint: %v", err)
	}
	for range 100 {
		f.commit(t, randomRecord(rng))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(201, 300)) {
		t.Fatal("the WAL after the checkpoint is not commits 201..300")
	}
	store, meta := freshMaps(t)
	r := replay(t, f.wal, f.hash, store, meta)
	if r.CheckpointSeq != 200 || r.CheckpointEntries != rep.Entries || r.Applied != 100 || r.LastSeq != 300 {
		t.Fatalf("replay: %+v", r)
	}
	sameStore(t, "replayed store", dumpStore(t, store), f.modelAt(300))
	if m := readMeta(t, meta); m.CommitSeq != 300 || m.LastTxID < snap.LastTxID {
		t.Fatalf("meta: %+v", m)
	}
	// Again: idempotent, the checkpoint is not loaded over newer data.
	r = replay(t, f.wal, f.hash, store, meta)
	if r.Checkpoint != "" || r.Applied != 0 {
		t.Fatalf("second replay: %+v", r)
	}
	sameStore(t, "store after a second replay", dumpStore(t, store), f.modelAt(300))

	// A new writer on the same maps carries on after the checkpoint.
	g := &kvFixture{objs: f.objs, hash: f.hash, wal: f.wal, commits: f.commits}
	w2 := openWriter(t, g, WriterOptions{})
	if w2.Stats().DurableSeq != 300 {
		t.Fatalf("reopened writer starts at seq %d", w2.Stats().DurableSeq)
	}
	w2.Close()
}

// Commits keep coming while the checkpoint reads the store and rewrites
// the WAL: none is lost, none is doubled.
func TestCheckpointUnderLoad(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	rng := rand.New(rand.NewPCG(23, 24))
	for range 300 {
		f.commit(t, randomRecord(rng))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		prng := rand.New(rand.NewPCG(25, 26))
		for {
			select {
			case <-stop:
				return
			default:
				if st, err := f.tryCommitErr(randomRecord(prng)); err != nil || (st != uint32(StatusOK) && st != uint32(StatusLogFull)) {
					t.Errorf("commit: status %d, %v", st, err)
					return
				}
			}
		}
	}()
	var reps []CheckpointReport
	for range 3 {
		reps = append(reps, checkpoint(t, f, w))
	}
	close(stop)
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := len(f.commits)
	last := reps[len(reps)-1]
	t.Logf("%d commits; checkpoints at seq %d, %d, %d; the last kept %d records", n, reps[0].Seq, reps[1].Seq, reps[2].Seq, last.KeptRecords)
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(int(last.Seq)+1, n)) {
		t.Fatalf("the WAL is not commits %d..%d", last.Seq+1, n)
	}
	store, meta := freshMaps(t)
	r := replay(t, f.wal, f.hash, store, meta)
	if r.CheckpointSeq != last.Seq || r.LastSeq != uint64(n) {
		t.Fatalf("replay: %+v", r)
	}
	sameStore(t, "replayed store", dumpStore(t, store), f.modelAt(n))
}

// A crash after the snapshot is in place but before the WAL is rewritten
// leaves the old WAL: replay skips what the snapshot covers. A damaged
// checkpoint is refused, not skipped.
func TestCheckpointCrashWindows(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	rng := rand.New(rand.NewPCG(27, 28))
	for range 120 {
		f.commit(t, randomRecord(rng))
	}
	syncWriter(t, w)
	old, err := os.ReadFile(f.wal)
	if err != nil {
		t.Fatal(err)
	}
	rep := checkpoint(t, f, w)
	w.Close()
	if err := os.WriteFile(f.wal, old, 0o600); err != nil { // the rewrite never happened
		t.Fatal(err)
	}
	store, meta := freshMaps(t)
	r := replay(t, f.wal, f.hash, store, meta)
	if r.CheckpointSeq != 120 || r.Skipped != 120 || r.Applied != 0 || r.LastSeq != 120 {
		t.Fatalf("replay over the old WAL: %+v", r)
	}
	sameStore(t, "replayed store", dumpStore(t, store), f.modelAt(120))

	// A damaged checkpoint stops the replay: the WAL no longer has
	// what it covers.
	ck, _ := os.ReadFile(rep.Path)
	ck[len(ck)/2] ^= 0x40
	os.WriteFile(rep.Path, ck, 0o600)
	store, meta = freshMaps(t)
	if _, err := Replay(f.wal, f.hash, store, meta); err == nil || !contains(err, "is damaged (checksum mismatch)") {
		t.Fatalf("damaged checkpoint: %v", err)
	}
	os.WriteFile(rep.Path, ck[:20], 0o600)
	if _, err := Replay(f.wal, f.hash, store, meta); err == nil || !contains(err, "is damaged") {
		t.Fatalf("short checkpoint: %v", err)
	}
	if _, err := OpenWriter(f.wal, f.hash, f.objs.Log, f.objs.Meta, WriterOptions{}); err == nil || !contains(err, "is damaged") {
		t.Fatalf("writer with a short checkpoint: %v", err)
	}
	if len(dumpStore(t, store)) != 0 {
		t.Fatal("a refused replay changed the store")
	}
	// The checkpoint of another pin root.
	if _, err := ReadCheckpoint(rep.Path, PinRootHash("/elsewhere")); !errors.Is(err, ErrWrongPinRoot) {
		t.Fatalf("checkpoint of another pin root: %v", err)
	}
}

// A checkpoint of an empty store, and Checkpoint after Close.
func TestCheckpointEdges(t *testing.T) {
	f := newKVFixture(t)
	w := openWriter(t, f, WriterOptions{})
	rep := checkpoint(t, f, w)
	if rep.Seq != 0 || rep.Entries != 0 {
		t.Fatalf("empty checkpoint: %+v", rep)
	}
	w.Close()
	if _, err := w.Checkpoint(context.Background(), f.objs.Store); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("checkpoint after close: %v", err)
	}
	store, meta := freshMaps(t)
	if r := replay(t, f.wal, f.hash, store, meta); r.LastSeq != 0 || r.Applied != 0 {
		t.Fatalf("replay of an empty checkpoint: %+v", r)
	}
}
