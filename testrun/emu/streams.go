// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Can a program write to its BPF streams?
//
// A run reads the program's stdout and stderr streams (Linux 6.17+) after
// it: two bpf(2) calls, almost always answered with nothing. Only two
// things write to a program's streams, and both show in its instructions:
//
//   - the program itself, through the bpf_stream_vprintk kfunc, whose
//     hidden last argument the verifier sets to the calling program (a
//     program cannot write to another's streams; a tail-called program
//     writes to its own);
//   - the kernel, on the program's behalf, when the program faults: a
//     timed may_goto loop that runs out, a deadlock or timeout in the
//     resilient spin lock kfuncs (bpf_res_spin_lock), a bad access to a
//     BPF arena.
//
// So a program without kfunc calls, may_goto instructions and arena maps
// cannot write to its streams (and addr_space_cast, the arena's cast, is
// refused by the decoder: such a program is not checked at all).

// MayWriteStreams says whether a run of p may leave lines in its BPF
// streams: true when it calls a kfunc, has a may_goto or uses an arena,
// and for programs rebuilt from the kernel's translated instructions,
// where the verifier has rewritten those.
func (p *Program) MayWriteStreams() bool {
	if p.xlated {
		return true
	}
	for _, m := range p.maps {
		if m.Spec == nil || m.Spec.Type == ebpf.Arena {
			return true
		}
	}
	for i := range p.insns {
		if op := p.insns[i].op; op == xCallKfunc || op == xMayGoto {
			return true
		}
	}
	return false
}

// StreamWrites says whether a run of the loaded program prog may write to
// its BPF streams (MayWriteStreams), from the instructions of the object
// it came from (found as ForProgram finds it). err says why it cannot
// tell; the caller must then read the streams.
func StreamWrites(prog *ebpf.Program, objs ...*Object) (bool, error) {
	info, err := prog.Info()
	if err != nil {
		return true, fmt.Errorf("read the program's info: %w", err)
	}
	p, err := findProgram(info, objs)
	if err != nil {
		return true, err
	}
	return p.MayWriteStreams(), nil
}
