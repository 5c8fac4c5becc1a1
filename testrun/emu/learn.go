// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/testrun"
)

// Touched is what a session read or wrote of one kernel map.
type Touched struct {
	Map string
	ID  ebpf.MapID
	// Keys are every key the session looked up, updated or deleted, in
	// byte order; Base what each held when the session first read it and
	// After what the session left there (nil: no entry).
	Keys  [][]byte
	Base  [][]byte
	After [][]byte
	// Walked says the session walked the whole map (for_each): Keys then
	// hold every key. (Counting the entries before an insert reads no
	// values and is not a walk.)
	Walked bool
}

// Touched lists the kernel maps the session used and the keys it
// touched in each, by map id.
func (s *Session) Touched() map[ebpf.MapID]*Touched {
	out := map[ebpf.MapID]*Touched{}
	for _, v := range s.m.env.views {
		if v.id == 0 {
			continue // private: not a kernel map
		}
		t := &Touched{Map: v.name, ID: v.id, Walked: v.order != nil}
		keys := make([]string, 0, len(v.entries))
		for k := range v.entries {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e := v.entries[k]
			t.Keys = append(t.Keys, e.key)
			var base, after []byte
			if e.baseOK {
				base = e.base
			}
			if e.ok {
				after = bytes.Clone(e.val)
				v.zeroSpecial(after)
			}
			t.Base, t.After = append(t.Base, base), append(t.After, after)
		}
		out[v.id] = t
	}
	return out
}

// Incomparable says why the session's run cannot stand for the kernel's
// (an LRU eviction it cannot predict, ...): empty when it can.
func (s *Session) Incomparable() []string { return append([]string(nil), s.m.env.notes...) }

// Learner is a testrun.KeyLearner: it runs the program in the emulator
// on the same input and the maps' current contents (read key by key as
// the program asks for them, never copied whole) and says which keys it
// touched. It runs it twice, with different clocks, random seeds, CPUs
// and task ids: when the two runs touch different keys or leave different
// values, what the kernel's run touches depends on what the emulator
// cannot know, and the learning fails.
type Learner struct {
	// Objects are objects to find the programs in, besides the built-ins
	// and the registered ones.
	Objects []*Object
	// Unknown, when set, is called once when no known object holds the
	// program; when it returns true the search is made again (it
	// registered more objects).
	Unknown func() bool
}

// Learn implements testrun.KeyLearner.
func (l *Learner) Learn(r *testrun.ObservedRun) (*testrun.LearnedRun, error) {
	prog, maps, err := ForProgram(r.Program, l.Objects...)
	if errors.Is(err, ErrUnknownProgram) && l.Unknown != nil && l.Unknown() {
		prog, maps, err = ForProgram(r.Program, l.Objects...)
	}
	if err != nil {
		return nil, err
	}
	defer maps.Close()
	// Queues are not drained to read them, and no large map is walked:
	// what needs either is left to the in-kernel copy.
	maps.NoDrain, maps.WalkLimit = true, maxWalk
	ncpu, _ := ebpf.PossibleCPU()
	cpu := int(r.CPU)
	if r.Flags&1 == 0 { // BPF_F_TEST_RUN_ON_CPU unset: wherever it runs
		if c, err := getcpu(); err == nil {
			cpu = c
		}
	}
	now := monotonicNow()
	pid := uint64(unix.Getpid())<<32 | uint64(unix.Gettid())
	cfg := Config{Program: prog, Maps: maps, Packet: r.DataIn, Ctx: r.CtxIn, CPU: cpu, Time: now, Seed: 1, NoJournal: true, PidTgid: pid, MaxSteps: maxLearnSteps}
	if r.Type == ebpf.Syscall || r.Type == ebpf.RawTracepoint || r.Type == ebpf.SkLookup {
		cfg.Packet = nil
	}
	one := func(cfg Config) (*Session, *Result, error) {
		s, err := NewSession(cfg)
		if err != nil {
			return nil, nil, err
		}
		if stop := s.Run(); stop.Reason != StopExit {
			return nil, nil, &RunError{Stop: stop}
		}
		if why := s.Incomparable(); len(why) > 0 {
			return nil, nil, errors.New(why[0])
		}
		return s, s.Result(), nil
	}
	s1, res, err := one(cfg)
	if err != nil {
		return nil, err
	}
	alt := cfg
	alt.Time, alt.Seed, alt.PidTgid = now+altClockAhead, 2, pid^0x0000_0101_0000_0101
	if ncpu > 1 {
		alt.CPU = (cpu + 1) % ncpu
	}
	s2, res2, err := one(alt)
	if err != nil {
		return nil, fmt.Errorf("second run: %w", err)
	}
	t1, t2 := s1.Touched(), s2.Touched()
	if res.Retval != res2.Retval || !bytes.Equal(res.DataOut, res2.DataOut) || !sameTouched(t1, t2) {
		return nil, errors.New("what the run does depends on the time, random numbers, the CPU or the task, which the emulator cannot know")
	}
	out := &testrun.LearnedRun{Retval: uint32(res.Retval), DataOut: res.DataOut, Maps: map[ebpf.MapID]*testrun.LearnedMap{}}
	if r.Type == ebpf.RawTracepoint || r.Type == ebpf.SkLookup || r.Type == ebpf.Syscall {
		out.DataOut = nil
	}
	for id, t := range t1 {
		out.Maps[id] = &testrun.LearnedMap{Keys: t.Keys, Base: t.Base, After: t.After, Walked: t.Walked}
	}
	return out, nil
}

func sameTouched(a, b map[ebpf.MapID]*Touched) bool {
	if len(a) != len(b) {
		return false
	}
	for id, x := range a {
		y := b[id]
		if y == nil || len(x.Keys) != len(y.Keys) || x.Walked != y.Walked {
			return false
		}
		for i := range x.Keys {
			if !bytes.Equal(x.Keys[i], y.Keys[i]) || !bytes.Equal(x.After[i], y.After[i]) || (x.After[i] == nil) != (y.After[i] == nil) {
				return false
			}
		}
	}
	return true
}

// maxWalk bounds the keys a learning run lists of one map.
const maxWalk = 10_000

// maxLearnSteps bounds a learning run's instructions: a run longer than
// this costs more to emulate (twice) than copying the map in the kernel.
const maxLearnSteps = 1 << 20

// getcpu is the first CPU the calling thread may run on.
func getcpu() (int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0, err
	}
	for i := range 1024 {
		if set.IsSet(i) {
			return i, nil
		}
	}
	return 0, errors.New("no CPU")
}
