// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/hex"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ObjectName is the little that naming a loaded map or program takes: what
// completion offers for "id", "name" and "tag".
type ObjectName struct {
	ID   uint32
	Name string // the kernel's name (at most 15 characters)
	Type string // bpftool's spelling: "percpu_hash", "sched_cls"
	Tag  string // programs only: 16 hex digits
}

// ListMapNames lists every map in the kernel, in id order, with three
// bpf(2) calls a map and nothing else: no /proc fdinfo and no BTF, which
// would make listing 10,000 maps several times slower. Maps that go away
// or cannot be described meanwhile are left out; the error (not root, for
// one) comes with whatever was listed before it.
func ListMapNames() ([]ObjectName, error) {
	var out []ObjectName
	err := eachID(unix.BPF_MAP_GET_NEXT_ID, unix.BPF_MAP_GET_FD_BY_ID, func(fd int) error {
		if info, err := mapInfoFD(fd); err == nil {
			out = append(out, ObjectName{ID: info.ID, Name: unix.ByteSliceToString(info.Name[:]), Type: MapTypeName(info.Type)})
		}
		return nil
	})
	return out, err
}

// ListProgNames is ListMapNames for programs, with their tags. Names are
// the kernel's 15 characters: the full name is in the program's BTF, which
// "prog show" reads but a listing of thousands cannot afford.
func ListProgNames() ([]ObjectName, error) {
	var out []ObjectName
	err := eachID(unix.BPF_PROG_GET_NEXT_ID, unix.BPF_PROG_GET_FD_BY_ID, func(fd int) error {
		var info rawProgInfo
		if sysObjGetInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)) == nil {
			out = append(out, ObjectName{ID: info.ID, Name: unix.ByteSliceToString(info.Name[:]), Type: ProgTypeName(info.Type), Tag: hex.EncodeToString(info.Tag[:])})
		}
		return nil
	})
	return out, err
}
