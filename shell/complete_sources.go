// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/commands"
)

// This file holds where candidates come from: directories (bpffs and
// files), the pin root, network interfaces, and the kernel's lists of
// programs and maps.

// describeMax is how many pinned candidates are opened to say what they
// are (and to drop those of the wrong kind). Beyond it the list is long
// enough that opening each would make typing lag.
const describeMax = 64

// pinned completes a path under bpffs one directory at a time, as a shell
// completes file names.
func (c *completer) pinned(kind commands.ArgKind) {
	if c.cur == "" {
		c.add(bpf.BPFFSPath+"/", "bpffs")
		if root := c.s.PinRoot; strings.HasPrefix(root, "/") && root != bpf.BPFFSPath && root != "/" {
			c.add(root+"/", "pin root")
		}
		return
	}
	c.path(kind, true)
}

// files completes a path on the file system.
func (c *completer) files() { c.path("", false) }

// objectFiles completes a path to a BPF object: the .o files first, then
// directories, then the rest.
func (c *completer) objectFiles() {
	c.path("", false)
	rank := func(s Suggestion) int {
		switch {
		case strings.HasSuffix(s.Text, ".o"):
			return 0
		case strings.HasSuffix(s.Text, "/"):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(c.out, func(a, b Suggestion) int { return rank(a) - rank(b) })
}

// path lists the directory part of the word and offers the entries that
// extend its last part; directories end in '/' so that the next Tab goes in.
func (c *completer) path(kind commands.ArgKind, pins bool) {
	dir, base := "", c.cur
	if i := strings.LastIndexByte(c.cur, '/'); i >= 0 {
		dir, base = c.cur[:i+1], c.cur[i+1:]
	}
	var found []dirEntry
	for _, e := range listDir(dir) {
		if strings.HasPrefix(e.name, base) && (!strings.HasPrefix(e.name, ".") || strings.HasPrefix(base, ".")) {
			found = append(found, e)
		}
	}
	slices.SortFunc(found, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	describe := pins && len(found) <= describeMax && bpf.OnBPFFS(orDot(dir))
	for _, e := range found {
		text := dir + e.name
		if e.dir {
			c.add(text+"/", "directory")
			continue
		}
		desc := ""
		if describe {
			var fits bool
			if desc, fits = pinDesc(text, kind); !fits {
				continue
			}
		}
		c.add(text, desc)
	}
}

// shortRefs completes the short form NAME/OBJ: the NAMEs loaded under the
// pin root, then the objects pinned under <pin-root>/NAME/.
func (c *completer) shortRefs(kind commands.ArgKind) {
	root := c.s.PinRoot
	if root == "" {
		return
	}
	name, obj, inside := strings.Cut(c.cur, "/")
	if !inside {
		for _, e := range listDir(root) {
			if e.dir && !strings.HasPrefix(e.name, ".") {
				c.add(e.name+"/", "loaded object")
			}
		}
		return
	}
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(obj, "/") {
		return
	}
	dir := filepath.Join(root, name)
	var found []string
	for _, e := range listDir(dir) {
		if !e.dir && strings.HasPrefix(e.name, obj) {
			found = append(found, e.name)
		}
	}
	slices.Sort(found)
	for _, n := range found {
		desc := ""
		if len(found) <= describeMax {
			var fits bool
			if desc, fits = pinDesc(filepath.Join(dir, n), kind); !fits {
				continue
			}
		}
		c.add(name+"/"+n, desc)
	}
}

// loaded offers the NAMEs under the pin root.
func (c *completer) loaded() {
	for _, e := range listDir(c.s.PinRoot) {
		if e.dir && !strings.HasPrefix(e.name, ".") {
			c.add(e.name, "loaded object")
		}
	}
}

// ifaces offers the network interfaces.
func (c *completer) ifaces() {
	ifs, err := net.Interfaces()
	if err != nil {
		return
	}
	for _, i := range ifs {
		c.add(i.Name, "interface "+strconv.Itoa(i.Index))
	}
}

// ids offers the kernel ids of the objects kind names. The list may be a
// moment old: when few ids match, each is checked to be there still, so
// that a program that has gone is not offered.
func (c *completer) ids(kind commands.ArgKind) {
	type cand struct {
		fam string
		o   bpf.ObjectName
	}
	var found []cand
	for _, fam := range families(kind) {
		for _, o := range kernelObjects(fam) {
			if strings.HasPrefix(strconv.FormatUint(uint64(o.ID), 10), c.cur) {
				found = append(found, cand{fam, o})
			}
		}
	}
	check := len(found) <= describeMax
	for _, f := range found {
		if check && !objectExists(f.fam, f.o.ID) {
			continue
		}
		c.add(strconv.FormatUint(uint64(f.o.ID), 10), strings.TrimSpace(f.o.Type+" "+familyWord[f.fam]+" "+f.o.Name))
	}
}

// objectExists reports whether the program or map id is still loaded
// (an error other than "no such id", such as EPERM, counts as there).
func objectExists(family string, id uint32) bool {
	var err error
	switch family {
	case "prog":
		var p *ebpf.Program
		if p, err = ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
			p.Close()
		}
	case "map":
		var m *ebpf.Map
		if m, err = ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
			m.Close()
		}
	}
	return !errors.Is(err, os.ErrNotExist)
}

// names offers the kernel names of the objects kind names, once each.
func (c *completer) names(kind commands.ArgKind) {
	for _, fam := range families(kind) {
		objs := kernelObjects(fam)
		count := map[string]int{}
		for _, o := range objs {
			count[o.Name]++
		}
		seen := map[string]bool{}
		for _, o := range objs {
			if o.Name == "" || seen[o.Name] {
				continue
			}
			seen[o.Name] = true
			desc := o.Type + " " + familyWord[fam] + ", id " + strconv.FormatUint(uint64(o.ID), 10)
			if n := count[o.Name]; n > 1 {
				desc = strconv.Itoa(n) + " " + familyWord[fam] + "s"
			}
			c.add(o.Name, desc)
		}
	}
}

// tags offers the tags of the loaded programs.
func (c *completer) tags() {
	seen := map[string]bool{}
	for _, o := range kernelObjects("prog") {
		if o.Tag != "" && !seen[o.Tag] {
			seen[o.Tag] = true
			c.add(o.Tag, o.Type+" program "+o.Name)
		}
	}
}

var familyWord = map[string]string{"map": "map", "prog": "program"}

// families are the kernel lists the objects of kind are found in.
func families(kind commands.ArgKind) []string {
	switch kind {
	case commands.ArgMapRef:
		return []string{"map"}
	case commands.ArgProgRef:
		return []string{"prog"}
	case commands.ArgLinkRef:
		return nil
	}
	return []string{"map", "prog"}
}

type dirEntry struct {
	name string
	dir  bool
}

// listDir reads a directory without sorting or stat'ing its entries
// (bpffs reports each entry's type), so 10,000 pins cost one getdents loop.
func listDir(dir string) []dirEntry {
	f, err := os.Open(orDot(dir))
	if err != nil {
		return nil
	}
	defer f.Close()
	ents, _ := f.ReadDir(-1)
	out := make([]dirEntry, 0, len(ents))
	for _, e := range ents {
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(orDot(dir), e.Name())); err == nil {
				isDir = fi.IsDir()
			}
		}
		out = append(out, dirEntry{name: e.Name(), dir: isDir})
	}
	return out
}

func orDot(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

// pinDesc opens the pin to say what it is ("map (hash)"), and reports
// whether it is of the kind wanted.
func pinDesc(path string, kind commands.ArgKind) (desc string, fits bool) {
	pi, err := bpf.StatPin(path)
	switch {
	case err == nil && pi.Kind == bpf.PinProg:
		return "program (" + pi.Type + ")", kind != commands.ArgMapRef && kind != commands.ArgLinkRef
	case err == nil && pi.Kind == bpf.PinMap:
		return "map (" + pi.Type + ")", kind != commands.ArgProgRef && kind != commands.ArgLinkRef
	}
	// Neither: a link, or something the kernel will not open for us.
	return "", kind != commands.ArgMapRef && kind != commands.ArgProgRef
}

// kernelCacheTTL is how long the kernel's lists are fresh: listing means
// opening every object, too slow for each keystroke with thousands loaded,
// and a second or two is fresh enough for a person typing.
const kernelCacheTTL = 2 * time.Second

// kernelList is one cached list and when it was made.
type kernelList struct {
	at         time.Time
	objs       []bpf.ObjectName
	refreshing bool
}

var kernelCache struct {
	sync.Mutex
	lists map[string]*kernelList
}

// kernelObjects lists the kernel's maps ("map") or programs ("prog"). The
// first call waits for the list; later ones get the last list at once and,
// when it is older than kernelCacheTTL, have it remade in the background,
// so that no keystroke waits for 10,000 objects to be opened.
func kernelObjects(family string) []bpf.ObjectName {
	kernelCache.Lock()
	defer kernelCache.Unlock()
	if kernelCache.lists == nil {
		kernelCache.lists = map[string]*kernelList{}
	}
	l := kernelCache.lists[family]
	if l == nil {
		l = &kernelList{objs: listKernel(family), at: time.Now()}
		kernelCache.lists[family] = l
		return l.objs
	}
	if time.Since(l.at) >= kernelCacheTTL && !l.refreshing {
		l.refreshing = true
		go func() {
			objs := listKernel(family)
			kernelCache.Lock()
			l.objs, l.at, l.refreshing = objs, time.Now(), false
			kernelCache.Unlock()
		}()
	}
	return l.objs
}

// listKernel lists the kernel's maps ("map") or programs ("prog"); when
// bpfsh may not list them (not root), what it could list, or nothing.
func listKernel(family string) []bpf.ObjectName {
	var objs []bpf.ObjectName
	switch family {
	case "map":
		objs, _ = bpf.ListMapNames()
	case "prog":
		objs, _ = bpf.ListProgNames()
	}
	return objs
}

// warmKernelCache lists the kernel's objects in the background, so that
// the first name or id completed does not wait for it.
func warmKernelCache() {
	go func() {
		kernelObjects("map")
		kernelObjects("prog")
	}()
}
