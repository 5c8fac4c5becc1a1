// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/bpfsh/bpfsh/bpf"
)

var lsCmd = &Command{
	Name:    "ls",
	Usage:   "[DIR]",
	Short:   "list pinned objects under bpffs",
	Long:    "ls lists what is pinned under DIR on bpffs, recursively: each entry's path (relative to DIR, directories ending in '/'), its kind (prog, map, link or dir), its type as bpftool spells it, its id and its name (for a link, the name of its program). DIR defaults to the pin root when it exists, else /sys/fs/bpf; a relative DIR is under the pin root. bpffs is mounted at /sys/fs/bpf first if it is not (as root).",
	Example: "ls /sys/fs/bpf",
	Args:    []ArgKind{ArgPinPath},
	Run:     runLs,
}

func runLs(s *Session, args []string) (Result, error) {
	var dir string
	switch len(args) {
	case 0:
		dir = s.PinRoot
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			dir = bpf.BPFFSPath
		}
	case 1:
		dir = pinPath(s, args[0])
	default:
		return nil, Usagef("ls takes one DIR at most")
	}
	pins, err := bpf.ListPins(dir)
	if err != nil {
		return nil, err
	}
	return &Stream{
		Columns: []string{"path", "kind", "type", "id", "name"},
		Each: func(emit func(row []string, obj any) error) error {
			for _, p := range pins {
				rel, err := filepath.Rel(dir, p.Path)
				if err != nil || rel == "." {
					rel = p.Path
				}
				id, kind, name := "", p.Kind, p.Name
				if p.Kind == bpf.PinDir {
					rel += "/"
				} else if p.ID != 0 {
					id = strconv.FormatUint(uint64(p.ID), 10)
				}
				if p.Err != "" {
					kind, name = "?", p.Err
				}
				if err := emit([]string{rel, kind, p.Type, id, name}, p); err != nil {
					return err
				}
			}
			return nil
		},
	}, nil
}
