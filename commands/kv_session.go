// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// kvSessionVar is the session variable that holds the kv commands' state
// (a *kvSession). Its name has a dot, so no $NAME can reach it.
const kvSessionVar = "kv.session"

// kvSession is what the kv commands keep from one command to the next:
// the load NAME they use, and per NAME the open transaction and the WAL
// writer.
type kvSession struct {
	name  string             // NAME used unless --name says otherwise ("kv"; kv use)
	loads map[string]*kvLoad // by NAME
	reqid uint32             // the last request id sent
	ports map[ebpf.ProgramID]uint16
}

// kvLoad is the session's state for one loaded kv store.
type kvLoad struct {
	// txid is the transaction kv begin opened (0: none); get, set and
	// del carry it until commit or abort ends it.
	txid uint64
	// writer drains the log ring into the WAL at path while lock (on
	// the store's pin directory) keeps every other writer off its ring.
	writer *kv.Writer
	path   string
	lock   *os.File
	// stopped is set by kv wal stop: no writer starts again by itself
	// until kv wal start.
	stopped bool
	// why no writer runs in this session, when one could not be
	// started ("" when one runs); noted says the user was told.
	why   error
	noted bool
}

// kvState returns the session's kv state, made on first use; the WAL
// writers it starts are stopped (and flushed) when the shell ends.
func kvState(s *Session) *kvSession {
	if st, ok := s.Vars[kvSessionVar].(*kvSession); ok {
		return st
	}
	st := &kvSession{name: kv.BuiltinName, loads: map[string]*kvLoad{}, ports: map[ebpf.ProgramID]uint16{}}
	if s.Vars == nil {
		s.Vars = map[string]any{}
	}
	s.Vars[kvSessionVar] = st
	s.AtExit("kv.wal", st.closeAll)
	return st
}

// load returns the state of NAME, made on first use.
func (st *kvSession) load(name string) *kvLoad {
	ld := st.loads[name]
	if ld == nil {
		ld = &kvLoad{}
		st.loads[name] = ld
	}
	return ld
}

// closeAll stops every writer the session runs, each draining what the
// ring holds into its WAL first.
func (st *kvSession) closeAll() error {
	var errs []error
	for name, ld := range st.loads {
		if ld.writer != nil {
			if _, err := ld.stopWriter(); err != nil {
				errs = append(errs, fmt.Errorf("kv %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// startWriter starts a WAL writer on path for the kv store pinned in dir
// (handle h). It first locks dir, the store's pin directory, so that no
// other bpfsh drains the same log ring into another file (the WAL's own
// lock only keeps writers of one file apart); both locks are flocks and
// go with the process, so a killed shell leaves neither behind.
func (ld *kvLoad) startWriter(dir, path, pinRoot string, h *kv.Handle) error {
	lock, err := lockPinDir(dir)
	if err != nil {
		return err
	}
	w, err := kv.OpenWriter(path, kv.PinRootHash(pinRoot), h.Log, h.Meta, kv.WriterOptions{})
	if err != nil {
		unlockFile(lock)
		return err
	}
	ld.writer, ld.path, ld.lock = w, path, lock
	ld.stopped, ld.why, ld.noted = false, nil, false
	return nil
}

// stopWriter drains the ring into the WAL, stops the writer and releases
// its locks. The error says why the writer failed, if it did: the
// commits it had not written then stay only in the ring.
func (ld *kvLoad) stopWriter() (kv.WriterStats, error) {
	err := ld.writer.Close()
	stats := ld.writer.Stats()
	unlockFile(ld.lock)
	ld.writer, ld.lock = nil, nil
	return stats, err
}

// lockPinDir takes an exclusive flock on the pin directory dir: bpffs
// directories can be opened and locked like any other, and the lock then
// belongs to this load of the store (a new load makes a new directory).
func lockPinDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("the log ring of %s is %w (another bpfsh drains it into its WAL): stop that writer first (kv wal stop, unload, or quit that shell)", dir, kv.ErrWALBusy)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// unlockFile releases a lock taken by lockPinDir.
func unlockFile(f *os.File) {
	if f != nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}

// kvTarget is one kv store the commands talk to.
type kvTarget struct {
	name string
	dir  string // <pin-root>/NAME
	h    *kv.Handle
	addr kv.Addressing
	ld   *kvLoad
	st   *kvSession
}

// openKV opens the kv store loaded as name under the pin root, with the
// addressing that reaches its port.
func openKV(s *Session, name string) (*kvTarget, error) {
	st := kvState(s)
	dir := filepath.Join(s.PinRoot, name)
	if _, err := os.Stat(filepath.Join(dir, kv.ProgramName)); errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dir); derr == nil {
			return nil, fmt.Errorf("%s under %s is not a kv store: it has no %s program; load kv with another name", name, s.PinRoot, kv.ProgramName)
		}
		load := "load kv"
		if name != kv.BuiltinName {
			load += " name " + name
		}
		return nil, fmt.Errorf("%s is not loaded under %s; run '%s'", name, s.PinRoot, load)
	}
	h, err := kv.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("%s under %s is not a kv store: %w", name, s.PinRoot, err)
	}
	t := &kvTarget{name: name, dir: dir, h: h, addr: kv.DefaultAddressing(), ld: st.load(name), st: st}
	port, err := st.port(h.Prog, dir)
	if err != nil {
		h.Close()
		return nil, err
	}
	t.addr.DstPort = port
	return t, nil
}

// port is the kv_port of the program, read once per program id.
func (st *kvSession) port(prog *ebpf.Program, dir string) (uint16, error) {
	info, err := prog.Info()
	if err != nil {
		return 0, fmt.Errorf("kv in %s: %w", dir, err)
	}
	id, _ := info.ID()
	if p, ok := st.ports[id]; ok {
		return p, nil
	}
	p, err := kv.PinnedPort(dir)
	if err != nil {
		return 0, err
	}
	st.ports[id] = p
	return p, nil
}

func (t *kvTarget) close() { t.h.Close() }

// walPath is the WAL that load replays for this store.
func (t *kvTarget) walPath(s *Session) string { return kv.WALPath(s.StateDir, s.PinRoot, t.name) }

// ensureWriter starts the session's WAL writer for the store unless one
// runs, kv wal stop stopped it, or starting it failed before. Any bpfsh
// that talks to a store drains its log ring this way: a one-shot
// "bpfsh kv set a 1" flushes its commit to the WAL before it exits, and
// a shell started after one was killed picks up what the ring holds.
// When another process's writer holds the ring, that one drains it and
// nothing needs saying; any other failure is returned once, as a note.
func (t *kvTarget) ensureWriter(s *Session) string {
	ld := t.ld
	if ld.writer != nil || ld.stopped {
		return ""
	}
	err := ld.startWriter(t.dir, t.walPath(s), s.PinRoot, t.h)
	ld.why = err
	switch {
	case err == nil:
		// Drain what the ring holds (commits made while no writer
		// ran) before this command adds to it: a full ring would
		// answer it LOG_FULL.
		ctx, cancel := context.WithTimeout(s.Context(), kvWALTimeout)
		defer cancel()
		if _, err := ld.writer.Sync(ctx); err != nil {
			return "the WAL writer could not drain the log ring: " + err.Error()
		}
		return ""
	case errors.Is(err, kv.ErrWALBusy), ld.noted:
		return ""
	}
	ld.noted = true
	return "no WAL writer: " + err.Error() + "; commits fill the log ring until it answers LOG_FULL"
}

// kvFlagArgs are the words every kv command takes besides its own.
var kvFlagArgs = argSpec{
	Flags:  []string{"--detail"},
	Valued: []string{"--name"},
	Need:   map[string]string{"--name": "the NAME kv was loaded as"},
}

// kvFlags takes --name NAME and --detail out of args, wherever they are,
// and returns the NAME to use (the session's unless given).
func kvFlags(s *Session, args []string) (name string, detail bool, rest []string, err error) {
	name = kvState(s).name
	rest, err = kvFlagArgs.parse(args, func(w string, v ...string) error {
		if w == "--detail" {
			detail = true
		} else {
			name = v[0]
		}
		return nil
	})
	if err != nil {
		return "", false, nil, err
	}
	if err := bpf.ValidName(name); err != nil {
		return "", false, nil, Usagef("--name: %v", err)
	}
	return name, detail, rest, nil
}
