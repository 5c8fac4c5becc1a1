// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// fakeLearner says the run touches key 7 only, leaving after there, and
// returns retval.
type fakeLearner struct {
	id     ebpf.MapID
	retval uint32
	after  uint64
}

func (f *fakeLearner) Learn(r *ObservedRun) (*LearnedRun, error) {
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	k := binary.LittleEndian.AppendUint32(nil, 7)
	return &LearnedRun{Retval: f.retval, Maps: map[ebpf.MapID]*LearnedMap{
		f.id: {Keys: [][]byte{k}, Base: [][]byte{u64(70)}, After: [][]byte{u64(f.after)}},
	}}, nil
}

// When the kernel's run does not match the learner's (another return
// value, or another value left at a key), the changes of the keys it
// named are shown with a note that others may be missing, and the
// program's later runs copy the map whole.
func TestLearnerMismatch(t *testing.T) {
	for _, c := range []struct {
		name string
		f    fakeLearner
		note string
	}{
		{"retval", fakeLearner{retval: 1, after: 71}, "the kernel returned 2, the emulator 1"},
		{"value", fakeLearner{retval: 2, after: 99}, "holds another value than the emulator left there"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := BigFilled(t)
			info, err := p.Big.Info()
			if err != nil {
				t.Fatal(err)
			}
			c.f.id, _ = info.ID()
			o := mustRun(t, Options{Program: p.XdpBig, Data: udpFrame("big"), Learner: &c.f})
			if len(o.Maps) != 1 || o.Maps[0].Key != "7" || o.Maps[0].Before != "70" || o.Maps[0].After != "71" {
				t.Errorf("changes %+v", o.Maps)
			}
			if len(o.MapNotes) != 1 || !strings.Contains(o.MapNotes[0], c.note) || !strings.Contains(o.MapNotes[0], "other keys are not seen") {
				t.Errorf("notes %q, want one saying %q", o.MapNotes, c.note)
			}
			o = mustRun(t, Options{Program: p.XdpBig, Data: udpFrame("big"), Learner: &c.f})
			if len(o.MapMethods) != 1 || !strings.Contains(o.MapMethods[0], "copied whole") || !strings.Contains(o.MapMethods[0], "an earlier run of this program differed") {
				t.Errorf("second run's methods %q", o.MapMethods)
			}
			if len(o.Maps) != 2 {
				t.Errorf("second run's changes %+v", o.Maps)
			}
		})
	}
}
