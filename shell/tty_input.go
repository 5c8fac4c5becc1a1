// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"sync"
	"syscall"
	"unicode/utf8"

	prompt "github.com/elk-language/go-prompt"
	"golang.org/x/sys/unix"
)

// ttyInput is the go-prompt Reader on the terminal bpfsh was started on.
//
// It differs from go-prompt's own reader where that one hurts:
//   - it reads the file descriptor it is given instead of opening /dev/tty
//     (which panics without a controlling terminal);
//   - it waits with poll(2) instead of switching the terminal to
//     non-blocking mode, a flag shared with the parent shell that would be
//     left behind if bpfsh died;
//   - it hands go-prompt one key at a time: go-prompt reads a key only
//     when the bytes of one read are exactly that key, so "help\r" typed
//     ahead or pasted would otherwise become text with a newline in it;
//   - after an Enter it hands over nothing until the next line starts, so
//     keys typed while a command runs are kept for the next prompt rather
//     than lost with the line editor's buffers.
type ttyInput struct {
	fd     int
	cooked unix.Termios // the settings found at the start, restored after each line
	raw    unix.Termios

	mu       sync.Mutex
	pending  []byte // read from the terminal, not yet handed over
	injected []byte // keys made up by the shell (Ctrl-C on SIGINT)
	open     bool   // between Open and Close: a line is being read
	hold     bool   // an Enter was handed over in this line
	dead     bool   // the shell is done with the terminal
	sig      syscall.Signal
}

// wakeKey is a key go-prompt ignores; it is injected so that go-prompt
// looks at its exit checker when a signal asks the shell to end.
var wakeKey = []byte{0x1b, '[', 'E'}

func newTTYInput(fd int, cooked unix.Termios) *ttyInput {
	// The raw mode go-prompt's own reader sets: keys arrive one by one
	// and unechoed, Ctrl-C is a key rather than SIGINT, and output
	// processing stays on so that "\n" still starts a new line.
	raw := cooked
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Lflag &^= unix.ECHO | unix.ICANON | unix.IEXTEN | unix.ISIG | unix.ECHONL
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	return &ttyInput{fd: fd, cooked: cooked, raw: raw}
}

// Open switches the terminal to raw mode for one line.
func (t *ttyInput) Open() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return errors.New("terminal closed")
	}
	t.open, t.hold = true, false
	return unix.IoctlSetTermios(t.fd, unix.TCSETS, &t.raw)
}

// Close puts the terminal back as it was found.
func (t *ttyInput) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open = false
	return unix.IoctlSetTermios(t.fd, unix.TCSETS, &t.cooked)
}

// kill stops handing over keys for good (a reader goroutine go-prompt left
// behind after a panic then gets nothing).
func (t *ttyInput) kill() {
	t.mu.Lock()
	t.dead = true
	t.mu.Unlock()
}

// inject queues keys as if typed.
func (t *ttyInput) inject(keys []byte) {
	t.mu.Lock()
	t.injected = append(t.injected, keys...)
	t.mu.Unlock()
}

// leave records that sig asks the shell to end and wakes go-prompt.
func (t *ttyInput) leave(sig syscall.Signal) {
	t.mu.Lock()
	if t.sig == 0 {
		t.sig = sig
		t.injected = append(t.injected, wakeKey...)
	}
	t.mu.Unlock()
}

// leaving is the signal that asked the shell to end, or 0.
func (t *ttyInput) leaving() syscall.Signal {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sig
}

// pollWait bounds how long Read blocks, so that go-prompt's reader
// goroutine sees its stop request soon after a line ends.
const pollWait = 20 // ms

// Read hands go-prompt the next key, or fails with EAGAIN when there is
// none yet (go-prompt then tries again).
func (t *ttyInput) Read(buf []byte) (int, error) {
	t.mu.Lock()
	if t.dead || !t.open || t.hold {
		t.mu.Unlock()
		return 0, unix.EAGAIN
	}
	if len(t.injected) > 0 {
		n := t.take(&t.injected, buf)
		t.mu.Unlock()
		return n, nil
	}
	empty := len(t.pending) == 0
	t.mu.Unlock()

	if empty {
		fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, pollWait)
		if err != nil || n == 0 {
			return 0, unix.EAGAIN
		}
		var chunk [256]byte
		got, err := unix.Read(t.fd, chunk[:])
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			return 0, unix.EAGAIN
		}
		if err != nil || got == 0 {
			// The terminal hung up (EIO): end as if sent SIGHUP.
			t.leave(syscall.SIGHUP)
			return 0, unix.EAGAIN
		}
		t.mu.Lock()
		t.pending = append(t.pending, chunk[:got]...)
		t.mu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 {
		return 0, unix.EAGAIN
	}
	return t.take(&t.pending, buf), nil
}

// take moves the first key of *from into buf. Called with mu held.
func (t *ttyInput) take(from *[]byte, buf []byte) int {
	n := copy(buf, (*from)[:keyLen(*from)])
	*from = (*from)[n:]
	if n == 1 && (buf[0] == '\r' || buf[0] == '\n') {
		t.hold = true
	}
	return n
}

// keyLen is the length of the first key in b: an escape sequence, one
// control character, or a run of printable text (whole UTF-8 characters).
func keyLen(b []byte) int {
	switch {
	case len(b) == 0:
		return 0
	case b[0] == 0x1b:
		return escapeLen(b)
	case b[0] < 0x20 || b[0] == 0x7f:
		return 1
	}
	n := 0
	for n < len(b) && b[n] >= 0x20 && b[n] != 0x7f {
		if b[n] < utf8.RuneSelf {
			n++
			continue
		}
		_, size := utf8.DecodeRune(b[n:])
		if size == 1 && !utf8.FullRune(b[n:]) {
			break // the rest of the character is still coming
		}
		n += size
	}
	if n == 0 {
		return len(b) // a lone piece of a character: hand it over as is
	}
	return n
}

// escapeLen is the length of the escape sequence b starts with: ESC [ or
// ESC O, parameters, and a final byte; ESC ESC ... (Alt with an arrow);
// ESC and one key (Alt-b); or a lone ESC.
func escapeLen(b []byte) int {
	if len(b) == 1 {
		return 1
	}
	switch b[1] {
	case 0x1b:
		return 1 + escapeLen(b[1:])
	case '[', 'O':
		i := 2
		if i < len(b) && b[1] == '[' && b[i] == '[' {
			i++ // Linux console function keys: ESC [ [ A
		}
		for i < len(b) {
			if c := b[i]; c >= 0x40 && c <= 0x7e {
				return i + 1
			}
			i++
		}
		return len(b)
	}
	return 2
}

// GetWinSize is the terminal's size, or 80x25 when it cannot be read.
func (t *ttyInput) GetWinSize() *prompt.WinSize {
	ws, err := unix.IoctlGetWinsize(t.fd, unix.TIOCGWINSZ)
	if err != nil || ws.Row == 0 || ws.Col == 0 {
		return &prompt.WinSize{Row: prompt.DefRowCount, Col: prompt.DefColCount}
	}
	return &prompt.WinSize{Row: ws.Row, Col: ws.Col}
}

var _ prompt.Reader = (*ttyInput)(nil)
