// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/commands"
)

// recorder writes what record captures: each command as it was typed,
// followed by expect lines that pin its result, so that a debugging
// session becomes a suite that "bpfsh test FILE" replays.
type recorder struct {
	path string
	dir  string // the file's directory: relative paths are made relative to it
	f    *os.File
	w    *bufio.Writer
	n    int // commands written
	// depth is the script depth record was typed at: commands of scripts
	// sourced below it are not written (the source line is), those at it
	// are, also when it is itself a script's (a lab solution's) level.
	depth int
}

// notRecorded are commands that are about the session, not what it tests.
var notRecorded = []string{"record", "exit", "test", "help"}

func (sh *Shell) recordBuiltin() *commands.Command {
	return &commands.Command{
		Name:  "record",
		Usage: "FILE | stop",
		Short: "write the commands typed from now on to FILE as a suite, each followed by expect lines pinning its result",
		Long: "record FILE writes every command typed from then on to FILE, each followed by expect lines that hold for its result now: " +
			"for a run its return value, its whole output packet, the map entries it changed and its trace lines; for map lookup, " +
			"update and delete what the map holds under the key; for a failing command 'expect error contains' with the stable part of " +
			"its error (no ids or paths, which differ on replay). expect lines typed while recording are written as typed (commented " +
			"out when they failed). 'record stop' ends it; so does leaving the shell. Replay with 'bpfsh test FILE': it runs in a fresh " +
			"pin root, so the suite starts with the state record found: a load line for each object loaded under the pin root, map update " +
			"lines putting back what their hash and array maps hold (up to 100 entries each; what cannot be put back, such as per-CPU " +
			"maps and global variables, is named in a comment), and a let line for each packet kept. Relative file names are rewritten relative to FILE's " +
			"directory, where bpfsh test resolves them.",
		Example:  "record xdp.bpfsh",
		Args:     []commands.ArgKind{commands.ArgFile},
		KeepLast: true,
		Run: func(s *commands.Session, args []string) (commands.Result, error) {
			switch {
			case len(args) != 1:
				return nil, commands.Usagef("record takes FILE, or stop")
			case args[0] == "stop":
				return sh.stopRecording()
			}
			return sh.startRecording(args[0])
		},
	}
}

func (sh *Shell) startRecording(path string) (commands.Result, error) {
	if sh.rec != nil {
		return nil, fmt.Errorf("record: already recording to %s; 'record stop' first", sh.rec.path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", path, err)
	}
	f, err := os.Create(abs)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", path, unwrapPath(err))
	}
	r := &recorder{path: path, dir: filepath.Dir(abs), f: f, w: bufio.NewWriter(f), depth: sh.depth}
	fmt.Fprintf(r.w, "# bpfsh suite written by 'record'; replay with: bpfsh test %s\n", filepath.Base(abs))
	// A suite replays in a fresh pin root: what is loaded now, and what its
	// maps hold, comes first, so that the replay starts where this does.
	state := commands.CurrentState(sh.Session, r.fromSuite)
	if len(state.Lines) > 0 || len(state.Notes) > 0 {
		fmt.Fprintf(r.w, "# the state when recording started: what was loaded, its maps' entries, the packets kept with let\n")
		for _, l := range state.Lines {
			fmt.Fprintln(r.w, joinWords(l))
		}
		for _, n := range state.Notes {
			fmt.Fprintf(r.w, "# %s\n", n)
		}
	}
	if err := r.flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("record %s: %w", path, err)
	}
	sh.rec = r
	// Leaving the shell while recording keeps what was recorded.
	sh.Session.AtExit("record", func() error {
		if sh.rec == nil {
			return nil
		}
		_, err := sh.stopRecording()
		return err
	})
	text := fmt.Sprintf("recording to %s; 'record stop' ends it", path)
	switch {
	case len(state.Loads) > 0 && len(state.Lets) > 0:
		text += fmt.Sprintf("\nthe suite starts by loading what is loaded here (%s), putting back the %d entries its maps hold and keeping %s again, so that bpfsh test replays from this state", strings.Join(state.Loads, ", "), state.Entries, strings.Join(state.Lets, ", "))
	case len(state.Loads) > 0:
		text += fmt.Sprintf("\nthe suite starts by loading what is loaded here (%s) and putting back the %d entries its maps hold, so that bpfsh test replays from this state", strings.Join(state.Loads, ", "), state.Entries)
	case len(state.Lets) > 0:
		text += fmt.Sprintf("\nthe suite starts by keeping %s again, so that bpfsh test replays from this state", strings.Join(state.Lets, ", "))
	}
	for _, n := range state.Notes {
		text += "\nnote: " + n
	}
	return &commands.Message{
		Text: text,
		Data: map[string]any{"recording": path},
	}, nil
}

func (sh *Shell) stopRecording() (commands.Result, error) {
	r := sh.rec
	if r == nil {
		return nil, errors.New("record stop: not recording; 'record FILE' starts")
	}
	sh.rec = nil
	err := r.flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", r.path, err)
	}
	return &commands.Message{
		Text: fmt.Sprintf("recorded %s to %s; replay with: bpfsh test %s", commandCount(r.n), r.path, r.path),
		Data: map[string]any{"file": r.path, "commands": r.n},
	}, nil
}

func commandCount(n int) string {
	if n == 1 {
		return "1 command"
	}
	return fmt.Sprintf("%d commands", n)
}

func (r *recorder) flush() error {
	if err := r.w.Flush(); err != nil {
		return err
	}
	return nil
}

// command writes one command that ran (args are the words after its
// name, words the whole command) and what pins its result or error.
func (r *recorder) command(sh *Shell, path []*commands.Command, args, words []string, res commands.Result, err error) {
	if slices.Contains(notRecorded, path[0].Name) {
		return
	}
	line := r.line(path, args, words)
	raw := ""
	if bpf.RawNumbers() {
		// The values were read and shown as raw numbers: so must the
		// replay read them (see bpf.SetRawNumbers).
		raw = " --raw-numbers"
		line += raw
	}
	switch {
	case path[0].Name == "expect" && err != nil:
		fmt.Fprintf(r.w, "# %s\n#   (failed while recording: %s)\n", line, firstLine(err.Error()))
	case path[0].Name == "expect":
		fmt.Fprintln(r.w, line)
	case err != nil:
		fmt.Fprintln(r.w, line)
		text := stableErrorText(err.Error(), sh.Session.PinRoot)
		fmt.Fprintln(r.w, joinWords([]string{"expect", "error", "contains", commands.Escape(text)}))
	default:
		fmt.Fprintln(r.w, line)
		for _, e := range commands.Pin(sh.Session, commands.FullName(path), args, res) {
			fmt.Fprintln(r.w, joinWords(e)+raw)
		}
	}
	r.n++
	// Each command is on disk before the next one runs: a crash or a
	// killed terminal loses nothing recorded.
	if err := r.flush(); err != nil {
		fmt.Fprintf(sh.Err, "error: record %s: %v; recording stopped\n", r.path, err)
		r.f.Close()
		sh.rec = nil
	}
}

// line is the command as it is written to the suite: its words quoted
// where needed, with -j dropped and relative file names made relative to
// the suite's directory.
func (r *recorder) line(path []*commands.Command, args, words []string) string {
	last := path[len(path)-1]
	out := make([]string, 0, len(words))
	out = append(out, words[:len(words)-len(args)]...)
	for i, a := range args {
		switch {
		case i == 0 && len(last.Args) > 0 && (last.Args[0] == commands.ArgFile || last.Args[0] == commands.ArgObject):
			a = r.relocate(a)
		case strings.HasPrefix(a, "@") && len(a) > 1:
			a = "@" + r.relocate(a[1:])
		}
		out = append(out, a)
	}
	return joinWords(out)
}

// fromSuite names the file at the absolute path p from the suite's
// directory, where bpfsh test resolves it.
func (r *recorder) fromSuite(p string) string {
	if !filepath.IsAbs(p) {
		return p // a built-in object's name
	}
	if rel, err := filepath.Rel(r.dir, p); err == nil {
		return rel
	}
	return p
}

// relocate rewrites a relative path to an existing file so that it names
// the same file from the suite's directory; anything else is kept.
func (r *recorder) relocate(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat(p); err != nil {
		return p // a built-in object's name, or a mistake the suite keeps
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	rel, err := filepath.Rel(r.dir, abs)
	if err != nil {
		return abs
	}
	return rel
}

// joinWords writes words as a line that Split reads back as the same
// words: each word bare when that splits back to it, else in single or
// double quotes.
func joinWords(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = quoteWord(w)
	}
	return strings.Join(out, " ")
}

func quoteWord(w string) string {
	for _, c := range []string{w, `"` + w + `"`, "'" + w + "'"} {
		if got, err := Split(c); err == nil && len(got) == 1 && len(got[0]) == 1 && got[0][0] == w && !strings.HasSuffix(c, `\`) {
			return c
		}
	}
	return w
}

// volatile are the parts of an error message that differ when a suite is
// replayed: object ids, which the kernel hands out afresh, and absolute
// paths (the pin root is a fresh directory each time).
var volatile = regexp.MustCompile(`\bids? [0-9][0-9, ]*|(?:^|[\s"'(=])/[^\s"',)]*`)

// stableErrorText is the longest part of msg without volatile parts, to
// follow "expect error contains"; msg itself when nothing in it is volatile.
func stableErrorText(msg, pinRoot string) string {
	msg = firstLine(msg)
	whole := msg
	if pinRoot != "" {
		msg = strings.ReplaceAll(msg, pinRoot, "\x00")
	}
	best := ""
	for _, part := range strings.Split(volatile.ReplaceAllString(msg, "\x00"), "\x00") {
		part = strings.TrimSpace(part)
		if len(part) > len(best) {
			best = part
		}
	}
	if best == "" {
		// All of it varies: its first word (the command's name) at least.
		return strings.Fields(whole + " error")[0]
	}
	return best
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
