// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	prompt "github.com/elk-language/go-prompt"
	istrings "github.com/elk-language/go-prompt/strings"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/bpfsh/bpfsh/commands"
)

// promptReader reads lines with go-prompt (elk-language/go-prompt v1.3.1):
// line editing, history, completion and argument hints.
//
// go-prompt is used only through Prompt.Input, one line at a time. Its Run
// loop installs handlers that os.Exit on SIGINT and SIGTERM; Input installs
// none, so the signals are ours (see watchSignals). Its default reader
// opens /dev/tty and panics when there is no controlling terminal; ours
// (ttyInput) reads the stdin terminal it is given. Whatever happens inside
// go-prompt, the terminal settings found at the start are put back: after
// each line, in Close, and when go-prompt panics.
type promptReader struct {
	sh    *Shell
	fd    int         // the terminal's file descriptor (stdin)
	saved *term.State // its settings as we found them
	in    *ttyInput
	p     *prompt.Prompt
	cycle tabCycle
	hist  *History

	busy       atomic.Bool  // a command is running, not the prompt
	interrupts atomic.Int32 // Ctrl-C while the command runs
	sigs       chan os.Signal
	done       chan struct{}
	closeOnce  sync.Once
	broken     error // go-prompt panicked: no more lines
}

// errLeaveSignal is returned by ReadLine when a signal asks the shell to
// end (SIGTERM, SIGHUP).
type errLeaveSignal struct{ sig syscall.Signal }

func (e *errLeaveSignal) Error() string { return "terminated by " + e.sig.String() }

// status is the exit status a shell killed by the signal would have.
func (e *errLeaveSignal) status() int { return 128 + int(e.sig) }

// newPromptReader sets up go-prompt on the terminal in. It falls back to
// plain lines when no terminal can show the prompt (stdout and stderr both
// redirected).
func newPromptReader(sh *Shell, in *os.File) (LineReader, error) {
	fd := int(in.Fd())
	// go-prompt draws on stdout, or on stderr when stdout is redirected
	// (bpfsh > out.txt); with neither a terminal there is nowhere to draw.
	var screen prompt.Writer
	switch {
	case isTerminalFD(sh.Out, unix.Stdout):
		screen = prompt.NewStdoutWriter()
	case isTerminalFD(sh.Err, unix.Stderr):
		screen = prompt.NewStderrWriter()
	default:
		return &plainReader{in: in}, nil
	}
	saved, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	cooked, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	r := &promptReader{
		sh:    sh,
		fd:    fd,
		saved: saved,
		in:    newTTYInput(fd, *cooked),
		sigs:  make(chan os.Signal, 4),
		done:  make(chan struct{}),
	}
	hist, err := OpenHistory(HistoryPath(sh.Session))
	if err != nil {
		// Line editing without history beats no shell at all.
		fmt.Fprintf(sh.Err, "warning: %v; this session's lines will not be kept\n", err)
	} else {
		r.hist = hist
	}

	panicAt := os.Getenv("BPFSH_TEST_PANIC_AT")
	opts := []prompt.Option{
		prompt.WithReader(r.in),
		prompt.WithWriter(quietWriter{screen}),
		prompt.WithPrefixCallback(func() string { return promptText(sh.Session) }),
		prompt.WithCompleter(func(d prompt.Document) ([]prompt.Suggest, istrings.RuneNumber, istrings.RuneNumber) {
			if panicAt != "" && d.Text == panicAt {
				// A test hook: a panic inside go-prompt's loop, with the
				// terminal in raw mode, to show that it is put back.
				panic("BPFSH_TEST_PANIC_AT: " + panicAt)
			}
			return r.cycle.suggestions(sh.Session, d)
		}),
		prompt.WithCompletionWordSeparator(wordSeparators),
		prompt.WithMaxSuggestion(8),
		prompt.WithHistorySize(HistoryMax),
		// Leave Input as soon as a signal asked the shell to end.
		prompt.WithExitChecker(func(string, bool) bool { return r.in.leaving() != 0 }),
	}
	if r.hist != nil {
		// A copy: go-prompt appends to the slice it is given.
		opts = append(opts, prompt.WithHistory(slices.Clone(r.hist.Lines())))
	}
	r.p = prompt.New(func(string) {}, opts...)

	signal.Notify(r.sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go r.watchSignals()
	warmKernelCache()
	return r, nil
}

// promptText is "bpfsh> ", naming the pin root when it is not the default.
func promptText(s *commands.Session) string {
	if s.Mode != nil && s.Mode.Prompt != "" {
		return s.Mode.Prompt
	}
	if s.PinRoot == "" || s.PinRoot == commands.DefaultPinRoot {
		return "bpfsh> "
	}
	return "bpfsh(" + filepath.Base(s.PinRoot) + ")> "
}

// tabCycle keeps the list Tab cycles through. go-prompt's Input asks the
// completer again after every key, Tab included, with the line as the
// selected candidate made it: a fresh list would hold only that candidate,
// so the next Tab would find nothing to move to. While Tab (or Shift-Tab,
// Up, Down) is choosing among the last list, and the word under the
// cursor is one of its candidates, the same list and span are given back.
type tabCycle struct {
	before, after string // the line around the cursor when the list was made
	list          []prompt.Suggest
	start, end    istrings.RuneNumber
}

func (tc *tabCycle) suggestions(s *commands.Session, d prompt.Document) ([]prompt.Suggest, istrings.RuneNumber, istrings.RuneNumber) {
	switch d.LastKeyStroke() {
	case prompt.Tab, prompt.BackTab, prompt.Up, prompt.Down:
		if tc.list != nil && d.TextAfterCursor() == tc.after {
			head := string([]rune(tc.before)[:tc.start])
			for _, sg := range tc.list {
				if d.TextBeforeCursor() == head+sg.Text || d.TextBeforeCursor() == tc.before {
					return tc.list, tc.start, tc.end
				}
			}
		}
	}
	list, start, end := editorSuggestions(s, d)
	*tc = tabCycle{before: d.TextBeforeCursor(), after: d.TextAfterCursor(), list: list, start: start, end: end}
	return list, start, end
}

// editorSuggestions adapts Complete to go-prompt, which counts in runes.
// An empty line gets none: go-prompt would otherwise open the list of
// every command under each fresh prompt.
func editorSuggestions(s *commands.Session, d prompt.Document) ([]prompt.Suggest, istrings.RuneNumber, istrings.RuneNumber) {
	before := d.TextBeforeCursor()
	end := istrings.RuneNumber(len([]rune(before)))
	if d.Text == "" {
		return nil, end, end
	}
	sugs := Complete(s, d.Text, len(before))
	if len(sugs) == 0 {
		return nil, end, end
	}
	// The list shows a screenful; more would only slow each keystroke.
	const show = 1000
	out := make([]prompt.Suggest, 0, min(len(sugs), show))
	for _, sg := range sugs[:min(len(sugs), show)] {
		out = append(out, prompt.Suggest{Text: sg.Text, Description: sg.Desc})
	}
	start := istrings.RuneNumber(len([]rune(before[:min(sugs[0].Start, len(before))])))
	return out, start, end
}

// ReadLine shows the prompt and returns the line typed; io.EOF on Ctrl-D
// at an empty line. Ctrl-C drops the line being typed and prompts again.
func (r *promptReader) ReadLine() (line string, err error) {
	if r.broken != nil {
		return "", r.broken
	}
	r.busy.Store(false)
	defer r.busy.Store(true)
	defer func() {
		if p := recover(); p != nil {
			r.restore()
			r.broken = fmt.Errorf("line editor failed (%v); the terminal was restored", p)
			line, err = "", r.broken
		}
	}()
	r.interrupts.Store(0)
	line = r.p.Input()
	if sig := r.in.leaving(); sig != 0 {
		return "", &errLeaveSignal{sig: sig}
	}
	// Enter gives a fresh buffer; Ctrl-D leaves its own, so an empty
	// line and the end of input can be told apart.
	if line == "" && r.p.Buffer().Document().LastKeyStroke() == prompt.ControlD {
		return "", io.EOF
	}
	if r.hist != nil {
		if err := r.hist.Add(line); err != nil {
			fmt.Fprintf(r.sh.Err, "warning: %v\n", err)
		}
	}
	return line, nil
}

// Close puts the terminal back as it was found and stops watching signals.
func (r *promptReader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		signal.Stop(r.sigs)
		close(r.done)
		r.in.kill()
		err = r.restore()
		if r.hist != nil {
			r.hist.Close()
		}
	})
	return err
}

// restore puts the terminal settings found at the start back.
func (r *promptReader) restore() error {
	return term.Restore(r.fd, r.saved)
}

// watchSignals handles what the terminal or other processes send:
//   - SIGINT at the prompt (only another process: the prompt's raw mode
//     turns Ctrl-C into a key) drops the line, like Ctrl-C;
//   - SIGINT while a command runs: the first stops it (through its
//     context), a second warns, a third leaves the shell;
//   - SIGTERM and SIGHUP end the shell: at the prompt through ReadLine,
//     during a command at once (after restoring the terminal).
func (r *promptReader) watchSignals() {
	for {
		var sig os.Signal
		select {
		case <-r.done:
			return
		case sig = <-r.sigs:
		}
		s := sig.(syscall.Signal)
		switch {
		case s == syscall.SIGINT && !r.busy.Load():
			r.in.inject([]byte{0x03})
		case s == syscall.SIGINT && r.interrupts.Add(1) == 1:
			// Commands that watch Session.Context (trace, streams) stop
			// and the prompt comes back; the others finish first.
			if !r.sh.Interrupt() {
				r.interrupts.Store(0)
			}
		case s == syscall.SIGINT && r.interrupts.Load() == 2:
			fmt.Fprintln(r.sh.Err, "\n^C: the command has not stopped yet; press Ctrl-C once more to leave bpfsh")
		case !r.busy.Load():
			r.in.leave(s)
		default:
			r.restore()
			os.Exit(128 + int(s))
		}
	}
}

// plainReader reads lines without editing, for a terminal on stdin whose
// output goes elsewhere: one line at a time, without buffering past it.
type plainReader struct{ in *os.File }

func (p *plainReader) ReadLine() (string, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := p.in.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return string(line), nil
			}
			line = append(line, b[0])
			continue
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return string(line), nil
		}
		return "", err
	}
}

func (p *plainReader) Close() error { return nil }

// quietWriter is go-prompt's VT100 writer without the window title, which
// it would otherwise clear after every line.
type quietWriter struct{ prompt.Writer }

func (quietWriter) SetTitle(string) {}
func (quietWriter) ClearTitle()     {}

// isTerminalFD reports whether w is the terminal open on file descriptor fd.
func isTerminalFD(w io.Writer, fd int) bool {
	f, ok := w.(*os.File)
	return ok && int(f.Fd()) == fd && term.IsTerminal(fd)
}
