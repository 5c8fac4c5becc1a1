// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"context"

	"github.com/bpfsh/bpfsh/bpf"
)

// DefaultPinRoot is where bpfsh pins what it loads unless --pin-root says otherwise.
const DefaultPinRoot = "/sys/fs/bpf/bpfsh"

// Session is the state one shell carries from command to command.
type Session struct {
	// PinRoot is the bpffs directory under which "load NAME" pins NAME/.
	PinRoot string
	// JSON asks for JSON output of every result, errors included.
	JSON bool
	// Verbose asks for full detail, e.g. the whole verifier log.
	Verbose bool
	// StateDir is where bpfsh keeps its files (history, manifests of what
	// it pinned); $XDG_STATE_HOME/bpfsh by default.
	StateDir string
	// Vars are the session's variables ($NAME).
	Vars map[string]any
	// Last is the result of the last command that succeeded.
	Last Result
	// LastErr is the error of the last command when it failed, nil when
	// it succeeded: what "expect error contains" checks. Commands marked
	// KeepLast (expect, record) leave Last and LastErr alone.
	LastErr error
	// Commands is the whole command table, shell built-ins included, for
	// help and completion.
	Commands []*Command
	// Ctx, when set by the shell, is cancelled when the user interrupts
	// the command running now (Ctrl-C). It must stay live until the
	// command's result has been rendered: a Stream produces its rows then.
	Ctx context.Context
	// OneShot is set when the shell runs one command from its arguments
	// and exits (bpfsh proxy start ...): a command that would otherwise
	// keep running in the background of the session (proxy start) runs in
	// the foreground until interrupted.
	OneShot bool
	// RunLines, set by the shell, runs lines of a bpfsh script in this
	// session (its pin root, state directory, variables; in the process's
	// working directory), as a script runs: what lab start and lab check
	// run, since commands call down and never into the shell. It stops at
	// the first failure, a failed expectation included, and returns what
	// the commands printed (as text) and that failure as a *LineError,
	// printing neither.
	RunLines func(lines Lines) (output string, err error)

	// Mode, when set, is a command mode that takes the lines typed
	// before the command table does (a debug session): its commands are
	// looked up first, and its prompt replaces the shell's.
	Mode *Mode

	atExit    []func() error
	atExitSet map[string]bool

	// held keeps the pinned programs run runs, and their maps, open from
	// one run to the next (see bpf.Held); the shell releases it.
	held *bpf.Held
}

// Held is what the session keeps open between consecutive runs.
func (s *Session) Held() *bpf.Held {
	if s.held == nil {
		s.held = &bpf.Held{}
	}
	return s.held
}

// ReleaseHeld closes what the session keeps open between runs: the shell
// calls it before any command but a run (and the few that touch no
// kernel object), at the end of a script and before it waits for input,
// so that unload, or a user's rm of a pin, frees what they free.
func (s *Session) ReleaseHeld() {
	s.held.Release()
}

// AtExit registers f, under key, to run once when the shell ends: for
// resources a command keeps for the rest of the session (the trace
// instance). A key registered already is not registered again.
func (s *Session) AtExit(key string, f func() error) {
	if s.atExitSet[key] {
		return
	}
	if s.atExitSet == nil {
		s.atExitSet = map[string]bool{}
	}
	s.atExitSet[key] = true
	s.atExit = append(s.atExit, f)
}

// Close runs what AtExit registered, last first, and returns the first error.
func (s *Session) Close() error {
	s.ReleaseHeld()
	var first error
	for i := len(s.atExit) - 1; i >= 0; i-- {
		if err := s.atExit[i](); err != nil && first == nil {
			first = err
		}
	}
	s.atExit, s.atExitSet = nil, nil
	return first
}

// Context is the running command's context: cancelled on Ctrl-C when the
// shell provides one, never otherwise. Long-running commands (trace)
// stop when it is done.
func (s *Session) Context() context.Context {
	if s.Ctx == nil {
		return context.Background()
	}
	return s.Ctx
}

// Lines are lines of a bpfsh script for Session.RunLines: Text's first
// line is line First of the file Name, which messages name. It has the
// fields of tutorials.Script, so a lesson's script converts to it.
type Lines struct {
	Name  string
	First int
	Text  string
}

// LineError is the first failure of lines run by Session.RunLines: where
// it happened (file:line) and the error, a failed expectation or a
// failing command.
type LineError struct {
	At  string
	Err error
}

func (e *LineError) Error() string { return e.At + ": " + e.Err.Error() }

// Unwrap is the failure itself.
func (e *LineError) Unwrap() error { return e.Err }

// Mode is a set of commands that, while it lasts, comes before the
// command table (debug's step, next, print, ...), with a prompt of its
// own. Words it does not know go to the command table as usual.
type Mode struct {
	Prompt string
	Table  []*Command
}
