// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bpfsh/bpfsh/commands"
)

// runPiece is Session.RunLines: it runs lines in this shell's session
// through a shell of its own that writes what the commands print to a
// buffer and stops at the first failure, a failed expectation included,
// which it returns instead of reporting it. The lab commands run a
// lesson's set-up and check blocks with it.
func (sh *Shell) runPiece(lines commands.Lines) (string, error) {
	if sh.depth >= 16 {
		return "", fmt.Errorf("%s: scripts nested more than 16 deep; does a lesson's script run the lab command?", lines.Name)
	}
	var out bytes.Buffer
	in := &Shell{
		Session:    sh.Session,
		Out:        &out,
		Err:        io.Discard,
		table:      sh.table,
		depth:      sh.depth + 1,
		RawNumbers: sh.RawNumbers,
		// The command running the piece (lab check) is what Ctrl-C stops.
		base: sh.Session.Context(),
	}
	var first *commands.LineError
	in.onEvent = func(ev scriptEvent) {
		if ev.err != nil && first == nil {
			first = &commands.LineError{At: ev.at.String(), Err: ev.err}
		}
	}
	// Each command sets and clears the session's context and JSON flag:
	// the running command (lab) gets its own back. The output is text,
	// shown inside the lab command's result.
	savedCtx, savedJSON := sh.Session.Ctx, sh.Session.JSON
	sh.Session.JSON = false
	defer func() { sh.Session.Ctx, sh.Session.JSON = savedCtx, savedJSON }()
	err := in.runLinesFrom(strings.NewReader(lines.Text), lines.Name, lines.First)
	switch {
	case first != nil:
		return out.String(), first
	case in.base.Err() != nil:
		return out.String(), in.base.Err()
	case err != nil && !errors.Is(err, errExit):
		return out.String(), &commands.LineError{At: lines.Name, Err: err}
	}
	return out.String(), nil
}
