// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// LineReader reads the lines a person types.
type LineReader interface {
	// ReadLine returns the next line; io.EOF when the user leaves (Ctrl-D).
	ReadLine() (string, error)
	// Close restores the terminal.
	Close() error
}

// Interactive runs the REPL on the terminal in until the user leaves, and
// returns the exit status: 0 after exit or Ctrl-D, 128+N after signal N.
// The terminal is put back as it was found on every way out, a panic
// included.
func (sh *Shell) Interactive(in *os.File) (status int) {
	lr, err := newPromptReader(sh, in)
	if err != nil {
		sh.Report("", err)
		return ExitFailed
	}
	defer lr.Close()
	defer func() {
		if p := recover(); p != nil {
			lr.Close()
			fmt.Fprintf(sh.Err, "error: internal error: %v; the terminal was restored\n", p)
			status = ExitFailed
		}
	}()
	for {
		// Nothing stays held open while the user thinks (Session.Held).
		sh.Session.ReleaseHeld()
		line, err := lr.ReadLine()
		if errors.Is(err, io.EOF) {
			return ExitOK
		}
		var sig *errLeaveSignal
		if errors.As(err, &sig) {
			return sig.status()
		}
		if err != nil {
			sh.Report("", err)
			return ExitFailed
		}
		if err := sh.ExecLine(line); err != nil {
			if errors.Is(err, errExit) {
				return ExitOK
			}
			sh.Report("", err)
		}
	}
}
