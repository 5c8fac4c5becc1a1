// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"sync"

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
	return &emu.Learner{Unknown: func() bool {
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
	}}
}
