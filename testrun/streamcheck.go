// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"sync"

	"github.com/cilium/ebpf"
)

// Streams a program cannot write are not read
//
// After a run, Run reads what the program wrote to its BPF streams: two
// bpf(2) calls that almost always find nothing. Only the program's own
// instructions write there (a kfunc, or the kernel reporting a fault of a
// may_goto loop, a resilient spin lock or an arena access; emu.StreamWrites
// says which), so when Options.StreamCheck says a program cannot, its
// streams are left alone. The answer is kept per program id: a loaded
// program's instructions never change, and ids are not reused. Anything
// the check cannot tell (a program of unknown origin) reads the streams.

// StreamCheck says whether a loaded program may write to its BPF streams;
// an error says why it cannot tell (the streams are then read).
type StreamCheck func(prog *ebpf.Program) (bool, error)

// streamsCache keeps StreamCheck's answer per program id.
var streamsCache struct {
	sync.Mutex
	m map[ebpf.ProgramID]bool
}

// mayWriteStreams says whether the run's program may have written to its
// streams: true unless opts.StreamCheck says it cannot.
func mayWriteStreams(info *ebpf.ProgramInfo, opts Options) bool {
	if opts.StreamCheck == nil || opts.Program == nil {
		return true
	}
	id, ok := info.ID()
	if !ok {
		return true
	}
	streamsCache.Lock()
	may, known := streamsCache.m[id]
	streamsCache.Unlock()
	if known {
		return may
	}
	may, err := opts.StreamCheck(opts.Program)
	if err != nil {
		may = true
	}
	streamsCache.Lock()
	if streamsCache.m == nil || len(streamsCache.m) >= 1024 {
		streamsCache.m = map[ebpf.ProgramID]bool{}
	}
	streamsCache.m[id] = may
	streamsCache.Unlock()
	return may
}
