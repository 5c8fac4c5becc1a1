// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// ErrNoLiveFrames is the kernel refusing XDP live frames to a caller with
// every capability. Kernels since 5.18 have them; some builds turn them
// off, and ordinary test runs keep working there.
var ErrNoLiveFrames = errors.New("this kernel refuses XDP live frames (BPF_F_TEST_XDP_LIVE_FRAMES, in Linux since 5.18) with EPERM even to root: its build or a security policy turns them off")

var liveFrames struct {
	once sync.Once
	err  error
}

// HaveLiveFrames probes once whether this kernel runs XDP programs in
// live-frame mode: it sends one frame through a program that drops it, in
// a private network namespace. It returns nil, ErrNoLiveFrames (wrapped),
// or what kept the probe from telling.
func HaveLiveFrames() error {
	liveFrames.once.Do(func() { liveFrames.err = probeLiveFrames() })
	return liveFrames.err
}

func probeLiveFrames() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 1), // XDP_DROP
			asm.Return(),
		},
	})
	if err != nil {
		return fmt.Errorf("probe XDP live frames: %w", err)
	}
	defer prog.Close()
	_, err = Run(Options{Program: prog, Data: make([]byte, 64), LiveFrames: true, NoTrace: true})
	return err
}
