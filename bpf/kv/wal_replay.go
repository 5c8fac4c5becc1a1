// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
)

// ReplayReport is what Replay did.
type ReplayReport struct {
	WAL               string    `json:"wal"`
	Checkpoint        string    `json:"checkpoint,omitempty"` // set when a checkpoint was loaded
	CheckpointSeq     uint64    `json:"checkpoint_seq,omitempty"`
	CheckpointEntries int       `json:"checkpoint_entries,omitempty"`
	Records           int       `json:"records"`  // good records in the WAL
	Applied           int       `json:"applied"`  // records applied to the store
	Skipped           int       `json:"skipped"`  // records the store already had (seq <= its commit_seq)
	LastSeq           uint64    `json:"last_seq"` // meta.commit_seq afterwards
	Torn              *TornTail `json:"torn,omitempty"`
}

// Replay rebuilds the store from the WAL at path (and its checkpoint, if
// there is one) for the pin root with hash h: the checkpoint is loaded,
// then the WAL's records are applied in order (SET: version = seq; DEL:
// delete), and meta.commit_seq is set to the last seq and next_txid past
// every txid seen. A torn or corrupt tail is reported and cut from the
// file, never applied.
//
// Replay is idempotent: what the store already holds (seq <= its
// commit_seq) is skipped, and commit_seq moves only at the end, so a
// replay that was interrupted simply runs again. It belongs before the
// program serves requests; it refuses a WAL that a writer holds.
func Replay(path string, h [8]byte, store, meta *ebpf.Map) (ReplayReport, error) {
	rep := ReplayReport{WAL: path}
	if err := checkStore(store); err != nil {
		return rep, fmt.Errorf("replay: %w", err)
	}
	m, err := ReadMeta(meta)
	if err != nil {
		return rep, fmt.Errorf("replay: %w", err)
	}
	lock, err := lockWAL(path)
	if err != nil {
		return rep, fmt.Errorf("replay: %w", err)
	}
	defer unlockWAL(lock)

	from := m.CommitSeq
	next := Meta{CommitSeq: m.CommitSeq, LastTxID: m.LastTxID, CommitLock: m.CommitLock}
	ckpt := CheckpointPath(path)
	if _, err := os.Stat(ckpt); err == nil {
		snap, err := ReadCheckpoint(ckpt, h)
		if err != nil {
			return rep, fmt.Errorf("replay: %w", err)
		}
		if snap.Seq > from {
			if err := loadSnapshot(store, snap); err != nil {
				return rep, fmt.Errorf("replay %s: %w", ckpt, err)
			}
			rep.Checkpoint, rep.CheckpointSeq, rep.CheckpointEntries = ckpt, snap.Seq, len(snap.Entries)
			from = snap.Seq
			next.CommitSeq = snap.Seq
		}
		next.LastTxID = max(next.LastTxID, snap.LastTxID)
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// No WAL (yet): only a checkpoint, or nothing to replay.
	case err != nil:
		return rep, fmt.Errorf("replay: %w", err)
	default:
		defer f.Close()
		info, err := scanWAL(f, path, h, func(_ int64, r *LogRecord, _ []byte) error {
			if r.TxID != 0 {
				next.LastTxID = max(next.LastTxID, r.TxID)
			}
			if r.Seq <= from {
				rep.Skipped++
				return nil
			}
			if err := applyRecord(store, r); err != nil {
				return err
			}
			rep.Applied++
			next.CommitSeq = r.Seq
			return nil
		})
		rep.Records = info.Records
		if err != nil {
			return rep, fmt.Errorf("replay %s: %w", path, err)
		}
		if info.Torn != nil {
			if err := cutTail(f, &info); err != nil {
				return rep, fmt.Errorf("replay: %w", err)
			}
			rep.Torn = info.Torn
		}
	}
	if next != m {
		if err := WriteMeta(meta, next); err != nil {
			return rep, fmt.Errorf("replay: %w", err)
		}
	}
	rep.LastSeq = next.CommitSeq
	return rep, nil
}
