// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallDisk mounts a tmpfs of size bytes for t alone.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("skipped: cannot mount a small tmpfs to fill: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// A full disk stops the writer with the reason; commits then pile up in
// the ring until the kernel answers LOG_FULL; nothing is lost: once there
// is room, a new writer puts every commit in the WAL.
func TestWriterDiskFull(t *testing.T) {
	f := newKVFixture(t)
	disk := smallDisk(t, "64k")
	f.wal = filepath.Join(disk, "kv.wal")
	w, err := OpenWriter(f.wal, f.hash, f.objs.Log, f.objs.Meta, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rng := rand.New(rand.NewPCG(31, 32))
	var syncErr error
	for i := 1; syncErr == nil; i++ {
		if i > 2000 {
			t.Fatal("64 KiB never filled up")
		}
		f.commitRetry(t, randomRecord(rng))
		if i%5 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, syncErr = w.Sync(ctx)
			cancel()
		}
	}
	if !errors.Is(syncErr, unix.ENOSPC) || !contains(syncErr, "LOG_FULL") || !errors.Is(w.Err(), unix.ENOSPC) {
		t.Fatalf("sync on a full disk: %v (Err: %v)", syncErr, w.Err())
	}
	durable := w.Stats().DurableSeq
	// The kernel keeps committing into the ring until it is full.
	logFull := false
	for range 2 * (4 << 20) / LogRecordSize {
		if f.tryCommit(t, randomRecord(rng)) == uint32(StatusLogFull) {
			logFull = true
			break
		}
	}
	if !logFull {
		t.Fatal("commits never answered LOG_FULL with the writer stopped")
	}
	// The WAL holds exactly the durable commits: the failed batch was
	// taken back.
	info, err := ReadWAL(f.wal, f.hash, nil)
	if err != nil || info.Torn != nil || info.LastSeq != durable || info.End != info.Size {
		t.Fatalf("WAL after the failure: %+v, %v (durable seq %d)", info, err, durable)
	}
	if err := w.Close(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("close of the failed writer: %v", err)
	}
	t.Logf("disk full at seq %d; %d commits in all, the rest waited in the ring", durable, len(f.commits))

	if err := unix.Mount("tmpfs", disk, "tmpfs", unix.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("make room: %v", err)
	}
	w2 := openWriter(t, f, WriterOptions{})
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	store, meta := freshMaps(t)
	rep := replay(t, f.wal, f.hash, store, meta)
	if rep.LastSeq != uint64(len(f.commits)) {
		t.Fatalf("replay after making room: %+v, want seq %d", rep, len(f.commits))
	}
	sameStore(t, "store replayed after the disk filled", dumpStore(t, store), f.modelAt(len(f.commits)))
}
