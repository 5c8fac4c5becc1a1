// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"sync"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
)

// learnedFor is, per session, whether the objects bpfsh loaded were
// registered with the emulator for key learning.
var learnedFor struct {
	sync.Mutex
	m map[*Session]bool
}

// runLearner is the emulator standing in for a run to name the keys it
// touches in large hash maps (testrun/learn.go). Objects bpfsh loaded
// from files are registered with the emulator the first time a program
// is not found, once per session.
func runLearner(s *Session) *emu.Learner {
	return &emu.Learner{Unknown: func() bool { return registerOnce(s) }}
}

// registerOnce registers the objects bpfsh loaded with the emulator, the
// first time it is called for s; it reports whether it registered any.
func registerOnce(s *Session) bool {
	learnedFor.Lock()
	defer learnedFor.Unlock()
	if learnedFor.m[s] {
		return false
	}
	if learnedFor.m == nil || len(learnedFor.m) >= 64 {
		learnedFor.m = map[*Session]bool{}
	}
	learnedFor.m[s] = true
	return registerLoadedObjects(s)
}

// runWriteCheck names the maps a run of a program may write, from the
// instructions of the object it came from (emu.WrittenMaps), so that the
// others are not read for the map diff. Objects bpfsh loaded from files
// are registered as runLearner does, once per session.
func runWriteCheck(s *Session) testrun.WriteCheck {
	return func(prog *ebpf.Program) (map[ebpf.MapID]bool, error) {
		// The objects bpfsh loaded first: looking among the built-ins
		// first would parse them all for a program of a file.
		registerOnce(s)
		return emu.WrittenMaps(prog)
	}
}

// runStreamCheck says whether a program may write to its BPF streams, from
// the instructions of the object it came from (emu.StreamWrites), so that
// run reads them only then.
func runStreamCheck(s *Session) testrun.StreamCheck {
	return func(prog *ebpf.Program) (bool, error) {
		registerOnce(s)
		return emu.StreamWrites(prog)
	}
}
