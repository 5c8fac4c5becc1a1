// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Objects held open across consecutive runs
//
// A script of `run` lines opens the same pinned program and the same maps
// on every line: BPF_OBJ_GET and an info call for the program, a
// BPF_MAP_GET_FD_BY_ID per map it writes, and as many close(2)s, about a
// fifth of a small run's cost. A Held keeps them open from one run to the
// next instead. What must not change because of it:
//
//   - the program a path names: every Program call stats the pin, and a
//     held program is used only while the path still has the bpffs inode
//     it had when it was opened (a new pin is a new inode, and bpffs does
//     not reuse inode numbers within a boot); a changed or missing pin
//     releases everything held and opens the path afresh;
//   - the maps an id names: ids are never reused, so a held fd always
//     names the map of that id;
//   - when objects are freed: a held fd keeps its program or map alive.
//     Only what a held program uses is held, and the session releases all
//     of it before any command other than a run (unload above all), at the
//     end of a script, and before it waits for a line from a terminal or a
//     pipe: nothing bpfsh holds outlives the run of lines it sped up.
//
// A Held belongs to one session and is used by one command at a time; its
// lock only guards against misuse.

// Held keeps a session's pinned programs and their maps' fds open between
// runs until Release. The zero value is ready to use; a nil *Held holds
// nothing (Program opens the program for the caller to close).
type Held struct {
	mu    sync.Mutex
	progs map[string]*heldProg
	maps  map[ebpf.MapID]int
}

type heldProg struct {
	key  pinnedProgKey
	prog *ebpf.Program
	id   ebpf.ProgramID
}

// HeldProgram is a program Held.Program opened or found held.
type HeldProgram struct {
	// Prog is the program. Close it with Done, not Prog.Close.
	Prog *ebpf.Program
	// ID is its id when known (0 otherwise).
	ID ebpf.ProgramID
	// Held says Prog stays open after Done: its maps' fds may be held too.
	Held bool
}

// Done closes p's program unless h holds it.
func (p *HeldProgram) Done() {
	if p != nil && !p.Held && p.Prog != nil {
		p.Prog.Close()
	}
}

// Program opens the one program ref names, as bpf.Program does; a pinned
// program is held open for the next call, which then costs one stat(2).
func (h *Held) Program(ref Ref) (*HeldProgram, error) {
	if h == nil || ref.Kind != RefPinned {
		p, err := Program(ref)
		if err != nil {
			return nil, err
		}
		return &HeldProgram{Prog: p}, nil
	}
	path := ref.Value
	var st unix.Stat_t
	statErr := unix.Stat(path, &st)
	key := pinnedProgKey{uint64(st.Dev), st.Ino}
	h.mu.Lock()
	hp := h.progs[path]
	h.mu.Unlock()
	if hp != nil && statErr == nil && hp.key == key {
		return &HeldProgram{Prog: hp.prog, ID: hp.id, Held: true}, nil
	}
	if hp != nil {
		// The pin went or names another program now: whatever was held
		// for the old one goes (its maps may be freed only then).
		h.Release()
	}
	p, err := Program(ref)
	if err != nil || statErr != nil {
		return &HeldProgram{Prog: p}, err
	}
	// The inode is read again after opening: a pin replaced between the
	// stat and the open must not be held under the old inode.
	var again unix.Stat_t
	if unix.Stat(path, &again) != nil || again.Dev != st.Dev || again.Ino != st.Ino {
		return &HeldProgram{Prog: p}, nil
	}
	info, err := p.Info()
	if err != nil {
		return &HeldProgram{Prog: p}, nil
	}
	id, _ := info.ID()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.progs == nil {
		h.progs = map[string]*heldProg{}
	}
	if len(h.progs) >= maxHeldProgs {
		// A script over many programs: hold none rather than many.
		return &HeldProgram{Prog: p, ID: id}, nil
	}
	h.progs[path] = &heldProg{key: key, prog: p, id: id}
	return &HeldProgram{Prog: p, ID: id, Held: true}, nil
}

// maxHeldProgs bounds the programs one session holds at once.
const maxHeldProgs = 16

// MapFD returns an fd for map id, held until Release: open opens it the
// first time. The caller must not close it.
func (h *Held) MapFD(id ebpf.MapID, open func(ebpf.MapID) (int, error)) (int, error) {
	h.mu.Lock()
	fd, ok := h.maps[id]
	h.mu.Unlock()
	if ok {
		return fd, nil
	}
	fd, err := open(id)
	if err != nil {
		return -1, err
	}
	h.mu.Lock()
	if h.maps == nil {
		h.maps = map[ebpf.MapID]int{}
	}
	h.maps[id] = fd
	h.mu.Unlock()
	return fd, nil
}

// Holding says whether h holds anything.
func (h *Held) Holding() bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.progs) > 0 || len(h.maps) > 0
}

// Release closes everything h holds.
func (h *Held) Release() {
	if h == nil {
		return
	}
	h.mu.Lock()
	progs, maps := h.progs, h.maps
	h.progs, h.maps = nil, nil
	h.mu.Unlock()
	for _, p := range progs {
		p.prog.Close()
	}
	for _, fd := range maps {
		unix.Close(fd)
	}
}
