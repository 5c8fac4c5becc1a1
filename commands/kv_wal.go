// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// kv's part in load and unload: replay the WAL into the fresh maps and
// start the session's writer after load; flush and stop the writer before
// unload, keeping the WAL.
var kvLoadHook = &loadHook{Match: isKV, Loaded: kvLoaded, Unloading: kvUnloading}

// isKV says whether objects are kv's: the built-in under any NAME, or any
// object with its program and maps (kv.bpf.c built with changes). The
// WAL code checks the store's key and value sizes before it writes.
func isKV(objects []bpf.Pinned) bool {
	want := map[string]string{kv.ProgramName: bpf.KindProgram, kv.StoreMap: bpf.KindMap, kv.TxnsMap: bpf.KindMap,
		kv.MetaMap: bpf.KindMap, kv.LogMap: bpf.KindMap, kv.StatsMap: bpf.KindMap}
	for _, o := range objects {
		if want[o.Name] == o.Kind {
			delete(want, o.Name)
		}
	}
	return len(want) == 0
}

// kvWALTimeout bounds how long sync and checkpoint wait for the WAL.
const kvWALTimeout = 30 * time.Second

// kvLoadJSON is what load adds to its result for kv.
type kvLoadJSON struct {
	WAL         string          `json:"wal"`
	Replay      kv.ReplayReport `json:"replay"`
	Writer      bool            `json:"writer"`
	WriterError string          `json:"writer_error,omitempty"`
}

func kvLoaded(s *Session, l *bpf.Loaded) (Result, error) {
	h, err := kv.Open(l.Dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w; nothing stays loaded", l.Name, err)
	}
	defer h.Close()
	st := kvState(s)
	ld := st.load(l.Name)
	if ld.writer != nil {
		// This shell ran a writer for an earlier load of NAME that
		// another bpfsh unloaded: it drains what that ring still holds
		// and goes; the new store starts from the WAL.
		ld.stopWriter()
	}
	*ld = kvLoad{}
	path := kv.WALPath(s.StateDir, s.PinRoot, l.Name)
	// Replay before anything can use the store. load has pinned the
	// program but attached it nowhere, so no packet reaches it, and no
	// command of this shell runs before this one returns; only another
	// process opening the new pins in this instant could see the store
	// before the WAL is in it.
	rep, err := kv.Replay(path, kv.PinRootHash(s.PinRoot), h.Store, h.Meta)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w; nothing stays loaded", l.Name, err)
	}
	j := &kvLoadJSON{WAL: path, Replay: rep}
	r := &Record{JSON: j}
	add := func(name, value string) { r.Fields = append(r.Fields, Field{Name: name, Value: value}) }
	add("wal", path)
	add("replay", replaySummary(&rep))
	if rep.Torn != nil {
		add("torn tail", rep.Torn.String()+"; cut, not applied")
	}
	if err := ld.startWriter(l.Dir, path, s.PinRoot, h); err != nil {
		ld.why = err
		j.WriterError = err.Error()
		add("writer", "not started: "+err.Error()+"; commits fill the log ring (4 MiB, about 450 commits) until it answers LOG_FULL")
	} else {
		j.Writer = true
		add("writer", "running: commits are appended to the WAL and fsynced in groups; kv sync waits for them")
	}
	return r, nil
}

// replaySummary says in one line what Replay did.
func replaySummary(rep *kv.ReplayReport) string {
	var parts []string
	if rep.Checkpoint != "" {
		parts = append(parts, fmt.Sprintf("checkpoint of %s at seq %d", plural(rep.CheckpointEntries, "key"), rep.CheckpointSeq))
	}
	switch {
	case rep.Applied > 0:
		parts = append(parts, fmt.Sprintf("%s applied (seq %d..%d)", plural(rep.Applied, "record"), rep.LastSeq-uint64(rep.Applied)+1, rep.LastSeq))
	case rep.Records == 0 && rep.Checkpoint == "":
		return "nothing to replay: the store starts empty"
	}
	if rep.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%s already in the checkpoint", plural(rep.Skipped, "record")))
	}
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += ", "
		}
		s += p
	}
	return s + fmt.Sprintf("; the store is at seq %d", rep.LastSeq)
}

func kvUnloading(s *Session, name string) (Result, error) {
	st := kvState(s)
	ld := st.load(name)
	dir := filepath.Join(s.PinRoot, name)
	path := kv.WALPath(s.StateDir, s.PinRoot, name)
	fail := func(err error) (Result, error) {
		return nil, fmt.Errorf("unload %s: %v; the commits it had not written are only in the log ring and would go with the maps: fix that and run 'kv wal start', or 'kv wal stop' to unload anyway", name, err)
	}
	var writer string
	switch {
	case ld.writer != nil:
		path = ld.path
		stats, err := ld.stopWriter()
		if err != nil {
			return fail(err)
		}
		writer = fmt.Sprintf("flushed and stopped: %s written in this session, durable seq %d", plural(int(stats.Records), "record"), stats.DurableSeq)
	case ld.stopped:
		writer = "none (stopped with kv wal stop): commits made since are not in the WAL"
	default:
		// No writer in this shell: flush what the ring holds with one
		// now, unless another bpfsh's writer drains it.
		h, err := kv.Open(dir)
		if err != nil {
			writer = fmt.Sprintf("none; the log ring could not be flushed: %v", err)
			break
		}
		err = ld.startWriter(dir, path, s.PinRoot, h)
		h.Close()
		switch {
		case errors.Is(err, kv.ErrWALBusy):
			writer = "another bpfsh writes the WAL; it drains the rest of the ring until it stops"
		case err != nil:
			writer = fmt.Sprintf("none; the log ring could not be flushed: %v", err)
		default:
			stats, err := ld.stopWriter()
			if err != nil {
				return fail(err)
			}
			writer = fmt.Sprintf("flushed the log ring: %s", plural(int(stats.Records), "record"))
		}
	}
	delete(st.loads, name)
	return &Record{
		Fields: []Field{{Name: "wal", Value: path + " (kept; load replays it)"}, {Name: "writer", Value: writer}},
		JSON:   map[string]string{"wal": path, "writer": writer},
	}, nil
}

// kvWALCmd reads --name and returns the open store, the words left and a
// context for waiting on the WAL.
func kvWALCmd(s *Session, args []string) (*kvTarget, []string, context.Context, context.CancelFunc, error) {
	name, _, rest, err := kvFlags(s, args)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	t, err := openKV(s, name)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(s.Context(), kvWALTimeout)
	return t, rest, ctx, cancel, nil
}

// kvSyncJSON is kv sync's result in JSON.
type kvSyncJSON struct {
	DurableSeq uint64 `json:"durable_seq"`
	CommitSeq  uint64 `json:"commit_seq"`
	WAL        string `json:"wal"`
	Writer     string `json:"writer"` // "this shell" or "another bpfsh"
}

func runKVSync(s *Session, args []string) (Result, error) {
	t, rest, ctx, cancel, err := kvWALCmd(s, args)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer t.close()
	if len(rest) > 0 {
		return nil, Usagef("kv sync takes no arguments, not %q", rest[0])
	}
	t.ensureWriter(s)
	ld := t.ld
	j := &kvSyncJSON{}
	switch {
	case ld.writer != nil:
		j.WAL, j.Writer = ld.writer.Path(), "this shell"
		j.DurableSeq, err = ld.writer.Sync(ctx)
		if err != nil {
			return nil, err
		}
	case ld.stopped:
		return nil, fmt.Errorf("kv sync: no WAL writer runs for %s in this shell (stopped with kv wal stop); kv wal start starts one", t.name)
	case errors.Is(ld.why, kv.ErrWALBusy):
		j.WAL, j.Writer = t.walPath(s), "another bpfsh"
		m, err := t.h.ReadMeta()
		if err != nil {
			return nil, fmt.Errorf("kv sync: %w", err)
		}
		if j.DurableSeq, err = waitWAL(ctx, j.WAL, kv.PinRootHash(s.PinRoot), m.CommitSeq); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("kv sync: no WAL writer runs for %s: %v", t.name, ld.why)
	}
	m, err := t.h.ReadMeta()
	if err != nil {
		return nil, fmt.Errorf("kv sync: %w", err)
	}
	j.CommitSeq = m.CommitSeq
	text := fmt.Sprintf("durable seq %d: every commit up to it is fsynced in %s", j.DurableSeq, j.WAL)
	if j.Writer != "this shell" {
		text += " (written by " + j.Writer + ")"
	}
	return &Message{Text: text, Data: j}, nil
}

// waitWAL waits until the WAL at path, written by another process's
// writer, holds seq target, and returns the seq it holds. The record may
// be in the page cache and not yet fsynced by its writer, so it fsyncs
// the file itself before saying it is durable.
func waitWAL(ctx context.Context, path string, h [8]byte, target uint64) (uint64, error) {
	for {
		seq, err := walSeq(path, h)
		if err != nil {
			return seq, fmt.Errorf("kv sync: %w", err)
		}
		if seq >= target {
			f, err := os.Open(path)
			if err == nil {
				err = f.Sync()
				f.Close()
			}
			if err != nil {
				return seq, fmt.Errorf("kv sync: fsync %s: %w", path, err)
			}
			return seq, nil
		}
		select {
		case <-ctx.Done():
			return seq, fmt.Errorf("kv sync: the WAL written by another bpfsh holds seq %d, not yet %d: %w", seq, target, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// walSeq is the last seq the WAL at path holds, or its checkpoint does.
func walSeq(path string, h [8]byte) (uint64, error) {
	info, err := kv.ReadWAL(path, h, nil)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	seq := info.LastSeq
	if snap, err := kv.ReadCheckpoint(kv.CheckpointPath(path), h); err == nil {
		seq = max(seq, snap.Seq)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return seq, err
	}
	return seq, nil
}

func runKVCheckpoint(s *Session, args []string) (Result, error) {
	t, rest, ctx, cancel, err := kvWALCmd(s, args)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer t.close()
	if len(rest) > 0 {
		return nil, Usagef("kv checkpoint takes no arguments, not %q", rest[0])
	}
	t.ensureWriter(s)
	ld := t.ld
	switch {
	case ld.writer != nil:
	case ld.stopped:
		return nil, fmt.Errorf("kv checkpoint: no WAL writer runs for %s in this shell (stopped with kv wal stop); kv wal start starts one", t.name)
	case errors.Is(ld.why, kv.ErrWALBusy):
		return nil, fmt.Errorf("kv checkpoint: another bpfsh writes the WAL of %s; run kv checkpoint in that shell", t.name)
	default:
		return nil, fmt.Errorf("kv checkpoint: no WAL writer runs for %s: %v", t.name, ld.why)
	}
	rep, err := ld.writer.Checkpoint(ctx, t.h.Store)
	if err != nil {
		return nil, err
	}
	return &Record{Fields: []Field{
		{Name: "checkpoint", Value: rep.Path},
		{Name: "covers", Value: fmt.Sprintf("commits up to seq %d: %s, %d bytes", rep.Seq, plural(rep.Entries, "key"), rep.Bytes)},
		{Name: "wal", Value: fmt.Sprintf("%s: %d -> %d bytes (%s after the snapshot kept)", ld.writer.Path(), rep.WALBefore, rep.WALAfter, plural(rep.KeptRecords, "record"))},
	}, JSON: rep}, nil
}

func runKVWAL(s *Session, args []string) (Result, error) {
	t, rest, _, cancel, err := kvWALCmd(s, args)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer t.close()
	if len(rest) == 0 {
		return kvWALStatus(s, t)
	}
	switch rest[0] {
	case "status":
		if len(rest) > 1 {
			return nil, Usagef("kv wal status takes no arguments, not %q", rest[1])
		}
		return kvWALStatus(s, t)
	case "start":
		if len(rest) > 2 {
			return nil, Usagef("kv wal start takes at most one FILE")
		}
		path := t.walPath(s)
		if len(rest) == 2 {
			if path, err = filepath.Abs(rest[1]); err != nil {
				return nil, fmt.Errorf("kv wal start: %w", err)
			}
		}
		return kvWALStart(s, t, path)
	case "stop":
		if len(rest) > 1 {
			return nil, Usagef("kv wal stop takes no arguments, not %q", rest[1])
		}
		return kvWALStop(t)
	}
	return nil, Usagef("kv wal: unknown %q; one of status, start [FILE], stop", rest[0])
}

func kvWALStart(s *Session, t *kvTarget, path string) (Result, error) {
	ld := t.ld
	if ld.writer != nil {
		return nil, fmt.Errorf("kv wal start: a WAL writer already runs for %s in this shell, on %s; kv wal stop first", t.name, ld.writer.Path())
	}
	if err := ld.startWriter(t.dir, path, s.PinRoot, t.h); err != nil {
		return nil, fmt.Errorf("kv wal start: %w", err)
	}
	info := ld.writer.Opened()
	r := &Record{Fields: []Field{
		{Name: "wal", Value: path},
		{Name: "holds", Value: fmt.Sprintf("%s, %d bytes, up to seq %d", plural(info.Records, "record"), info.End, info.LastSeq)},
	}, JSON: info}
	if info.Torn != nil {
		r.Fields = append(r.Fields, Field{Name: "torn tail", Value: info.Torn.String() + "; cut (its records are still in the log ring and are written again)"})
	}
	if path != t.walPath(s) {
		r.Fields = append(r.Fields, Field{Name: "note", Value: "load replays " + t.walPath(s) + ", not this file"})
	}
	r.Fields = append(r.Fields, Field{Name: "writer", Value: "running"})
	return r, nil
}

func kvWALStop(t *kvTarget) (Result, error) {
	ld := t.ld
	ld.stopped = true
	if ld.writer == nil {
		return &Message{Text: fmt.Sprintf("no WAL writer ran for %s in this shell; none starts by itself now (kv wal start)", t.name)}, nil
	}
	path := ld.writer.Path()
	stats, err := ld.stopWriter()
	if err != nil {
		return nil, fmt.Errorf("kv wal stop: stopped a writer that had failed: %w", err)
	}
	return &Message{
		Text: fmt.Sprintf("stopped the WAL writer of %s: %s written to %s in this session, durable seq %d; commits now fill the log ring until it answers LOG_FULL (kv wal start resumes)",
			t.name, plural(int(stats.Records), "record"), path, stats.DurableSeq),
		Data: stats,
	}, nil
}

// kvWALStatusJSON is kv wal status in JSON.
type kvWALStatusJSON struct {
	WAL        string          `json:"wal"`
	Writer     string          `json:"writer"` // this shell, another bpfsh, stopped, none
	WriterErr  string          `json:"writer_error,omitempty"`
	Stats      *kv.WriterStats `json:"stats,omitempty"`
	CommitSeq  uint64          `json:"commit_seq"`
	DurableSeq uint64          `json:"durable_seq"`
	File       kv.WALInfo      `json:"file"`
	Checkpoint *kvCkptJSON     `json:"checkpoint,omitempty"`
}

type kvCkptJSON struct {
	Path string `json:"path"`
	Seq  uint64 `json:"seq"`
	Keys int    `json:"keys"`
}

func kvWALStatus(s *Session, t *kvTarget) (Result, error) {
	ld := t.ld
	h := kv.PinRootHash(s.PinRoot)
	j := &kvWALStatusJSON{WAL: t.walPath(s)}
	var writer string
	switch {
	case ld.writer != nil:
		j.WAL = ld.writer.Path()
		st := ld.writer.Stats()
		j.Writer, j.Stats, j.DurableSeq = "this shell", &st, st.DurableSeq
		writer = fmt.Sprintf("running in this shell: %s in %s (%d bytes)", plural(int(st.Records), "record"), plural(int(st.Batches), "fsync"), st.Bytes)
		if err := ld.writer.Err(); err != nil {
			j.WriterErr = err.Error()
			writer = "failed: " + err.Error()
		}
	case ld.stopped:
		j.Writer, writer = "stopped", "stopped with kv wal stop (kv wal start resumes)"
	default:
		// Nothing runs here: see whether another bpfsh holds the ring.
		lock, err := lockPinDir(t.dir)
		unlockFile(lock)
		switch {
		case errors.Is(err, kv.ErrWALBusy):
			j.Writer, writer = "another bpfsh", "running in another bpfsh"
		default:
			j.Writer, writer = "none", "none: the next kv command starts one"
			if ld.why != nil && !errors.Is(ld.why, kv.ErrWALBusy) {
				j.WriterErr = ld.why.Error()
				writer = "none: " + ld.why.Error()
			}
		}
	}
	m, err := t.h.ReadMeta()
	if err != nil {
		return nil, fmt.Errorf("kv wal: %w", err)
	}
	j.CommitSeq = m.CommitSeq
	info, err := kv.ReadWAL(j.WAL, h, nil)
	file := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		file = "not there yet"
	case err != nil:
		file = err.Error()
	default:
		file = fmt.Sprintf("%s, %d bytes", plural(info.Records, "record"), info.Size)
		if info.Records > 0 {
			file += fmt.Sprintf(", seq %d..%d", info.FirstSeq, info.LastSeq)
		}
		if info.Torn != nil {
			file += "; " + info.Torn.String() + " (cut when a writer opens it)"
		}
	}
	j.File = info
	if ld.writer == nil {
		j.DurableSeq = info.LastSeq
	}
	if j.Writer == "none" && ld.why == nil && info.LastSeq > m.CommitSeq {
		writer = fmt.Sprintf("none, and none can start: the WAL holds commits up to seq %d but the store is at seq %d (it was not loaded from this WAL)", info.LastSeq, m.CommitSeq)
	}
	ckpt := "none"
	if snap, err := kv.ReadCheckpoint(kv.CheckpointPath(j.WAL), h); err == nil {
		j.Checkpoint = &kvCkptJSON{Path: kv.CheckpointPath(j.WAL), Seq: snap.Seq, Keys: len(snap.Entries)}
		ckpt = fmt.Sprintf("%s: %s at seq %d", j.Checkpoint.Path, plural(j.Checkpoint.Keys, "key"), snap.Seq)
		if ld.writer == nil {
			j.DurableSeq = max(j.DurableSeq, snap.Seq)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		ckpt = err.Error()
	}
	return &Record{Fields: []Field{
		{Name: "wal", Value: j.WAL},
		{Name: "writer", Value: writer},
		{Name: "commit seq", Value: strconv.FormatUint(j.CommitSeq, 10)},
		{Name: "durable seq", Value: strconv.FormatUint(j.DurableSeq, 10)},
		{Name: "file", Value: file},
		{Name: "checkpoint", Value: ckpt},
	}, JSON: j}, nil
}
