// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kinds of entries under bpffs, as "ls" prints them.
const (
	PinProg = "prog"
	PinMap  = "map"
	PinLink = "link"
	PinDir  = "dir"
	PinFile = "file" // a file that is not a pinned object
)

// PinInfo is one entry under bpffs: a directory or a pinned object.
type PinInfo struct {
	Path string `json:"path"`
	Kind string `json:"kind"`           // PinProg, PinMap, PinLink, PinDir or PinFile
	Type string `json:"type,omitempty"` // bpftool's spelling: "xdp", "hash", "tcx"
	ID   uint32 `json:"id,omitempty"`
	// Name is the object's name; for a link, its program's name.
	Name string `json:"name,omitempty"`
	// ProgID is the program a link runs.
	ProgID uint32 `json:"prog_id,omitempty"`
	// Err says why a pin could not be opened (Kind is then empty).
	Err string `json:"error,omitempty"`
}

// WalkPins calls fn for every entry under dir on bpffs (not dir itself), in
// lexical order, without opening any object: only directories are read, so
// it is cheap enough for completion over thousands of pins. fn returning
// fs.SkipDir skips a directory; any other error stops the walk.
func WalkPins(dir string, fn func(path string, isDir bool) error) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// Others pin and unpin while we walk: what vanished is skipped.
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if path == dir {
			return nil
		}
		return fn(path, d.IsDir())
	})
}

// StatPin opens what is pinned at path once and says what it is.
func StatPin(path string) (PinInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return PinInfo{}, err
	}
	if fi.IsDir() {
		return PinInfo{Path: path, Kind: PinDir}, nil
	}
	return statPin(path, map[uint32]string{})
}

// statPin is StatPin for a file, with a cache of program names by id for
// the programs of links.
func statPin(path string, progNames map[uint32]string) (PinInfo, error) {
	pi := PinInfo{Path: path}
	fd, err := sysObjGet(path)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return pi, fmt.Errorf("open pin %s: %w", path, errNotRoot)
		}
		// Not every file on bpffs is a pinned object: bpf_preload puts
		// maps.debug and progs.debug, iterators read with cat, at its root.
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode().IsRegular() && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES)) {
			pi.Kind = PinFile
			return pi, nil
		}
		return pi, fmt.Errorf("open pin %s: %w", path, err)
	}
	defer unix.Close(fd)
	kind, err := sysFDKind(fd)
	if err != nil {
		return pi, fmt.Errorf("pin %s: %w", path, err)
	}
	pi.Kind = kind
	switch kind {
	case PinProg:
		var info rawProgInfo
		if err := sysObjGetInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
			return pi, fmt.Errorf("pin %s: program info: %w", path, err)
		}
		pi.Type, pi.ID, pi.Name = ProgTypeName(info.Type), info.ID, unix.ByteSliceToString(info.Name[:])
	case PinMap:
		info, err := mapInfoFD(fd)
		if err != nil {
			return pi, fmt.Errorf("pin %s: map info: %w", path, err)
		}
		pi.Type, pi.ID, pi.Name = MapTypeName(info.Type), info.ID, unix.ByteSliceToString(info.Name[:])
	case PinLink:
		var info rawLinkInfo
		if err := sysObjGetInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
			return pi, fmt.Errorf("pin %s: link info: %w", path, err)
		}
		pi.Type, pi.ID, pi.ProgID = LinkTypeName(info.Type), info.ID, info.ProgID
		name, ok := progNames[info.ProgID]
		if !ok {
			name = progNameByID(info.ProgID)
			progNames[info.ProgID] = name
		}
		pi.Name = name
	}
	return pi, nil
}

// ListPins describes every entry under dir, recursively, opening each pin
// once. A pin that cannot be opened is listed with Err set rather than
// failing the whole listing; dir not being on bpffs is an error. A dir
// that is itself a pin lists just that pin.
func ListPins(dir string) ([]PinInfo, error) {
	dir = filepath.Clean(dir)
	if err := CheckBPFFSDir(dir); err != nil {
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() && OnBPFFS(dir) {
			pi, err := statPin(dir, map[uint32]string{})
			if err != nil {
				return nil, err
			}
			return []PinInfo{pi}, nil
		}
		return nil, err
	}
	var out []PinInfo
	progNames := map[uint32]string{}
	err := WalkPins(dir, func(path string, isDir bool) error {
		if isDir {
			out = append(out, PinInfo{Path: path, Kind: PinDir})
			return nil
		}
		pi, err := statPin(path, progNames)
		if err != nil {
			if _, lerr := os.Lstat(path); errors.Is(lerr, fs.ErrNotExist) {
				return nil // unpinned since the directory was read
			}
			if errors.Is(err, os.ErrPermission) {
				return err
			}
			pi.Err = err.Error()
		}
		out = append(out, pi)
		return nil
	})
	if errors.Is(err, os.ErrPermission) {
		return out, fmt.Errorf("list %s: %w", dir, errNotRoot)
	}
	if err != nil {
		return out, fmt.Errorf("list %s: %w", dir, err)
	}
	return out, nil
}

// CheckBPFFSDir says, in one line, why dir cannot hold pins: it does not
// exist, is not a directory, or is not on a bpf file system. bpffs at
// /sys/fs/bpf is mounted first if it is not (when root).
func CheckBPFFSDir(dir string) error {
	if underBPFFSPath(dir) && !Mounted(BPFFSPath, unix.BPF_FS_MAGIC) {
		if err := EnsureBPFFS(); err != nil {
			return err
		}
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist; 'ls %s' shows what is pinned", dir, BPFFSPath)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is a pinned object, not a directory; 'ls %s' lists its directory", dir, filepath.Dir(dir))
	case !OnBPFFS(dir):
		return fmt.Errorf("%s is not on a bpf file system; pinned objects live under %s", dir, BPFFSPath)
	}
	return nil
}

func underBPFFSPath(path string) bool {
	return path == BPFFSPath || strings.HasPrefix(path, BPFFSPath+"/")
}

// PinFD pins the object behind fd at path. path must be absolute, must not
// exist, and must be on a bpf file system. Missing directories above it are
// made, and removed again if pinning fails, so that a failure leaves
// nothing behind.
func PinFD(fd int, path string) error {
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return fmt.Errorf("pin path %s is not absolute", path)
	}
	if underBPFFSPath(path) && !Mounted(BPFFSPath, unix.BPF_FS_MAGIC) {
		if err := EnsureBPFFS(); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists already; choose another path or remove it first", path)
	}
	// Find the nearest existing directory above path; it decides the file system.
	var missing []string
	parent := filepath.Dir(path)
	for {
		fi, err := os.Stat(parent)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("cannot pin at %s: %s is not a directory", path, parent)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot pin at %s: %w", path, err)
		}
		missing = append(missing, parent)
		parent = filepath.Dir(parent)
	}
	if !OnBPFFS(parent) {
		return fmt.Errorf("%s is not on a bpf file system; pin under %s", path, BPFFSPath)
	}
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			undo()
			return fmt.Errorf("make directory %s: %w", missing[i], err)
		}
		made = append(made, missing[i])
	}
	if err := sysObjPin(fd, path); err != nil {
		undo()
		switch {
		case errors.Is(err, unix.EEXIST):
			return fmt.Errorf("%s exists already; choose another path or remove it first", path)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return fmt.Errorf("pin %s: %w", path, errNotRoot)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
