// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// labProgress is what the learner has done, kept in
// <state>/labs/progress.json so that it outlives the shell.
type labProgress struct {
	// Current is the folder of the lesson started last (01-hello).
	Current string `json:"current,omitempty"`
	// From is the working directory lab start was typed in, where lab
	// reset takes the shell back to.
	From string `json:"from,omitempty"`
	// Done maps the folders of the lessons whose check passed to when.
	Done map[string]time.Time `json:"done,omitempty"`
}

func progressPath(s *Session) string { return filepath.Join(labsDir(s), "progress.json") }

// readProgress reads the progress file; none yet is no progress.
func readProgress(s *Session) (*labProgress, error) {
	p := &labProgress{}
	b, err := os.ReadFile(progressPath(s))
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the lab progress: %w", err)
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("the lab progress %s is damaged (%v); remove it to start over", progressPath(s), err)
	}
	return p, nil
}

// save writes the progress file, through a rename so that a crash never
// leaves half of it.
func (p *labProgress) save(s *Session) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	path := progressPath(s)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save the lab progress: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save the lab progress: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save the lab progress: %w", err)
	}
	return nil
}
