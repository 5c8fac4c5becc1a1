package shell

import (
	"errors"
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

// Interactive runs the REPL on the terminal in until the user leaves.
func (sh *Shell) Interactive(in *os.File) int {
	lr, err := newPromptReader(sh, in)
	if err != nil {
		sh.Report("", err)
		return ExitFailed
	}
	defer lr.Close()
	for {
		line, err := lr.ReadLine()
		if errors.Is(err, io.EOF) {
			return ExitOK
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
