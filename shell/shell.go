// SPDX-License-Identifier: Apache-2.0

// Package shell is bpfsh's front: it reads lines (interactively or from a
// script), splits them into words, finds the command, runs it, and renders
// the result it returns as a table, text or JSON.
package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/commands"
)

// Exit statuses of scripts and one-shot commands.
const (
	ExitOK     = 0 // every command succeeded
	ExitFailed = 1 // a command failed
	ExitUsage  = 2 // a command was typed wrong
	// ExitInterrupted is a script stopped by Ctrl-C, as a shell reports SIGINT.
	ExitInterrupted = 130
)

// Shell runs commands against one session and renders their results.
type Shell struct {
	Session *commands.Session
	Out     io.Writer
	Err     io.Writer
	// KeepGoing makes scripts run on past a failing command.
	KeepGoing bool
	// Pretty indents JSON (-p, --pretty, as bpftool's -p); it implies JSON.
	Pretty bool
	// RawNumbers shows every integer as its plain host-order number, not
	// addresses and network-order ports (--raw-numbers; see bpf's
	// SetRawNumbers).
	RawNumbers bool
	// TTY is true when Out is a terminal: tables get borders and colour.
	TTY bool

	table  []*commands.Command
	depth  int // nesting of source
	status int // worst status since the script began

	// rec, when set, writes every command and expect lines pinning its
	// result to a file (see record.go).
	rec *recorder
	// onEvent, when set, sees every expect line of a script and every
	// failure nothing expected: how a suite counts (see suite.go).
	onEvent func(scriptEvent)
	// scriptDirs makes source run a script in its own directory, as
	// suites run (see suite.go); otherwise names resolve from the
	// working directory, as in bpftool batch files.
	scriptDirs bool
	// expectGoesOn makes a script go on past a failed expectation, which
	// it counts: how suites run. Elsewhere (-c, -f, source, a lab's
	// check block) a failed expectation stops the script like any
	// failing command, unless KeepGoing.
	expectGoesOn bool

	// base is the context every command's context derives from; it is
	// cancelled when a signal ends a script. interruptMu guards
	// interruptCmd, the cancel function of the command running now.
	base         context.Context
	interruptMu  sync.Mutex
	interruptCmd context.CancelFunc
}

// New returns a shell over s writing to out and errOut.
func New(s *commands.Session, out, errOut io.Writer) *Shell {
	sh := &Shell{Session: s, Out: out, Err: errOut, base: context.Background()}
	sh.table = append(commands.All(), sh.builtins()...)
	s.Commands = sh.table
	s.RunLines = sh.runPiece
	if s.Vars == nil {
		s.Vars = map[string]any{}
	}
	return sh
}

// errExit is returned by the exit built-in to end a script or the REPL.
var errExit = errors.New("exit")

func (sh *Shell) builtins() []*commands.Command {
	return []*commands.Command{
		{
			Name:    "source",
			Usage:   "FILE",
			Short:   "run the commands in FILE as if typed here",
			Long:    "source runs a script of bpfsh commands (one per line, '#' comments, '\\' continuations, bpftool batch files included) in the current session, stopping at the first failing command unless the shell was started with --keep-going.",
			Example: "source setup.bpfsh",
			Args:    []commands.ArgKind{commands.ArgFile},
			Run: func(s *commands.Session, args []string) (commands.Result, error) {
				if len(args) != 1 {
					return nil, commands.Usagef("source takes one FILE")
				}
				return nil, sh.sourceFile(args[0])
			},
		},
		sh.recordBuiltin(),
		sh.testBuiltin(),
		{
			Name:    "exit",
			Short:   "leave the shell (Ctrl-D does the same)",
			Long:    "exit ends the interactive shell or the script being run.",
			Example: "exit",
			Run: func(*commands.Session, []string) (commands.Result, error) {
				return nil, errExit
			},
		},
	}
}

// ExecLine runs one line (several commands if separated by ';') and
// renders each result or error. It returns the first error, after which
// the rest of the line is not run.
func (sh *Shell) ExecLine(line string) error {
	cmds, err := Split(line)
	if err != nil {
		return commands.Usagef("%v", err)
	}
	for _, words := range cmds {
		if err := sh.Exec(words); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs one command given as words and renders its result. It keeps
// the result in Session.Last and the error in Session.LastErr (commands
// marked KeepLast, such as expect, leave both alone), and hands both to
// the recorder when record is on.
func (sh *Shell) Exec(words []string) error {
	words, flags := globalFlags(words)
	if len(words) == 0 {
		return nil
	}
	json := flags.json
	savedPretty := sh.Pretty
	sh.Pretty = sh.Pretty || flags.pretty
	bpf.SetRawNumbers(sh.RawNumbers || flags.raw)
	defer func() {
		sh.Pretty = savedPretty
		bpf.SetRawNumbers(sh.RawNumbers)
	}()
	path, args, err := sh.lookup(words)
	keep := keepsLast(path)
	if err != nil {
		if !keep {
			sh.Session.LastErr = err
		}
		return err
	}
	saved := sh.Session.JSON
	sh.Session.JSON = saved || json
	defer func() { sh.Session.JSON = saved }()
	// The context lives until the result is rendered: a Stream makes its
	// rows while it is being written.
	ctx, cancel := context.WithCancel(sh.base)
	sh.setInterrupt(cancel)
	sh.Session.Ctx = ctx
	defer func() {
		sh.setInterrupt(nil)
		cancel()
		sh.Session.Ctx = nil
	}()
	if !keepsHeld(path) {
		sh.Session.ReleaseHeld()
	}
	res, err := runCommand(path[len(path)-1], sh.Session, args)
	if sh.rec != nil && sh.depth == sh.rec.depth {
		sh.rec.command(sh, path, args, words, res, err)
	}
	if err != nil {
		if commands.IsUsage(err) {
			err = &usageInContext{err: err, usage: commands.UsageLine(path), command: commands.FullName(path)}
		}
		if !keep {
			sh.Session.LastErr = err
		}
		var found *commands.FailedResult
		if errors.As(err, &found) && found.Result != nil {
			if rerr := sh.render(found.Result); rerr != nil {
				return rerr
			}
		}
		return err
	}
	if !keep {
		sh.Session.LastErr = nil
		if res != nil {
			sh.Session.Last = res
		}
	}
	err = sh.render(res)
	if errors.Is(err, context.Canceled) {
		return nil // the user stopped a stream with Ctrl-C: not a failure
	}
	return err
}

// lookup finds the command words name: in the session's mode first (a
// debug session's step, print, ...), then in the command table.
func (sh *Shell) lookup(words []string) ([]*commands.Command, []string, error) {
	if m := sh.Session.Mode; m != nil {
		path, args, err := commands.Lookup(m.Table, words)
		if err == nil {
			return path, args, nil
		}
		if p2, a2, err2 := commands.Lookup(sh.table, words); err2 == nil {
			return p2, a2, nil
		}
		return path, args, err
	}
	return commands.Lookup(sh.table, words)
}

// keepsLast reports whether a command on path is marked KeepLast.
func keepsLast(path []*commands.Command) bool {
	for _, c := range path {
		if c.KeepLast {
			return true
		}
	}
	return false
}

// heldKeepers are the commands before which what a run holds open stays
// open (Session.Held): run itself, and those that touch no kernel object,
// so that a suite of run and expect lines keeps it. Any other command may
// unload, replace or list objects, and finds nothing held by bpfsh.
var heldKeepers = map[string]bool{"run": true, "expect": true, "let": true, "packet": true, "help": true}

// keepsHeld reports whether the command on path leaves held objects open.
func keepsHeld(path []*commands.Command) bool {
	return len(path) > 0 && heldKeepers[path[0].Name]
}

func (sh *Shell) setInterrupt(cancel context.CancelFunc) {
	sh.interruptMu.Lock()
	sh.interruptCmd = cancel
	sh.interruptMu.Unlock()
}

// Interrupt asks the command running now to stop (Ctrl-C), and reports
// whether one was running. Commands that watch Session.Context stop;
// the others finish first.
func (sh *Shell) Interrupt() bool {
	sh.interruptMu.Lock()
	defer sh.interruptMu.Unlock()
	if sh.interruptCmd == nil {
		return false
	}
	sh.interruptCmd()
	return true
}

// runCommand runs c, turning a panic into an error so that one bad command
// never takes the shell (and the user's terminal) down with it.
func runCommand(c *commands.Command, s *commands.Session, args []string) (res commands.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("internal error in %s: %v (please report this)", c.Name, p)
		}
	}()
	return c.Run(s, args)
}

// usageInContext adds the command's usage line to a usage error.
type usageInContext struct {
	err     error
	usage   string
	command string
}

func (u *usageInContext) Error() string {
	// A long usage line would bury the message; help has it.
	if len(u.usage) > 60 {
		return u.err.Error() + " ('help " + u.command + "' shows the usage)"
	}
	return u.err.Error() + " (usage: " + u.usage + ")"
}
func (u *usageInContext) Unwrap() error { return u.err }

// lineFlags are the flags a command line may carry anywhere.
type lineFlags struct {
	json, pretty, raw bool
}

// globalFlags removes -j/--json, -p/--pretty (which bpftool accepts
// anywhere on a command line; -p is indented JSON) and --raw-numbers, and
// reports which were given.
func globalFlags(words []string) ([]string, lineFlags) {
	var f lineFlags
	out := words[:0:0]
	for _, w := range words {
		switch w {
		case "-j", "--json":
			f.json = true
		case "-p", "--pretty":
			f.json, f.pretty = true, true
		case "--raw-numbers":
			f.raw = true
		default:
			out = append(out, w)
		}
	}
	return out, f
}

// Report shows err as one line on the error stream, or as {"error": ...}
// on the output stream in JSON mode (as bpftool does), with where, if any,
// in front ("file:3: "). An error with detail (commands.Detailer, e.g. a
// verifier log) has it printed below that line, or as "detail" in JSON.
func (sh *Shell) Report(where string, err error) {
	detail := commands.DetailOf(err)
	msg := clipMessage(err.Error())
	var found *commands.FailedResult
	if sh.Session.JSON && errors.As(err, &found) && found.Result != nil {
		return // its result, already written, says it failed
	}
	if sh.Session.JSON {
		obj := map[string]string{"error": where + msg}
		if detail != "" {
			obj["detail"] = detail
		}
		resultWriter{out: sh.Out, pretty: sh.Pretty}.renderJSON(obj)
		return
	}
	fmt.Fprintf(sh.Err, "error: %s%s\n", where, msg)
	if detail != "" {
		fmt.Fprintln(sh.Err, strings.TrimRight(detail, "\n"))
	}
}

// StatusOf maps an error to an exit status.
func StatusOf(err error) int {
	switch {
	case err == nil || errors.Is(err, errExit):
		return ExitOK
	case commands.IsUsage(err):
		return ExitUsage
	}
	var r *reported
	if errors.As(err, &r) {
		return r.status
	}
	return ExitFailed
}

// RunScript runs every line of r (named name in messages), stopping at the
// first failure unless KeepGoing. It returns the exit status: 0, 1 or 2.
func (sh *Shell) RunScript(r io.Reader, name string) int {
	sh.status = ExitOK
	sh.runLines(r, name)
	return sh.status
}

// runLines runs a script command by command. A failing command stops it
// (unless KeepGoing), a failed or malformed expect line included, with
// two exceptions that make suites work:
//
//   - in a suite (expectGoesOn) a failed expectation is reported, raises
//     the exit status and is counted once, and the script goes on;
//   - a failing command whose next command is "expect error ..." is not
//     reported and does not stop the script: that expect line checks the
//     failure (Session.LastErr) instead.
//
// The commands of a line with several (separated by ';') are named
// file:line.N in messages, N counting from 1.
//
// For the second, a failure is held until the next command has been read:
// a one-command lookahead that works on a stream (piped stdin) and across
// ';' as well as lines, and needs nothing of the REPL, where the error is
// shown as it happens and Session.LastErr keeps it for a later expect.
func (sh *Shell) runLines(r io.Reader, name string) error {
	return sh.runLinesFrom(r, name, 1)
}

// runLinesFrom is runLines over a piece of a file whose first line is
// line first (a block of a lab's check.bpfsh), so that messages name the
// file's lines.
func (sh *Shell) runLinesFrom(r io.Reader, name string, first int) error {
	// What the script's runs held open goes with its end.
	defer sh.Session.ReleaseHeld()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var pending strings.Builder
	lineNo, startLine := first-1, 0
	var held *heldFailure
	for sc.Scan() {
		if sh.base.Err() != nil {
			sh.status = ExitInterrupted
			return sh.base.Err()
		}
		lineNo++
		text, more := Continues(sc.Text())
		if pending.Len() == 0 {
			startLine = lineNo
		}
		pending.WriteString(text)
		if more {
			pending.WriteString(" ")
			continue
		}
		line := pending.String()
		pending.Reset()
		cmds, err := Split(line)
		if err != nil {
			// A line that cannot be split fails like a command, so that
			// "expect error" may follow it too.
			cmds = [][]string{nil}
		}
		for k, words := range cmds {
			at := scriptLine{file: name, line: startLine}
			if len(cmds) > 1 {
				at.piece = k + 1
			}
			if held != nil {
				if sh.isExpectError(words) {
					held = nil // the failure was expected; this line checks it
				} else {
					stop := sh.failed(held)
					held = nil
					if stop != nil {
						return stop
					}
				}
			}
			isExpect := sh.isExpect(words)
			if words == nil {
				err = commands.Usagef("%v", err)
				sh.Session.LastErr = err
			} else {
				err = sh.Exec(words)
			}
			if sh.base.Err() != nil {
				sh.status = ExitInterrupted
				return sh.base.Err()
			}
			if isExpect {
				sh.event(scriptEvent{at: at, words: words, err: err, expect: true})
			}
			var rep *reported
			switch {
			case err == nil:
			case errors.Is(err, errExit):
				return err
			case isExpect:
				// A failed expectation, or an expect line typed wrong
				// (exit status 2): one failure of that line, reported
				// and counted (as the event above) once.
				sh.Report(at.String()+": ", err)
				sh.status = max(sh.status, StatusOf(err))
				if !sh.expectGoesOn && !sh.KeepGoing {
					return err
				}
			case errors.As(err, &rep) && rep.goOn:
				// A sourced script that ran to its end: its failed
				// expectations were reported and counted there.
				sh.status = max(sh.status, rep.status)
			default:
				held = &heldFailure{at: at, words: words, err: err}
			}
		}
	}
	if held != nil {
		if stop := sh.failed(held); stop != nil {
			return stop
		}
	}
	if err := sc.Err(); err != nil {
		sh.Report(name+": ", err)
		sh.status = ExitFailed
		sh.event(scriptEvent{at: scriptLine{file: name, line: lineNo}, err: err})
		return err
	}
	if pending.Len() > 0 {
		err := commands.Usagef("the last line ends in '\\' with nothing after it")
		sh.Report(fmt.Sprintf("%s:%d: ", name, startLine), err)
		sh.status = ExitUsage
		sh.event(scriptEvent{at: scriptLine{file: name, line: startLine}, err: err})
		return err
	}
	return nil
}

// event hands ev to onEvent, if set.
func (sh *Shell) event(ev scriptEvent) {
	if sh.onEvent != nil {
		sh.onEvent(ev)
	}
}

// scriptLine is where a command of a script is: file:line, or
// file:line.N for the Nth command of a line with several.
type scriptLine struct {
	file  string
	line  int
	piece int
}

func (l scriptLine) String() string {
	if l.piece > 0 {
		return fmt.Sprintf("%s:%d.%d", l.file, l.line, l.piece)
	}
	return fmt.Sprintf("%s:%d", l.file, l.line)
}

// heldFailure is a failing command of a script waiting to see whether an
// "expect error" follows it.
type heldFailure struct {
	at    scriptLine
	words []string
	err   error
}

// failed reports a failure nothing expected and raises the status. It
// returns the error that stops the script, or nil with KeepGoing.
func (sh *Shell) failed(h *heldFailure) error {
	var rep *reported
	if !errors.As(h.err, &rep) {
		// A sourced script's failure was reported where it happened.
		sh.Report(h.at.String()+": ", h.err)
		sh.event(scriptEvent{at: h.at, words: h.words, err: h.err})
	}
	sh.status = max(sh.status, StatusOf(h.err))
	if sh.KeepGoing {
		return nil
	}
	return h.err
}

// scriptEvent is what a suite counts: an expect line that ran (passed
// when err is nil), or a failing command nothing expected.
type scriptEvent struct {
	at     scriptLine
	words  []string
	err    error
	expect bool
}

// isExpect reports whether words are an expect command.
func (sh *Shell) isExpect(words []string) bool {
	path := sh.resolve(words)
	return len(path) > 0 && path[0].Name == "expect"
}

// isExpectError reports whether words are "expect error ...".
func (sh *Shell) isExpectError(words []string) bool {
	path := sh.resolve(words)
	return len(path) > 1 && path[0].Name == "expect" && path[1].Name == "error"
}

// resolve is the command path words name; nil when they name none.
func (sh *Shell) resolve(words []string) []*commands.Command {
	words, _ = globalFlags(words)
	path, _, err := commands.Lookup(sh.table, words)
	if err != nil {
		return nil
	}
	return path
}

// sourceFile runs the script at path within the current session.
func (sh *Shell) sourceFile(path string) error {
	if sh.depth >= 16 {
		return fmt.Errorf("source %s: nested more than 16 deep; does the script source itself?", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("source %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	if sh.scriptDirs {
		back, err := enterDir(filepath.Dir(path))
		if err != nil {
			return fmt.Errorf("source %s: %w", path, err)
		}
		defer back()
	}
	sh.depth++
	defer func() { sh.depth-- }()
	savedStatus := sh.status
	sh.status = ExitOK
	err = sh.runLines(f, filepath.Base(path))
	st := sh.status
	sh.status = max(savedStatus, st)
	if err != nil && !errors.Is(err, errExit) {
		// Already reported with file:line; tell the caller it failed.
		return &reported{status: st}
	}
	if st != ExitOK {
		// It ran to its end: only expectations failed (or commands, with
		// --keep-going), so the caller goes on too.
		return &reported{status: st, goOn: true}
	}
	return nil
}

// reported is an error already shown to the user; only its status counts.
// goOn says the script that failed ran to its end, so its caller goes on.
type reported struct {
	status int
	goOn   bool
	msg    string // what to say where it is reported again (the REPL); a default when empty
}

func (r *reported) Error() string {
	if r.msg != "" {
		return r.msg
	}
	return fmt.Sprintf("sourced script failed (exit status %d)", r.status)
}

// unwrapPath drops the operation and path that *os.PathError repeats, for
// messages that already name the file.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
