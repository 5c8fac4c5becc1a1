// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// Manifest records what one load pinned, so that unload removes exactly
// that: a pin is removed only while it still refers to the object (by
// kernel id) that load pinned there. Ids are not reused until the kernel's
// 31-bit counter wraps, so an id match is the same object.
type Manifest struct {
	Name    string `json:"name"`
	PinRoot string `json:"pin_root"`
	Dir     string `json:"dir"`
	Source  string `json:"source"`
	// Load is the load command's words after "load" that load the same
	// again (the file made absolute, name, only, set), for record.
	Load     []string  `json:"load,omitempty"`
	LoadedAt time.Time `json:"loaded_at"`
	Objects  []Pinned  `json:"objects"`
}

// ManifestPath is where the manifest of NAME under pinRoot lives:
// <stateDir>/pins/<hash of the pin root>/NAME.json. The hash keeps the
// manifests of different pin roots apart without nesting their paths.
func ManifestPath(stateDir, pinRoot, name string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(pinRoot)))
	return filepath.Join(stateDir, "pins", hex.EncodeToString(sum[:8]), name+".json")
}

// WriteManifest saves m (stamping LoadedAt), replacing any stale manifest
// of the same name, e.g. one whose pins vanished with a reboot.
func WriteManifest(stateDir string, m *Manifest) error {
	path := ManifestPath(stateDir, m.PinRoot, m.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("record what was pinned: %w", err)
	}
	m.LoadedAt = time.Now().UTC().Truncate(time.Second)
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("record what was pinned: %w", err)
	}
	// Write then rename, so a crash never leaves half a manifest.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record what was pinned: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record what was pinned: %w", err)
	}
	return nil
}

// ReadManifests reads the manifests of every load under pinRoot, oldest
// first; damaged ones are left out.
func ReadManifests(stateDir, pinRoot string) []*Manifest {
	ents, err := os.ReadDir(filepath.Dir(ManifestPath(stateDir, pinRoot, "x")))
	if err != nil {
		return nil
	}
	var out []*Manifest
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if m, err := ReadManifest(stateDir, pinRoot, name); err == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Manifest) int { return a.LoadedAt.Compare(b.LoadedAt) })
	return out
}

// ReadManifest reads the manifest of NAME under pinRoot; the error wraps
// fs.ErrNotExist when there is none.
func ReadManifest(stateDir, pinRoot, name string) (*Manifest, error) {
	path := ManifestPath(stateDir, pinRoot, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest %s is damaged: %v", path, err)
	}
	return &m, nil
}

// Unloaded is what Unload did.
type Unloaded struct {
	Name    string   `json:"name"`
	Dir     string   `json:"dir"`
	Removed []Pinned `json:"removed"` // pins removed
	Gone    []Pinned `json:"gone"`    // pins that had already been removed
	Changed []Pinned `json:"changed"` // pins left: now another object
	Left    []string `json:"left"`    // paths under Dir bpfsh did not pin
	DirGone bool     `json:"dir_removed"`
	// RootGone is the pin root when it was left empty and removed.
	RootGone string `json:"root_removed,omitempty"`
}

// Unload removes what load pinned as NAME under pinRoot, and nothing
// else: a pin is removed only if it still refers to the same kernel
// object; NAME/ is removed when that leaves it empty. What stays is
// listed in the result, not treated as an error.
func Unload(stateDir, pinRoot, name string) (*Unloaded, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("unload: %w", err)
	}
	pinRoot = filepath.Clean(pinRoot)
	dir := filepath.Join(pinRoot, name)
	m, err := ReadManifest(stateDir, pinRoot, name)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(dir); serr == nil {
			return nil, fmt.Errorf("unload %s: bpfsh did not load %s (it has no record of it in %s), so it removes nothing; remove those pins with rm if they are yours",
				name, dir, filepath.Dir(ManifestPath(stateDir, pinRoot, name)))
		}
		return nil, fmt.Errorf("unload %s: nothing is loaded as %s under %s; 'ls %s' shows what is", name, name, pinRoot, pinRoot)
	}
	if err != nil {
		return nil, fmt.Errorf("unload %s: %w", name, err)
	}
	if err := CheckPrivilege("unload"); err != nil {
		return nil, err
	}

	u := &Unloaded{Name: name, Dir: m.Dir}
	ours := map[string]bool{}
	for _, obj := range m.Objects {
		ours[obj.Path] = true
		id, err := pinnedID(obj)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			u.Gone = append(u.Gone, obj)
		case err != nil || id != obj.ID:
			// Someone replaced the pin (or it is no longer a kind
			// we can read): not ours to remove.
			u.Changed = append(u.Changed, obj)
		default:
			if err := os.Remove(obj.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("unload %s: remove %s: %w", name, obj.Path, err)
			}
			u.Removed = append(u.Removed, obj)
		}
	}
	entries, err := os.ReadDir(m.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		u.DirGone = true
	case err != nil:
		return nil, fmt.Errorf("unload %s: %w", name, err)
	case len(entries) == 0:
		if err := os.Remove(m.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("unload %s: remove %s: %w", name, m.Dir, err)
		}
		u.DirGone = true
	default:
		for _, e := range entries {
			p := filepath.Join(m.Dir, e.Name())
			if !ours[p] {
				u.Left = append(u.Left, p)
			}
		}
	}
	if err := os.Remove(ManifestPath(stateDir, pinRoot, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return u, fmt.Errorf("unload %s: pins removed, but the record of them could not be: %w", name, err)
	}
	// The last NAME gone: the pin root goes too when nothing else is in
	// it (os.Remove takes only an empty directory), but never bpffs's
	// mount point itself.
	if u.DirGone {
		if root := filepath.Clean(pinRoot); root != BPFFSPath && root != "/" && OnBPFFS(root) && os.Remove(root) == nil {
			u.RootGone = root
		}
	}
	return u, nil
}

// pinnedID is the kernel id of the object pinned at obj.Path, opened as
// the kind it was pinned as.
func pinnedID(obj Pinned) (uint32, error) {
	opts := &ebpf.LoadPinOptions{ReadOnly: true}
	if obj.Kind == KindProgram {
		p, err := ebpf.LoadPinnedProgram(obj.Path, opts)
		if err != nil {
			return 0, err
		}
		defer p.Close()
		info, err := p.Info()
		if err != nil {
			return 0, err
		}
		id, _ := info.ID()
		return uint32(id), nil
	}
	mp, err := ebpf.LoadPinnedMap(obj.Path, opts)
	if err != nil {
		return 0, err
	}
	defer mp.Close()
	info, err := mp.Info()
	if err != nil {
		return 0, err
	}
	id, _ := info.ID()
	return uint32(id), nil
}

// Summary is the one line the shell shows for u.
func (u *Unloaded) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unloaded %s: removed %s", u.Name, plural(len(u.Removed), "pin"))
	if u.DirGone {
		fmt.Fprintf(&b, " and %s", u.Dir)
	}
	if u.RootGone != "" {
		fmt.Fprintf(&b, " (and the pin root %s, now empty)", u.RootGone)
	}
	if n := len(u.Gone); n > 0 {
		fmt.Fprintf(&b, "; %s already gone", plural(n, "pin was", "pins were"))
	}
	if n := len(u.Changed); n > 0 {
		paths := make([]string, n)
		for i, c := range u.Changed {
			paths[i] = c.Path
		}
		fmt.Fprintf(&b, "; kept %s now holding another object: %s", plural(n, "pin"), strings.Join(paths, ", "))
	}
	if n := len(u.Left); n > 0 {
		fmt.Fprintf(&b, "; left %s bpfsh did not pin: %s", plural(n, "object"), strings.Join(u.Left, ", "))
	}
	return b.String()
}

// plural is "1 pin" or "3 pins"; with two words, "1 pin was" / "3 pins were".
func plural(n int, forms ...string) string {
	one, many := forms[0], forms[0]+"s"
	if len(forms) > 1 {
		many = forms[1]
	}
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
