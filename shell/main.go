// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/commands"
)

const usageText = `usage: bpfsh [flags]                 interactive shell (plain lines when stdin is not a terminal)
       bpfsh [flags] COMMAND ...     run one command, e.g. bpfsh map dump id 7
       bpfsh [flags] -c 'CMD; CMD'   run commands
       bpfsh [flags] -f FILE         run a script (bpftool batch files too)
       bpfsh [flags] test FILE|DIR... [--junit FILE] [-v]
                                     run suites, each in a fresh pin root; exit 1 if any expectation failed
flags:
`

const envText = `environment:
  BPFSH_HISTORY   the interactive shell's history file
                  (default $XDG_STATE_HOME/bpfsh/history, or ~/.local/state/bpfsh/history)
  BPFSH_LABS      a folder of lessons (NN-topic/) for the lab commands to use
                  instead of the built-in ones
  BPFSH_NO_SUDO   1: when not root, do not re-run bpfsh as root with sudo
`

// Main runs bpfsh with the given arguments and streams and returns its exit
// status: 0 ok, 1 a command failed, 2 usage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) (status int) {
	// bpfsh keeps little memory (a few MB live) but a script of runs
	// allocates steadily, and with Go's default (collect when the heap
	// doubles) it spent ~7% of a run collecting and scanning its globals.
	// Letting the heap grow to 5x the live data before collecting halves
	// that work and costs a few MB at most.
	debug.SetGCPercent(400)
	fs := flag.NewFlagSet("bpfsh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		script    = fs.String("c", "", "run these commands (separated by ';' or newlines) and exit")
		file      = fs.String("f", "", "run the commands in FILE and exit")
		keepGoing = fs.Bool("keep-going", false, "in scripts, go on past a failing command (the exit status still says it failed)")
		jsonOut   = fs.Bool("json", false, "print every result and error as JSON")
		pinRoot   = fs.String("pin-root", commands.DefaultPinRoot, "bpffs directory under which load pins NAME/")
		verbose   = fs.Bool("verbose", false, "show everything, e.g. whole verifier logs")
		pretty    = fs.Bool("pretty", false, "print every result and error as indented JSON (as bpftool -p)")
		rawNums   = fs.Bool("raw-numbers", false, "show integers as plain host-order numbers, not addresses and network-order ports (also on one command line)")
	)
	fs.BoolVar(jsonOut, "j", false, "short for --json")
	fs.BoolVar(pretty, "p", false, "short for --pretty")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
		fmt.Fprint(stderr, envText)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if *script != "" && *file != "" {
		fmt.Fprintln(stderr, "error: give -c or -f, not both")
		return ExitUsage
	}

	s := &commands.Session{
		PinRoot:  filepath.Clean(*pinRoot),
		JSON:     *jsonOut || *pretty,
		Verbose:  *verbose,
		StateDir: stateDir(),
	}
	sh := New(s, stdout, stderr)
	sh.KeepGoing = *keepGoing
	sh.Pretty = *pretty
	sh.RawNumbers = *rawNums
	bpf.SetRawNumbers(*rawNums)
	sh.TTY = isTerminal(stdout)

	// What commands keep for the session (a WAL writer's last flush, the
	// trace instance) is released last; a failure there is a failure.
	defer func() {
		if err := s.Close(); err != nil {
			sh.Report("at exit: ", err)
			status = max(status, ExitFailed)
		}
	}()
	if !isTerminal(stdin) || *script != "" || *file != "" || fs.NArg() > 0 {
		// Not the REPL: Ctrl-C or SIGTERM stops the running command (a
		// trace ends, its instance is removed) and then the script.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		sh.base = ctx
	}
	switch {
	case *script != "":
		return sh.RunScript(strings.NewReader(*script), "-c")
	case *file != "":
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintf(stderr, "error: %s: %v\n", *file, unwrapPath(err))
			return ExitUsage
		}
		defer f.Close()
		return sh.RunScript(f, *file)
	case fs.Arg(0) == "test":
		return sh.Test(fs.Args()[1:])
	case fs.NArg() > 0:
		s.OneShot = true
		err := sh.Exec(fs.Args())
		if err != nil && !errors.Is(err, errExit) {
			sh.Report("", err)
		}
		if sh.base.Err() != nil {
			return ExitInterrupted
		}
		return StatusOf(err)
	case isTerminal(stdin):
		return sh.Interactive(stdin.(*os.File))
	default:
		return sh.RunScript(releasingReader{stdin, s}, "stdin")
	}
}

// releasingReader reads piped lines, releasing what runs hold open
// (Session.Held) before each read, which may wait on the writer.
type releasingReader struct {
	r io.Reader
	s *commands.Session
}

func (r releasingReader) Read(p []byte) (int, error) {
	r.s.ReleaseHeld()
	return r.r.Read(p)
}

// stateDir is $XDG_STATE_HOME/bpfsh, or ~/.local/state/bpfsh.
func stateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "bpfsh")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "bpfsh")
	}
	return filepath.Join(os.TempDir(), "bpfsh-state")
}

func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}
