// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// Maps a run cannot change are not read
//
// A run's map diff reads each map the program uses before and after the
// run (markOthers a third time when it changed). A map the program never
// writes, such as a table it only looks keys up in, cannot change by the
// run, and reading a large one costs more than the run itself. When
// Options.WriteCheck is set, it says from the program's instructions
// which maps a run may write (the emulator's data flow, emu.WrittenMaps:
// stores and atomics through pointers into the map, helpers given the map
// or a pointer into it); the others are not read, and Outcome.MapsNotRead
// says so, map by map. The answer is kept per program id (a loaded
// program's instructions never change, and ids are not reused).
//
// What the report gives up: a change another writer (a program attached
// elsewhere, a process) makes to such a map while the run goes on. That
// change is not the run's, and for the maps the run does write, other
// writers are still seen and marked (markOthers). Options.AllMaps (run
// ... allmaps) reads every map as before. Where the check cannot tell
// (an unknown program, tail calls, a type whose context may hold map
// pointers), or where other programs run as part of the run (live
// frames), every map is read.

// WriteCheck says which maps a loaded program may write, by id; an error
// says why it cannot tell (every map is then read).
type WriteCheck func(prog *ebpf.Program) (map[ebpf.MapID]bool, error)

// checkedTypes are the program types whose context holds no pointer into
// a map and whose runs call no other program, so that the instructions
// alone say which maps a run writes.
var checkedTypes = map[ebpf.ProgramType]bool{
	ebpf.XDP: true, ebpf.SchedCLS: true, ebpf.SchedACT: true, ebpf.SocketFilter: true,
	ebpf.CGroupSKB: true, ebpf.LWTIn: true, ebpf.LWTOut: true, ebpf.LWTXmit: true,
	ebpf.LWTSeg6Local: true, ebpf.FlowDissector: true, ebpf.SkLookup: true,
	ebpf.RawTracepoint: true,
}

// writesCache keeps WriteCheck's answer per program id.
var writesCache struct {
	sync.Mutex
	m map[ebpf.ProgramID]map[ebpf.MapID]bool // nil value: could not tell
}

// readOnlyMaps returns the maps among the program's that a run of it
// cannot write (nil when every map is to be read).
func readOnlyMaps(info *ebpf.ProgramInfo, opts Options) map[ebpf.MapID]bool {
	if opts.WriteCheck == nil || opts.AllMaps || opts.LiveFrames || !checkedTypes[info.Type] || opts.Program == nil {
		return nil
	}
	id, ok := info.ID()
	if !ok {
		return nil
	}
	writesCache.Lock()
	w, known := writesCache.m[id]
	writesCache.Unlock()
	if !known {
		var err error
		if w, err = opts.WriteCheck(opts.Program); err != nil {
			w = nil
		}
		writesCache.Lock()
		if writesCache.m == nil || len(writesCache.m) >= 1024 {
			writesCache.m = map[ebpf.ProgramID]map[ebpf.MapID]bool{}
		}
		writesCache.m[id] = w
		writesCache.Unlock()
	}
	if w == nil {
		return nil
	}
	ro := map[ebpf.MapID]bool{}
	for m, written := range w {
		if !written {
			ro[m] = true
		}
	}
	return ro
}

// notReadText says why map name was not read for program prog's run.
func notReadText(name, prog string) string {
	return fmt.Sprintf("%s: not read: %s never writes it (its instructions only read it), so the run cannot change it; "+
		"a change another writer makes meanwhile is not shown ('run ... allmaps' reads it too)", name, prog)
}
