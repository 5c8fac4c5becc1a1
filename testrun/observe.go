// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"sync"

	"github.com/cilium/ebpf"
)

// RunObserver watches the test runs Run makes, from the inside: it sees
// each run's input before the kernel runs it and the kernel's raw answer
// after. The emulator's differential tests use it to run every test run
// of the repository through the emulator as well and compare.
type RunObserver interface {
	// Before is called before the kernel runs r's program. It runs on the
	// goroutine (locked to its thread) that then makes the run, so it may
	// pin that thread to a CPU.
	Before(r *ObservedRun)
	// After is called once the kernel has run it.
	After(r *ObservedRun)
}

// ObservedRun is one test run as the kernel saw it.
type ObservedRun struct {
	Program *ebpf.Program
	Type    ebpf.ProgramType
	// DataIn and CtxIn are the input as sent (ctx_in after bpfsh filled
	// in its defaults); Flags the BPF_F_TEST_* flags.
	DataIn, CtxIn []byte
	Flags         uint32
	CPU           uint32
	// Trace says whether bpf_printk lines were captured (Lines).
	Trace bool
	// Retval, DataOut and CtxOut are the kernel's answer, raw; Err its
	// error.
	Retval  uint32
	DataOut []byte
	CtxOut  []byte
	Lines   []TraceLine
	Err     error
	// State is the observer's, from Before to After.
	State any
}

var (
	observerMu sync.Mutex
	observer   RunObserver
)

// SetRunObserver installs o (nil removes it) and returns the one before.
func SetRunObserver(o RunObserver) RunObserver {
	observerMu.Lock()
	defer observerMu.Unlock()
	old := observer
	observer = o
	return old
}

func currentObserver() RunObserver {
	observerMu.Lock()
	defer observerMu.Unlock()
	return observer
}

// observe fills in the kernel's answer.
func (o *ObservedRun) observe(r *rawRun, res rawResult, lines []TraceLine, err error) {
	o.Err, o.Lines, o.Retval = err, lines, res.retval
	if r.dataOut != nil {
		o.DataOut = append([]byte(nil), r.dataOut[:min(int(res.dataOutLen), len(r.dataOut))]...)
	}
	switch {
	case o.Type == ebpf.Syscall:
		o.CtxOut = append([]byte(nil), r.ctxIn...)
	case r.ctxOut != nil:
		o.CtxOut = append([]byte(nil), r.ctxOut[:min(int(res.ctxOutLen), len(r.ctxOut))]...)
	}
}
