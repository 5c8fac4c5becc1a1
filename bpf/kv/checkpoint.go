// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// A checkpoint is a snapshot of the store that lets the WAL drop the
// records it covers:
//
//	file  = "BPFSHKC1" | pin-root hash (8) | seq u64 | next_txid u64 | count u32 | entry* | crc32c u32
//	entry = klen u8 | vlen u16 | version u64 | key | value
//
// little-endian; the crc32c covers everything before it. Replay loads it
// and then applies the WAL records with seq > seq.
//
// The snapshot is read while the kernel keeps committing, so it is fuzzy:
// a key may already hold a value written after seq. That is sound because
// (1) every commit up to seq is installed before the store is read (seq
// is the highest durable seq once everything reserved in the ring has
// reached the WAL), and (2) every commit that installed anything while the
// store was read is durable in the WAL before the checkpoint file
// appears. Replaying the records after seq over the snapshot then redoes
// each later write in order, and each key nobody wrote after seq has its
// value at seq.
const (
	checkpointMagic = "BPFSHKC1"
	checkpointHead  = 8 + 8 + 8 + 8 + 4
	checkpointEntry = 1 + 2 + 8
)

// CheckpointPath is where the checkpoint of the WAL at walPath lives: the
// same name with .ckpt for .wal.
func CheckpointPath(walPath string) string {
	return strings.TrimSuffix(walPath, ".wal") + ".ckpt"
}

// CheckpointEntry is one key of a checkpoint.
type CheckpointEntry struct {
	Key     []byte
	Version uint64
	Value   []byte
}

// Snapshot is a decoded checkpoint.
type Snapshot struct {
	Seq      uint64 // the WAL records up to this seq are in the snapshot
	LastTxID uint64
	Entries  []CheckpointEntry
}

func encodeCheckpoint(h [8]byte, s *Snapshot) []byte {
	le := binary.LittleEndian
	b := append([]byte(checkpointMagic), h[:]...)
	b = le.AppendUint64(b, s.Seq)
	b = le.AppendUint64(b, s.LastTxID)
	b = le.AppendUint32(b, uint32(len(s.Entries)))
	for _, e := range s.Entries {
		b = append(b, byte(len(e.Key)))
		b = le.AppendUint16(b, uint16(len(e.Value)))
		b = le.AppendUint64(b, e.Version)
		b = append(b, e.Key...)
		b = append(b, e.Value...)
	}
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// ReadCheckpoint reads and verifies the checkpoint at path for the pin
// root with hash h. A damaged checkpoint is an error, not something to
// skip: the WAL no longer holds the records it covers.
func ReadCheckpoint(path string, h [8]byte) (*Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	damaged := func(why string, args ...any) (*Snapshot, error) {
		return nil, fmt.Errorf("checkpoint %s is damaged (%s): the store cannot be rebuilt from it; move it and the WAL away to start empty", path, fmt.Sprintf(why, args...))
	}
	if len(b) < checkpointHead+4 {
		if err := checkHeader(path, b, checkpointMagic, h); err != nil {
			return nil, err
		}
		return damaged("%d bytes, shorter than its header", len(b))
	}
	if err := checkHeader(path, b, checkpointMagic, h); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != le.Uint32(b[len(b)-4:]) {
		return damaged("checksum mismatch")
	}
	s := &Snapshot{Seq: le.Uint64(body[16:]), LastTxID: le.Uint64(body[24:])}
	n := int(le.Uint32(body[32:]))
	p := body[checkpointHead:]
	s.Entries = make([]CheckpointEntry, 0, min(n, len(p)/checkpointEntry))
	for i := range n {
		if len(p) < checkpointEntry {
			return damaged("entry %d runs past the end", i)
		}
		klen, vlen := int(p[0]), int(le.Uint16(p[1:]))
		if klen < 1 || klen > MaxKey || vlen > MaxValue || len(p) < checkpointEntry+klen+vlen {
			return damaged("entry %d: key of %d bytes, value of %d", i, klen, vlen)
		}
		s.Entries = append(s.Entries, CheckpointEntry{
			Version: le.Uint64(p[3:]),
			Key:     p[checkpointEntry : checkpointEntry+klen],
			Value:   p[checkpointEntry+klen : checkpointEntry+klen+vlen],
		})
		p = p[checkpointEntry+klen+vlen:]
	}
	if len(p) != 0 {
		return damaged("%d stray bytes after %d entries", len(p), n)
	}
	return s, nil
}

// checkpointSeq is the seq of the checkpoint at path (0 when there is
// none), from its header.
func checkpointSeq(path string, h [8]byte) (uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, checkpointHead)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return 0, fmt.Errorf("checkpoint %s is damaged (shorter than its header): move it and the WAL away to start empty", path)
	}
	if err := checkHeader(path, hdr, checkpointMagic, h); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(hdr[16:]), nil
}

// loadSnapshot installs a snapshot's entries in the store.
func loadSnapshot(store *ebpf.Map, s *Snapshot) error {
	for _, e := range s.Entries {
		k, err := EncodeStoreKey(e.Key)
		if err != nil {
			return err
		}
		v, err := EncodeStoreValue(e.Version, e.Value)
		if err != nil {
			return err
		}
		if err := store.Update(k[:], v[:], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("load checkpoint: set %q: %w", e.Key, explainStoreErr(err))
		}
	}
	return nil
}

// ReadStore reads every key of the store map (batch lookups, which copy
// whole hash buckets, so a key that exists throughout is never missed).
func ReadStore(store *ebpf.Map) ([]CheckpointEntry, error) {
	if err := checkStore(store); err != nil {
		return nil, err
	}
	batch := 256
	var cursor ebpf.MapBatchCursor
	var out []CheckpointEntry
	for {
		keys := make([][StoreKeySize]byte, batch)
		values := make([][StoreValueSize]byte, batch)
		n, err := store.BatchLookup(&cursor, keys, values, nil)
		done := errors.Is(err, ebpf.ErrKeyNotExist)
		switch {
		case err == nil || done:
		case errors.Is(err, unix.ENOSPC) && n == 0 && batch < 1<<16:
			batch *= 4 // a bucket holds more keys than the batch: retry bigger
			continue
		default:
			return nil, fmt.Errorf("read store: %w", err)
		}
		for i := range n {
			k, err := DecodeStoreKey(keys[i][:])
			if err != nil {
				return nil, fmt.Errorf("read store: %w", err)
			}
			v, err := DecodeStoreValue(values[i][:])
			if err != nil {
				return nil, fmt.Errorf("read store: key %q: %w", k, err)
			}
			out = append(out, CheckpointEntry{Key: k, Version: v.Version, Value: v.Value})
		}
		if done {
			return out, nil
		}
	}
}

// CheckpointReport is what Checkpoint did.
type CheckpointReport struct {
	Path        string `json:"path"`
	Seq         uint64 `json:"seq"` // the snapshot covers the commits up to this seq
	Entries     int    `json:"entries"`
	Bytes       int64  `json:"bytes"`
	WALBefore   int64  `json:"wal_bytes_before"`
	WALAfter    int64  `json:"wal_bytes_after"`
	KeptRecords int    `json:"kept_records"` // WAL records after Seq, kept
}

// Checkpoint writes a snapshot of store next to the WAL (atomically,
// with its checksum and the seq it covers) and then drops from the WAL
// the records the snapshot covers. The writer keeps running; commits
// made meanwhile stay in the WAL.
func (w *Writer) Checkpoint(ctx context.Context, store *ebpf.Map) (CheckpointReport, error) {
	rep := CheckpointReport{Path: CheckpointPath(w.path)}
	fail := func(err error) (CheckpointReport, error) {
		return rep, fmt.Errorf("kv checkpoint: %w", err)
	}
	if err := checkStore(store); err != nil {
		return fail(err)
	}
	w.ckptMu.Lock()
	defer w.ckptMu.Unlock()
	m0, limit, err := w.look()
	if err != nil {
		return fail(err)
	}
	// Everything reserved so far is durable: every commit up to seq is
	// installed in the store.
	seq, err := w.syncPos(ctx, limit)
	if err != nil {
		return fail(err)
	}
	entries, err := ReadStore(store)
	if err != nil {
		return fail(err)
	}
	// Every commit that changed the store while it was read is durable.
	m1, limit, err := w.look()
	if err != nil {
		return fail(err)
	}
	if _, err := w.syncPos(ctx, limit); err != nil {
		return fail(err)
	}
	snap := &Snapshot{Seq: seq, LastTxID: max(m0.LastTxID, m1.LastTxID), Entries: entries}
	data := encodeCheckpoint(w.hash, snap)
	if err := createFile(rep.Path, data); err != nil {
		return fail(fmt.Errorf("write %s: %w", rep.Path, err))
	}
	rep.Seq, rep.Entries, rep.Bytes = seq, len(entries), int64(len(data))
	if err := w.dropThrough(seq, &rep); err != nil {
		return fail(err)
	}
	return rep, nil
}

// dropThrough replaces the WAL by one that holds only the records after
// seq. Until the rename, the old WAL stays whole (replay skips the records
// the checkpoint covers), so a crash at any point loses nothing.
func (w *Writer) dropThrough(seq uint64, rep *CheckpointReport) error {
	// Find where the records after seq begin without stopping the
	// writer: it only appends, and every record it appends from now on
	// has a seq above seq.
	f, err := os.Open(w.path)
	if err != nil {
		return fmt.Errorf("read WAL: %w", err)
	}
	from := int64(-1)
	stop := errors.New("found")
	info, err := scanWAL(f, w.path, w.hash, func(off int64, r *LogRecord, _ []byte) error {
		if r.Seq > seq {
			from = off
			return stop
		}
		return nil
	})
	f.Close()
	if err != nil && err != stop {
		return err
	}
	if from < 0 {
		from = info.End
	}

	w.fileMu.Lock()
	defer w.fileMu.Unlock()
	if w.file == nil {
		return ErrWriterClosed
	}
	if w.fileErr != nil {
		return w.fileErr
	}
	rep.WALBefore = w.size
	tail := make([]byte, w.size-from)
	if _, err := w.file.ReadAt(tail, from); err != nil {
		return fmt.Errorf("read WAL %s: %w", w.path, err)
	}
	if len(tail) >= walFrameHeader+8 {
		if first := binary.LittleEndian.Uint64(tail[walFrameHeader:]); first <= seq {
			return fmt.Errorf("rewrite WAL: the record at offset %d has seq %d, not after the checkpoint's %d", from, first, seq)
		}
	}
	tmp, err := os.OpenFile(w.path+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rewrite WAL: %w", err)
	}
	if _, err := tmp.Write(append(walHeader(w.hash), tail...)); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("rewrite WAL: %w", err)
	}
	if err := commitTemp(tmp, w.path); err != nil {
		return fmt.Errorf("rewrite WAL: %w", err)
	}
	nf, err := os.OpenFile(w.path, os.O_RDWR, 0)
	if err != nil {
		// The new WAL is in place but cannot be opened to append:
		// stop the writer rather than append to the unlinked old one.
		w.fileErr = fmt.Errorf("reopen WAL after checkpoint: %w", err)
		return w.fileErr
	}
	w.file.Close()
	w.file = nf
	w.size = int64(WALHeaderSize) + int64(len(tail))
	rep.WALAfter = w.size
	for p := tail; len(p) >= walFrameHeader; {
		n := walFrameHeader + int(binary.LittleEndian.Uint32(p))
		if n > len(p) {
			break
		}
		rep.KeptRecords++
		p = p[n:]
	}
	return nil
}
