// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Diffing a large hash map by the keys a run touches
//
// Copying a million-entry map in the kernel (mapcopy.go) costs ~0.2 s
// each time, bound by memory. When Options.Learner is set, a run of one
// program over a hash map too large to read out first runs in the
// emulator (testrun/emu's Learner) on the same input and the map's
// current contents, which the emulator reads key by key as the program
// asks for them. The keys it looked up, updated or deleted (a write
// through a lookup's pointer is to the looked-up key) are then the only
// ones read, before and after the kernel's run. The emulator stands in
// only where it can be checked:
//   - it must run the program to the end, twice, with different clocks,
//     random seeds, CPUs and task ids, touching the same keys and
//     leaving the same values (otherwise the run depends on what it
//     cannot know);
//   - the keys must hold, just before the kernel's run, what the emulator
//     read;
//   - afterwards the kernel's return value and output packet must be the
//     emulator's, and the keys must hold what the emulator left there.
// When learning fails the map is copied in the kernel as before. When a
// check after the run fails it is too late to copy it: the changes of the
// touched keys are shown with a note saying others may be missing, and
// the program's later runs copy the map. Each large map's line in
// Outcome.MapMethods says which way it was diffed.

// KeyLearner learns which map keys a run will touch, before the kernel
// runs it (the emulator; testrun cannot import it).
type KeyLearner interface {
	// Learn runs r's program on r's input (DataIn, CtxIn, Flags, CPU;
	// there is no kernel answer yet) and the maps' contents now.
	Learn(r *ObservedRun) (*LearnedRun, error)
}

// LearnedRun is what a run did, as the learner saw it.
type LearnedRun struct {
	// Retval and DataOut are to match the kernel's (DataOut nil: types
	// without output data).
	Retval  uint32
	DataOut []byte
	// Maps are the kernel maps the run used, by id.
	Maps map[ebpf.MapID]*LearnedMap
}

// LearnedMap is what a run touched of one map: Keys in order, Base what
// each held before (nil: no entry), After what the run left there.
type LearnedMap struct {
	Keys        [][]byte
	Base, After [][]byte
	// Walked says the run walked or counted the whole map.
	Walked bool
}

// maxLearnedKeys bounds the keys read one by one; past it the map is
// copied in the kernel.
const maxLearnedKeys = 10_000

// noLearn remembers programs (by id) whose kernel runs did not match the
// learner's: their later runs copy large maps whole.
var noLearn struct {
	sync.Mutex
	m map[ebpf.ProgramID]string
}

func learnRefused(id ebpf.ProgramID) string {
	noLearn.Lock()
	defer noLearn.Unlock()
	return noLearn.m[id]
}

func refuseLearning(id ebpf.ProgramID, why string) {
	noLearn.Lock()
	defer noLearn.Unlock()
	if noLearn.m == nil || len(noLearn.m) >= 1024 {
		noLearn.m = map[ebpf.ProgramID]string{}
	}
	noLearn.m[id] = why
}

// learning is one run's learning, made when the first large map asks.
type learning struct {
	prog    ebpf.ProgramID
	learner KeyLearner
	run     *ObservedRun
	why     string // why there is no learner for this run
	done    bool
	res     *LearnedRun
	err     error
	// mismatch, set after the kernel's run, says how it differed.
	mismatch string
}

func (l *learning) get() (*LearnedRun, error) {
	if l == nil {
		return nil, errors.New("no emulator to learn the keys from")
	}
	if l.why != "" {
		return nil, errors.New(l.why)
	}
	if !l.done {
		l.done = true
		if why := learnRefused(l.prog); why != "" {
			l.err = fmt.Errorf("an earlier run of this program differed from the emulator's (%s)", why)
		} else {
			l.res, l.err = l.learner.Learn(l.run)
		}
	}
	return l.res, l.err
}

// check holds the kernel's answer against the learner's.
func (l *learning) check(retval uint32, dataOut []byte) {
	if l == nil || l.res == nil {
		return
	}
	switch {
	case l.res.Retval != retval:
		l.mismatch = fmt.Sprintf("the kernel returned %d, the emulator %d", retval, l.res.Retval)
	case l.res.DataOut != nil && !bytes.Equal(l.res.DataOut, dataOut):
		l.mismatch = "the kernel's output packet differs from the emulator's"
	}
	if l.mismatch != "" {
		refuseLearning(l.prog, l.mismatch)
	}
}

// learnedSnap starts the diff of a large map by the keys the learner saw
// the run touch; the error says why it cannot.
func learnedSnap(snap *mapSnap, l *learning) error {
	res, err := l.get()
	if err != nil {
		return err
	}
	lm := res.Maps[snap.id]
	if lm == nil {
		lm = &LearnedMap{} // the run does not reach it
	}
	switch {
	case lm.Walked:
		return errors.New("the program walks the whole map")
	case len(lm.Keys) > maxLearnedKeys:
		return fmt.Errorf("the program touches %d keys (over %d)", len(lm.Keys), maxLearnedKeys)
	}
	entries, err := readKeys(snap.m, lm.Keys)
	if err != nil {
		return err
	}
	for i, k := range lm.Keys {
		v, ok := entries[string(k)]
		if ok != (lm.Base[i] != nil) || !bytes.Equal(v, lm.Base[i]) {
			return errors.New("the map changed between the emulator's run and the kernel's: another writer")
		}
	}
	snap.learned, snap.entries = lm, entries
	return nil
}

// readKeys reads keys of m: key -> value, absent keys left out.
func readKeys(m *ebpf.Map, keys [][]byte) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v, err := bpf.LookupElem(m, k)
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("read a key: %w", err)
		}
		out[string(k)] = v
	}
	return out, nil
}

// learnedDiff reads the touched keys again after the run and checks them
// against what the learner left there; the note says what did not match.
func (snap *mapSnap) learnedDiff(l *learning) (after map[string][]byte, note string, err error) {
	lm := snap.learned
	if after, err = readKeys(snap.m, lm.Keys); err != nil {
		return nil, "", err
	}
	why := l.mismatch
	if why == "" {
		for i, k := range lm.Keys {
			v, ok := after[string(k)]
			if ok != (lm.After[i] != nil) || !bytes.Equal(v, lm.After[i]) {
				why = "a key the run touched holds another value than the emulator left there (another writer, or the emulator got the program wrong)"
				refuseLearning(l.prog, why)
				break
			}
		}
	}
	if why != "" {
		note = fmt.Sprintf("map %s: diffed by the %d key(s) the emulator saw the run touch, but the kernel's run did not match it: %s. Changes the kernel made to other keys are not seen; the program's next runs copy the map whole", snap.name, len(lm.Keys), why)
	}
	return after, note, nil
}
