// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Opening a pinned program again
//
// cilium/ebpf's LoadPinnedProgram checks that what is pinned is a program
// by reading /proc/self/fd/N's link, which costs more than the rest of
// opening it; a script of runs opens the same pin once a run. A pin that
// was seen holding a program is remembered with its bpffs inode (a new pin
// is a new inode, and bpffs does not reuse inode numbers within a boot):
// while stat says the path still has that inode, the program is opened
// with BPF_OBJ_GET alone, and its type and name must still be the ones
// remembered. Anything else goes the long way.

type pinnedProgKey struct {
	dev, ino uint64
}

type pinnedProg struct {
	key  pinnedProgKey
	typ  ebpf.ProgramType
	name string
}

var pinnedProgs struct {
	sync.Mutex
	m map[string]pinnedProg
}

const bpfObjGet = 7 // BPF_OBJ_GET

// loadPinnedProgram is ebpf.LoadPinnedProgram(path, nil), faster for a
// pin opened before.
func loadPinnedProgram(path string) (*ebpf.Program, error) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return ebpf.LoadPinnedProgram(path, nil)
	}
	key := pinnedProgKey{uint64(st.Dev), st.Ino}
	pinnedProgs.Lock()
	known, ok := pinnedProgs.m[path]
	pinnedProgs.Unlock()
	if ok && known.key == key {
		if p := openPinnedAs(path, known); p != nil {
			return p, nil
		}
	}
	p, err := ebpf.LoadPinnedProgram(path, nil)
	if err != nil {
		return nil, err
	}
	pinnedProgs.Lock()
	if pinnedProgs.m == nil || len(pinnedProgs.m) >= 256 {
		pinnedProgs.m = map[string]pinnedProg{}
	}
	pinnedProgs.m[path] = pinnedProg{key: key, typ: p.Type(), name: progName(p)}
	pinnedProgs.Unlock()
	return p, nil
}

// openPinnedAs opens path with BPF_OBJ_GET and returns the program if it
// is the one remembered, or nil.
func openPinnedAs(path string, known pinnedProg) *ebpf.Program {
	name, err := unix.BytePtrFromString(path)
	if err != nil {
		return nil
	}
	attr := struct {
		pathname  uint64
		fd, flags uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(name)))}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfObjGet, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return nil
	}
	p, err := ebpf.NewProgramFromFD(int(fd))
	if err != nil {
		unix.Close(int(fd))
		return nil
	}
	if p.Type() != known.typ || progName(p) != known.name {
		p.Close()
		return nil
	}
	return p
}

// progName is the program's type and name as cilium/ebpf read them when
// opening it ("XDP(xdp_count)"; its String adds the fd).
func progName(p *ebpf.Program) string {
	s := p.String()
	if i := strings.LastIndex(s, ")#"); i >= 0 {
		return s[:i+1]
	}
	return p.Type().String() // unnamed
}
