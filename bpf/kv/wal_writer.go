// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// WriterOptions tune a Writer; the zero value is the default.
type WriterOptions struct {
	// MaxBatch caps the WAL bytes of one group commit (default 1 MiB).
	// Whatever the ring holds, up to this, goes to disk with one fdatasync.
	MaxBatch int
	// Poll is the longest the writer sleeps without a wakeup from the
	// kernel before it looks at the ring again (default 100ms). Wakeups
	// come with every record, so this is only a safety net.
	Poll time.Duration
	// SyncGrace is how long Sync waits for a commit that has taken its
	// seq but whose record is not in the ring yet, before it concludes
	// that the seq will never arrive (a discarded commit) (default 10ms).
	SyncGrace time.Duration
}

func (o *WriterOptions) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1 << 20
	}
	if o.Poll <= 0 {
		o.Poll = 100 * time.Millisecond
	}
	if o.SyncGrace <= 0 {
		o.SyncGrace = 10 * time.Millisecond
	}
}

// WriterStats counts what a Writer did since it was opened.
type WriterStats struct {
	Records    uint64 `json:"records"`     // records appended to the WAL
	Skipped    uint64 `json:"skipped"`     // records the WAL already had (left in the ring by a previous writer)
	Discarded  uint64 `json:"discarded"`   // records the program discarded
	Batches    uint64 `json:"batches"`     // group commits, one fdatasync each
	Bytes      uint64 `json:"bytes"`       // bytes appended
	DurableSeq uint64 `json:"durable_seq"` // highest seq on disk
}

// ErrWriterClosed is returned by Sync and Checkpoint after Close.
var ErrWriterClosed = errors.New("the WAL writer is closed")

// Writer drains the kv log ring buffer into the WAL: every record the
// kernel commits is appended, checksummed, and fsynced in groups (one
// fdatasync for whatever arrived while the previous one ran). A record
// leaves the ring only after it is durable, so when the disk fails or
// fills the writer stops (Err says why), the ring fills, and the kernel
// answers LOG_FULL: no commit is ever acknowledged by the ring and lost.
type Writer struct {
	path   string
	hash   [8]byte
	opts   WriterOptions
	lock   *os.File
	meta   *ebpf.Map
	ring   *ringConsumer
	opened WALInfo

	// fileMu is held by the drain loop for one batch and by Checkpoint
	// while it replaces the file.
	fileMu    sync.Mutex
	file      *os.File
	size      int64  // bytes of good records in file
	lastSeq   uint64 // seq of the last record in the WAL (or the checkpoint's)
	redeliver uint64 // records up to this seq may come again from the ring
	buf       []byte
	fileErr   error // set when the file could not be replaced: stop

	// mu guards what Sync and Stats read.
	mu         sync.Mutex
	changed    chan struct{} // closed and replaced whenever the fields below change
	durablePos uint64        // ring position up to which everything is durable
	stats      WriterStats
	err        error
	closed     bool

	ckptMu sync.Mutex // one Checkpoint at a time

	// liveMu keeps Close from unmapping the ring and closing meta
	// under a Sync or Checkpoint that reads them.
	liveMu sync.RWMutex
	shut   bool

	stopping  atomic.Bool
	stopAt    uint64 // producer position when Close was called
	done      chan struct{}
	closeOnce sync.Once
}

// OpenWriter opens (or creates) the WAL at path for the pin root whose
// hash is h and starts draining the log ring buffer into it. A torn tail
// left by a killed writer is cut (see Opened): its records are still in
// the ring when the maps are the same, and go to disk again. The WAL must
// not be ahead of the store: replay it first (Replay) into fresh maps.
// ring and meta are cloned; the caller may close its own.
func OpenWriter(path string, h [8]byte, ring, meta *ebpf.Map, opts WriterOptions) (*Writer, error) {
	opts.defaults()
	lock, err := lockWAL(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, hash: h, opts: opts, lock: lock, changed: make(chan struct{}), done: make(chan struct{})}
	fail := func(err error) (*Writer, error) {
		if w.file != nil {
			w.file.Close()
		}
		if w.ring != nil {
			w.ring.close()
		}
		if w.meta != nil {
			w.meta.Close()
		}
		unlockWAL(lock)
		return nil, err
	}
	if w.meta, err = meta.Clone(); err != nil {
		return fail(fmt.Errorf("kv meta map: %w", err))
	}
	m, err := ReadMeta(w.meta)
	if err != nil {
		return fail(err)
	}
	ckptSeq, err := checkpointSeq(CheckpointPath(path), h)
	if err != nil {
		return fail(err)
	}
	f, info, err := openWAL(path, h)
	if err != nil {
		return fail(err)
	}
	w.file, w.opened, w.size = f, info, info.End
	// A killed writer may have written records it never fsynced.
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fail(fmt.Errorf("fsync WAL %s: %w", path, err))
	}
	w.lastSeq = max(info.LastSeq, ckptSeq)
	if m.CommitSeq < w.lastSeq {
		return fail(fmt.Errorf("WAL %s holds commits up to seq %d but the store is at seq %d: replay it into the store first (load kv does), or give another WAL path", path, w.lastSeq, m.CommitSeq))
	}
	w.redeliver = w.lastSeq
	if w.ring, err = openRing(ring); err != nil {
		return fail(err)
	}
	w.durablePos = w.ring.consumerPos()
	w.stats.DurableSeq = w.lastSeq
	go w.run()
	return w, nil
}

// Path is the WAL's file name.
func (w *Writer) Path() string { return w.path }

// Opened is what OpenWriter found in the WAL, including a torn tail it cut.
func (w *Writer) Opened() WALInfo { return w.opened }

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Err is why the writer stopped, or nil while it runs (and after a clean Close).
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// run is the drain loop: commit a batch while there is one, else sleep
// until the kernel signals a record.
func (w *Writer) run() {
	defer close(w.done)
	for {
		n, err := w.commitBatch()
		if err != nil {
			w.fail(err)
			return
		}
		// Close drains what was there when it was called, not
		// what a busy program keeps adding.
		if w.stopping.Load() && w.ring.consumerPos() >= w.stopAt {
			return
		}
		if n > 0 {
			continue
		}
		if w.ring.producerPos() != w.ring.consumerPos() {
			// The next record is still being written (its busy bit
			// is set): that takes a BPF program's run, microseconds.
			// The ring stays readable to epoll meanwhile, so sleep
			// rather than spin on it.
			time.Sleep(20 * time.Microsecond)
			continue
		}
		if err := w.ring.wait(w.opts.Poll); err != nil {
			w.fail(err)
			return
		}
	}
}

// commitBatch appends what the ring holds (up to MaxBatch bytes) to the
// WAL with one fdatasync and then releases it from the ring. It returns
// how many ring records it consumed.
func (w *Writer) commitBatch() (int, error) {
	w.fileMu.Lock()
	defer w.fileMu.Unlock()
	if w.fileErr != nil {
		return 0, w.fileErr
	}
	cons, prod := w.ring.consumerPos(), w.ring.producerPos()
	pos, buf := cons, w.buf[:0]
	last := w.lastSeq
	var consumed, records, skipped, discarded int
	for pos < prod && len(buf) < w.opts.MaxBatch {
		s, err := w.ring.at(pos, prod)
		if err != nil {
			return 0, err
		}
		if s.busy {
			break
		}
		switch {
		case s.discard:
			discarded++
		case len(s.data) < LogRecordHeaderSize:
			return 0, fmt.Errorf("log ring: a %d-byte record where a struct kv_log_record (%d bytes) belongs", len(s.data), LogRecordSize)
		case ringSeq(s.data) <= last && ringSeq(s.data) <= w.redeliver:
			// Appended and fsynced by a writer that died before it
			// released the ring.
			skipped++
		case ringSeq(s.data) <= last:
			return 0, fmt.Errorf("log ring: record seq %d after seq %d: the kv program must take seqs and reserve records in the same order (under its commit lock)", ringSeq(s.data), last)
		default:
			start := len(buf)
			buf = append(buf, make([]byte, walFrameHeader)...)
			buf, err = appendPayloadFromRing(buf, s.data)
			if err != nil {
				return 0, fmt.Errorf("log ring: %w", err)
			}
			sealFrame(buf[start:])
			last = ringSeq(s.data)
			records++
		}
		consumed++
		pos = s.next
	}
	if pos == cons {
		return 0, nil
	}
	w.buf = buf
	if len(buf) > 0 {
		if err := w.appendDurably(buf); err != nil {
			return 0, err
		}
		w.size += int64(len(buf))
		w.lastSeq = last
		w.redeliver = 0 // from here on, a seq that goes back is a bug
	}
	w.ring.release(pos)

	w.mu.Lock()
	w.durablePos = pos
	w.stats.Records += uint64(records)
	w.stats.Skipped += uint64(skipped)
	w.stats.Discarded += uint64(discarded)
	if len(buf) > 0 {
		w.stats.Batches++
		w.stats.Bytes += uint64(len(buf))
		w.stats.DurableSeq = last
	}
	w.broadcastLocked()
	w.mu.Unlock()
	return consumed, nil
}

// appendDurably writes buf at the end of the WAL and fdatasyncs. On
// failure it cuts the file back to its last durable size (best effort:
// after a failed fsync the page cache cannot be trusted), and the
// records stay in the ring.
func (w *Writer) appendDurably(buf []byte) error {
	if _, err := w.file.WriteAt(buf, w.size); err != nil {
		w.file.Truncate(w.size)
		return fmt.Errorf("append to WAL %s: %w", w.path, err)
	}
	if err := unix.Fdatasync(int(w.file.Fd())); err != nil {
		w.file.Truncate(w.size)
		return fmt.Errorf("fsync WAL %s: %w", w.path, err)
	}
	return nil
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = fmt.Errorf("WAL writer stopped: %w; the records not on disk stay in the log ring (commits answer LOG_FULL once it fills) until a writer runs again", err)
	}
	w.broadcastLocked()
}

func (w *Writer) broadcastLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// state is a consistent look at what is durable.
func (w *Writer) state() (seq, pos uint64, err error, closed bool, changed <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats.DurableSeq, w.durablePos, w.err, w.closed, w.changed
}

// Sync returns once everything committed before the call is durable in
// the WAL, with the highest durable seq. It reads meta.commit_seq and
// waits for the record with that seq (which may still be on its way into
// the ring) to be fsynced. Should that seq never arrive (a commit that
// took a seq and then discarded its record), Sync returns once every
// record reserved up to SyncGrace after the call is durable; the seq it
// returns is then below commit_seq. ctx bounds the wait.
func (w *Writer) Sync(ctx context.Context) (uint64, error) {
	m, limit, err := w.look()
	if err != nil {
		seq, _, _, _, _ := w.state()
		return seq, fmt.Errorf("kv sync: %w", err)
	}
	target := m.CommitSeq
	graced := false
	for {
		seq, pos, werr, closed, changed := w.state()
		switch {
		case seq >= target:
			return seq, nil
		case werr != nil:
			return seq, fmt.Errorf("kv sync: %w", werr)
		case pos >= limit && graced:
			return seq, nil
		case pos >= limit:
			// Every record reserved before the call is on disk, but
			// not seq target: give its commit time to reserve it.
			graced = true
			select {
			case <-time.After(w.opts.SyncGrace):
			case <-ctx.Done():
				return seq, fmt.Errorf("kv sync: %w (durable up to seq %d of %d)", ctx.Err(), seq, target)
			}
			if _, limit, err = w.look(); err != nil {
				return seq, fmt.Errorf("kv sync: %w", err)
			}
			continue
		case closed:
			return seq, fmt.Errorf("kv sync: %w (durable up to seq %d of %d)", ErrWriterClosed, seq, target)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return seq, fmt.Errorf("kv sync: %w (durable up to seq %d of %d)", ctx.Err(), seq, target)
		}
	}
}

// look reads meta and then the ring's producer position, unless the
// writer is closed.
func (w *Writer) look() (Meta, uint64, error) {
	w.liveMu.RLock()
	defer w.liveMu.RUnlock()
	if w.shut {
		return Meta{}, 0, ErrWriterClosed
	}
	m, err := ReadMeta(w.meta)
	return m, w.ring.producerPos(), err
}

// syncPos waits until every record reserved before ring position limit
// is durable (or discarded) and returns the highest durable seq.
func (w *Writer) syncPos(ctx context.Context, limit uint64) (uint64, error) {
	for {
		seq, pos, werr, closed, changed := w.state()
		switch {
		case werr != nil:
			return seq, werr
		case pos >= limit:
			return seq, nil
		case closed:
			return seq, ErrWriterClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return seq, ctx.Err()
		}
	}
}

// Close drains what the ring holds at the call into the WAL, fsyncs,
// stops the writer and releases the WAL. It returns why the writer
// stopped, if it failed.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		w.stopAt = w.ring.producerPos()
		w.stopping.Store(true)
		w.ring.wake()
		<-w.done
		w.fileMu.Lock()
		w.file.Close()
		w.file = nil
		w.fileMu.Unlock()
		w.liveMu.Lock()
		w.shut = true
		w.ring.close()
		w.meta.Close()
		w.liveMu.Unlock()
		unlockWAL(w.lock)
		w.mu.Lock()
		w.closed = true
		w.broadcastLocked()
		w.mu.Unlock()
	})
	return w.Err()
}
