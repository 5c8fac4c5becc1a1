// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bpfsh/bpfsh/commands"
)

// HistoryMax is how many lines the history file keeps.
const HistoryMax = 10000

// HistoryPath is where the lines typed are kept: $BPFSH_HISTORY, or
// history in the session's state directory ($XDG_STATE_HOME/bpfsh).
func HistoryPath(s *commands.Session) string {
	if p := os.Getenv("BPFSH_HISTORY"); p != "" {
		return p
	}
	return filepath.Join(s.StateDir, "history")
}

// History is the file of lines typed in this and earlier sessions: read
// once at the start, appended to line by line, so that a session that
// dies still leaves what was typed, and two sessions do not overwrite
// each other's lines.
type History struct {
	path  string
	lines []string
	f     *os.File
}

// OpenHistory reads the last HistoryMax lines of the file at path and
// opens it for appending, creating it (0600, in a 0700 directory) when
// missing. A file grown well past HistoryMax lines is cut back first.
func OpenHistory(path string) (*History, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("history %s: %w", path, unwrapPath(err))
	}
	h := &History{path: path}
	total, err := h.load()
	if err != nil {
		return nil, err
	}
	// Cut the file back only when it is half as long again as kept, so
	// that the rewrite is rare.
	if total > HistoryMax+HistoryMax/2 {
		if err := h.rewrite(); err != nil {
			return nil, err
		}
	}
	h.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", path, unwrapPath(err))
	}
	return h, nil
}

// load reads the file's last HistoryMax lines and returns how many it has.
func (h *History) load() (int, error) {
	f, err := os.Open(h.path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("history %s: %w", h.path, unwrapPath(err))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	total := 0
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		total++
		h.lines = append(h.lines, sc.Text())
		if len(h.lines) >= 2*HistoryMax {
			h.lines = append(h.lines[:0], h.lines[len(h.lines)-HistoryMax:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("history %s: %w", h.path, err)
	}
	if len(h.lines) > HistoryMax {
		h.lines = h.lines[len(h.lines)-HistoryMax:]
	}
	return total, nil
}

// rewrite replaces the file with the lines kept, through a temporary file
// so that a crash never leaves it half written.
func (h *History) rewrite() error {
	tmp, err := os.CreateTemp(filepath.Dir(h.path), ".history-*")
	if err != nil {
		return fmt.Errorf("history %s: %w", h.path, unwrapPath(err))
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	for _, l := range h.lines {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("history %s: %w", h.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("history %s: %w", h.path, err)
	}
	if err := os.Rename(tmp.Name(), h.path); err != nil {
		return fmt.Errorf("history %s: %w", h.path, unwrapPath(err))
	}
	return nil
}

// Lines are the lines kept, oldest first.
func (h *History) Lines() []string { return h.lines }

// Add records a line typed: blank lines and a repeat of the line before
// are not kept, and a line pasted with newlines in it is kept as one.
func (h *History) Add(line string) error {
	line = strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(line))
	if line == "" || (len(h.lines) > 0 && h.lines[len(h.lines)-1] == line) {
		return nil
	}
	h.lines = append(h.lines, line)
	if len(h.lines) > HistoryMax {
		h.lines = h.lines[len(h.lines)-HistoryMax:]
	}
	if _, err := h.f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("history %s: %w", h.path, err)
	}
	return nil
}

// Close closes the file.
func (h *History) Close() error { return h.f.Close() }
