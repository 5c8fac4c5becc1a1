// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

// infoCache keeps each program's info by id. cilium/ebpf's Program.Info
// copies the instruction stream and reads /proc/self/fdinfo: about a
// quarter of a small run's cost in a script of runs. What Run reads of it
// (type, name, maps, BTF) does not change while the program lives, and
// program ids are not reused.
var infoCache struct {
	sync.Mutex
	m map[ebpf.ProgramID]*ebpf.ProgramInfo
}

// maxInfoCache bounds infoCache; past it the cache starts over.
const maxInfoCache = 256

// programInfo is prog.Info(), read once per program. id, when not 0, is
// the program's id as the caller knows it (a program it holds open).
func programInfo(prog *ebpf.Program, id ebpf.ProgramID) (*ebpf.ProgramInfo, error) {
	var err error
	if id == 0 {
		if id, err = programID(prog.FD()); err != nil {
			return prog.Info()
		}
	}
	infoCache.Lock()
	info := infoCache.m[id]
	infoCache.Unlock()
	if info != nil {
		return info, nil
	}
	if info, err = prog.Info(); err != nil {
		return nil, err
	}
	infoCache.Lock()
	if infoCache.m == nil || len(infoCache.m) >= maxInfoCache {
		infoCache.m = map[ebpf.ProgramID]*ebpf.ProgramInfo{}
	}
	infoCache.m[id] = info
	infoCache.Unlock()
	return info, nil
}

// programID reads the id of the program behind fd: the first two fields
// of struct bpf_prog_info (the kernel copies as much as it is asked for).
func programID(fd int) (ebpf.ProgramID, error) {
	head := new(struct{ Type, ID uint32 })
	var pin runtime.Pinner
	pin.Pin(head)
	defer pin.Unpin()
	attr := struct {
		FD, Len uint32
		Info    uint64
	}{uint32(fd), uint32(unsafe.Sizeof(*head)), uint64(uintptr(unsafe.Pointer(head)))}
	if _, err := bpf.Syscall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return 0, err
	}
	return ebpf.ProgramID(head.ID), nil
}
