// SPDX-License-Identifier: Apache-2.0

// Package child runs the real servers bpfsh's live paths drive (memcached
// for the cache, redis-server for kv, anything started in a veth pair's
// namespace): started tied to bpfsh's life, their output kept for error
// messages, stopped politely first.
package child

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopWait is how long Stop waits after SIGTERM before SIGKILL.
const StopWait = 5 * time.Second

// Start starts cmd from an OS thread that stays locked while the process
// runs, so that PR_SET_PDEATHSIG (SIGKILL, set here), which fires when
// the thread that forked dies, kills it only when bpfsh dies. enter, when
// not nil, runs first on that thread (to enter a namespace); the thread
// is then never unlocked, so that it dies with its goroutine rather than
// go back to the pool in the wrong namespace. done, when not nil, gets
// cmd.Wait's result. The error is enter's or cmd.Start's, unwrapped.
func Start(cmd *exec.Cmd, enter func() error, done func(error)) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if enter == nil {
			defer runtime.UnlockOSThread()
		} else if err := enter(); err != nil {
			started <- err
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		if done != nil {
			done(err)
		}
	}()
	return <-started
}

// Stop ends cmd, a process Start started whose exited channel is closed
// once it has been waited for: SIGTERM, then SIGKILL after StopWait. name
// names it in the error that says it had to be killed.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, name string) error {
	select {
	case <-exited:
		return nil
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(StopWait):
	}
	cmd.Process.Kill()
	<-exited
	return fmt.Errorf("%s did not stop on SIGTERM within %s; killed", name, StopWait)
}

// Output keeps the first Max bytes written to it (a child's stdout and
// stderr) and takes the rest silently, so that a chatty child can neither
// block on a full pipe nor fill memory.
type Output struct {
	// Max is how many bytes are kept.
	Max int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps what fits under Max and says all of p was written.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if room := o.Max - o.buf.Len(); room > 0 {
		o.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Bytes is a copy of what was kept.
func (o *Output) Bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.buf.Bytes())
}

// LastLine is the last non-empty line kept, for error messages.
func (o *Output) LastLine() string {
	lines := strings.Split(strings.TrimSpace(string(o.Bytes())), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
