// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// These tests drive the real bpfsh binary through a pseudo-terminal, as a
// person at a terminal would: keys in, screen out.

var bpfshBin struct {
	dir  string
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bpfsh-pty-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bpfshBin.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bpfshBinary builds bpfsh once per test run, on first use, so that tests
// that do not need it (and fuzzing workers) do not pay for the build. With
// BPFSH_BIN set it uses that binary instead: the kernel matrix's guests
// have no go command and carry a bpfsh built on the host.
func bpfshBinary(t *testing.T) string {
	t.Helper()
	bpfshBin.once.Do(func() {
		if prebuilt := os.Getenv("BPFSH_BIN"); prebuilt != "" {
			bpfshBin.path = prebuilt
			return
		}
		path := filepath.Join(bpfshBin.dir, "bpfsh")
		out, err := exec.Command("go", "build", "-o", path, "..").CombinedOutput()
		if err != nil {
			bpfshBin.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		bpfshBin.path = path
	})
	if bpfshBin.err != nil {
		t.Fatal(bpfshBin.err)
	}
	return bpfshBin.path
}

// bpfshKnows reports whether the built bpfsh has the command words given.
func bpfshKnows(t *testing.T, command string) bool {
	t.Helper()
	args := append([]string{"--pin-root", "/sys/fs/bpf/bpfsh-test-none", "help"}, strings.Fields(command)...)
	return exec.Command(bpfshBinary(t), args...).Run() == nil
}

// screen is bpfsh running on a pseudo-terminal.
type screen struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File // our side: keys go in, the screen comes out
	tty  *os.File // bpfsh's side, kept open to read its ttySettings

	mu   sync.Mutex
	out  []byte
	seen int // how much of the stripped screen expect has consumed

	exited chan struct{}
	status int
}

// ptyTerminal opens a pseudo-terminal 250 columns wide, so that long paths
// stay on one line.
func ptyTerminal(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() {
		ptmx.Close()
		tty.Close()
	})
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 250}); err != nil {
		t.Fatal(err)
	}
	return ptmx, tty
}

// ptyStart runs bpfsh on the terminal with a private pin root and state
// directory, and env added to its environment.
func ptyStart(t *testing.T, ptmx, tty *os.File, pinRoot, state string, env ...string) *screen {
	t.Helper()
	cmd := exec.Command(bpfshBinary(t), "--pin-root", pinRoot)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BPFSH_") && !strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append([]string{"TERM=xterm", "XDG_STATE_HOME=" + state}, env...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bpfsh: %v", err)
	}
	sc := &screen{t: t, cmd: cmd, ptmx: ptmx, tty: tty, exited: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			sc.mu.Lock()
			sc.out = append(sc.out, buf[:n]...)
			sc.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		cmd.Wait()
		sc.status = cmd.ProcessState.ExitCode()
		close(sc.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-sc.exited:
		default:
			cmd.Process.Kill()
			<-sc.exited
		}
	})
	return sc
}

// ansiRE matches the terminal control sequences go-prompt draws with.
var ansiRE = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\r`)

// stripANSI removes control sequences, leaving the text drawn.
func stripANSI(b []byte) string { return ansiRE.ReplaceAllString(string(b), "") }

// expect waits up to 10 s for re to match the screen after what was
// matched before, and returns the match.
func (sc *screen) expect(re string) string {
	sc.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc.mu.Lock()
		text := stripANSI(sc.out)
		sc.mu.Unlock()
		if loc := rx.FindStringIndex(text[min(sc.seen, len(text)):]); loc != nil {
			match := text[sc.seen+loc[0] : sc.seen+loc[1]]
			sc.seen += loc[1]
			return match
		}
		if time.Now().After(deadline) {
			sc.t.Fatalf("after 10 s the screen has no %q; since the last match it shows:\n%s", re, tailOf(text[min(sc.seen, len(text)):], 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// all is everything drawn so far, stripped.
func (sc *screen) all() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return stripANSI(sc.out)
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// send types keys.
func (sc *screen) send(keys string) {
	sc.t.Helper()
	if _, err := sc.ptmx.Write([]byte(keys)); err != nil {
		sc.t.Fatalf("type %q: %v", keys, err)
	}
}

// wait waits up to 10 s for bpfsh to exit and returns its status.
func (sc *screen) wait() int {
	sc.t.Helper()
	select {
	case <-sc.exited:
		return sc.status
	case <-time.After(10 * time.Second):
		sc.t.Fatalf("bpfsh still runs 10 s after it should have left; the screen shows:\n%s", tailOf(sc.all(), 3000))
	}
	return -1
}

// ptyPrompt is what bpfsh shows when waiting for a line (with the pin root's
// name, as tests use their own).
const ptyPrompt = `bpfsh\(bpfsh-test-[^)]*\)> `

// ptyShell starts bpfsh on a fresh terminal and waits for its prompt.
func ptyShell(t *testing.T, pinRoot, state string, env ...string) *screen {
	t.Helper()
	ptmx, tty := ptyTerminal(t)
	sc := ptyStart(t, ptmx, tty, pinRoot, state, env...)
	sc.expect(ptyPrompt)
	return sc
}

func TestPTYHelpPrintsTheTable(t *testing.T) {
	sc := ptyShell(t, bpftest.PinRoot(t), t.TempDir())
	sc.send("help\r")
	sc.expect(`COMMAND\s+SUMMARY\n`)
	sc.expect(`exit\s+leave the shell`)
	sc.expect(ptyPrompt)
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("Ctrl-D: exit status %d, want 0", st)
	}
}

func TestPTYTabCompletesPinnedMap(t *testing.T) {
	root := bpftest.PinRoot(t)
	fix := filepath.Join(root, "fix")
	if err := os.Mkdir(fix, 0o700); err != nil {
		t.Fatal(err)
	}
	bpftest.Fixture(t, fix)
	hist := filepath.Join(t.TempDir(), "hist")
	merged := bpfshKnows(t, "map show")
	if !merged {
		t.Log("this bpfsh has no 'map show' yet: checking the completed lines and the error instead of the map's record")
	}
	sc := ptyShell(t, root, t.TempDir(), "BPFSH_HISTORY="+hist)

	// The full path after pinned, and the short form NAME/OBJ.
	for _, typed := range []string{"map show pinned " + fix + "/fl", "map show fix/fl"} {
		sc.send(typed)
		sc.expect(regexp.QuoteMeta(typed)) // echoed, and the list below offers flows
		sc.send("\t")
		sc.send("\r")
		// On Enter the line is drawn once more, completed, then run.
		sc.expect(regexp.QuoteMeta(strings.TrimSuffix(typed, "fl")+"flows") + `\n`)
		if merged {
			sc.expect(`(?s)hash.*flows|flows.*hash`)
		} else {
			sc.expect(`unknown command "map"`)
		}
		sc.expect(ptyPrompt)
	}
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
	// What the line editor handed the shell is in the history file.
	data, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	want := "map show pinned " + fix + "/flows\nmap show fix/flows\n"
	if string(data) != want {
		t.Errorf("history holds %q, want %q", data, want)
	}
}

func TestPTYHistoryAcrossSessions(t *testing.T) {
	root := bpftest.PinRoot(t)
	state := t.TempDir()
	sc := ptyShell(t, root, state)
	sc.send("help source\r")
	sc.expect(`usage: source FILE`)
	sc.expect(ptyPrompt)
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Fatalf("first session: exit status %d", st)
	}
	path := filepath.Join(state, "bpfsh", "history")
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, want mode %v (err %v)", p, fi.Mode(), mode, err)
		}
	}

	sc = ptyShell(t, root, state)
	sc.send("\x1b[A") // Up
	sc.expect(ptyPrompt + `help source`)
	sc.send("\r")
	sc.expect(`usage: source FILE`)
	sc.expect(ptyPrompt)
	sc.send("exit\r")
	if st := sc.wait(); st != 0 {
		t.Errorf("exit: status %d, want 0", st)
	}
}

func TestPTYCtrlCDropsTheLine(t *testing.T) {
	sc := ptyShell(t, bpftest.PinRoot(t), t.TempDir())
	sc.send("help sou")
	sc.expect(ptyPrompt + `help sou`)
	sc.send("\x03")
	sc.expect(ptyPrompt)
	sc.send("help exit\r")
	sc.expect(`usage: exit`)
	sc.expect(ptyPrompt)

	// SIGINT from elsewhere at the prompt does the same as Ctrl-C.
	sc.send("help sou")
	sc.expect(ptyPrompt + `help sou`)
	if err := sc.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sc.expect(ptyPrompt)
	sc.send("help help\r")
	sc.expect(`usage: help`)
	sc.expect(ptyPrompt)
	if strings.Contains(sc.all(), "usage: source") {
		t.Errorf("a line dropped with Ctrl-C was run:\n%s", sc.all())
	}
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
}

func TestPTYKeysTypedAheadAreKept(t *testing.T) {
	sc := ptyShell(t, bpftest.PinRoot(t), t.TempDir())
	// Two lines in one write, as when pasted or typed while a command runs.
	sc.send("help exit\rhelp help\r")
	sc.expect(`usage: exit`)
	sc.expect(`usage: help`)
	sc.expect(ptyPrompt)
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
}

// ttySettings are the terminal's state that bpfsh must leave as it found it:
// its termios and the open file's flags (non-blocking mode is shared with
// the parent shell).
type ttySettings struct {
	termios unix.Termios
	flags   int
}

func ttySettingsOf(t *testing.T, tty *os.File) ttySettings {
	t.Helper()
	fd := int(tty.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ttySettings{*tio, fl}
}

func TestPTYTerminalRestored(t *testing.T) {
	for _, c := range []struct {
		name   string
		env    []string
		run    func(*screen)
		status int
	}{
		{"ctrl-d", nil, func(sc *screen) {
			sc.send("help\r")
			sc.expect(`COMMAND\s+SUMMARY`)
			sc.expect(ptyPrompt)
			sc.send("\x04")
		}, 0},
		{"exit", nil, func(sc *screen) { sc.send("exit\r") }, 0},
		{"SIGTERM at the ptyPrompt", nil, func(sc *screen) {
			sc.send("hel")
			sc.expect(ptyPrompt + "hel")
			sc.cmd.Process.Signal(syscall.SIGTERM)
		}, 128 + int(syscall.SIGTERM)},
		// A panic inside go-prompt while the terminal is in raw mode (a
		// test hook makes the completer panic on this line).
		{"panic in the line editor", []string{"BPFSH_TEST_PANIC_AT=boom"}, func(sc *screen) {
			sc.send("boom")
			sc.expect(`line editor failed \(BPFSH_TEST_PANIC_AT: boom\); the terminal was restored`)
		}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ptmx, tty := ptyTerminal(t)
			before := ttySettingsOf(t, tty)
			if before.termios.Lflag&unix.ICANON == 0 || before.termios.Lflag&unix.ECHO == 0 {
				t.Fatalf("a fresh pseudo-terminal should echo and read lines: %+v", before.termios)
			}
			sc := ptyStart(t, ptmx, tty, bpftest.PinRoot(t), t.TempDir(), c.env...)
			sc.expect(ptyPrompt)
			if during := ttySettingsOf(t, tty); during.termios == before.termios {
				t.Fatalf("at the ptyPrompt the terminal should be in raw mode, but its ttySettings did not change")
			}
			c.run(sc)
			if st := sc.wait(); st != c.status {
				t.Errorf("exit status %d, want %d; the screen shows:\n%s", st, c.status, tailOf(sc.all(), 2000))
			}
			if after := ttySettingsOf(t, tty); after != before {
				t.Errorf("terminal ttySettings changed:\nbefore %+v\nafter  %+v", before, after)
			}
			if out := sc.all(); strings.Contains(out, "goroutine ") || strings.Contains(out, "panic:") {
				t.Errorf("a Go stack trace reached the screen:\n%s", tailOf(out, 2000))
			}
		})
	}
}

func TestPTYTabCycles(t *testing.T) {
	root := bpftest.PinRoot(t)
	sc := ptyShell(t, root, t.TempDir(), "BPFSH_HISTORY="+filepath.Join(t.TempDir(), "hist"))
	// "help map p" offers pin, peek, pop, push (in that order): Tab takes
	// the first, Tab again the second, and Enter runs the line.
	sc.send("help map p")
	sc.expect(`help map p`)
	sc.send("\t")
	sc.send("\t")
	sc.send("\r")
	sc.expect(`usage: map peek `)
	sc.expect(ptyPrompt)
	// After a blank too: "help map " offers list, show, ...
	sc.send("help map ")
	sc.expect(`help map `)
	sc.send("\t")
	sc.send("\t")
	sc.send("\r")
	sc.expect(`usage: map show`)
	sc.expect(ptyPrompt)
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
}
