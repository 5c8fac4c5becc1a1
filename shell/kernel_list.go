package shell

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// This file lists the kernel's maps and programs with bare bpf(2) calls:
// three per object (next id, fd by id, info). cilium/ebpf's Map.Info also
// reads /proc/self/fdinfo, which makes listing 10,000 maps four times
// slower, too slow for completion.

// bpfMapInfo is the start of the kernel's struct bpf_map_info, up to the
// BTF type ids. The kernel fills in as much as info_len asks for.
type bpfMapInfo struct {
	Type                  uint32
	ID                    uint32
	KeySize               uint32
	ValueSize             uint32
	MaxEntries            uint32
	MapFlags              uint32
	Name                  [unix.BPF_OBJ_NAME_LEN]byte
	Ifindex               uint32
	BTFVmlinuxValueTypeID uint32
	NetnsDev              uint64
	NetnsIno              uint64
	BTFID                 uint32
	BTFKeyTypeID          uint32
	BTFValueTypeID        uint32
	BTFVmlinuxID          uint32
}

// bpfProgInfo is the start of struct bpf_prog_info, up to the name.
type bpfProgInfo struct {
	Type            uint32
	ID              uint32
	Tag             [unix.BPF_TAG_SIZE]byte
	JitedProgLen    uint32
	XlatedProgLen   uint32
	JitedProgInsns  uint64
	XlatedProgInsns uint64
	LoadTime        uint64
	CreatedByUID    uint32
	NrMapIDs        uint32
	MapIDs          uint64
	Name            [unix.BPF_OBJ_NAME_LEN]byte
}

// objInfoAttr is union bpf_attr for BPF_OBJ_GET_INFO_BY_FD. info is an
// unsafe.Pointer (not a uintptr) so that the garbage collector keeps the
// buffer alive and in place during the call; the kernel reads a u64, which
// this is on the 64-bit machines bpfsh runs on.
type objInfoAttr struct {
	fd      uint32
	infoLen uint32
	info    unsafe.Pointer
}

// idAttr is union bpf_attr for the *_GET_NEXT_ID and *_GET_FD_BY_ID commands.
type idAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpfCall(cmd int, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// objInfo fills info (a *bpfMapInfo or *bpfProgInfo) for the object fd.
func objInfo(fd int, info unsafe.Pointer, size uintptr) error {
	attr := objInfoAttr{fd: uint32(fd), infoLen: uint32(size), info: info}
	_, err := bpfCall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// eachID calls fn with an open fd for every object the next-id command
// walks; objects unloaded meanwhile are skipped.
func eachID(nextCmd, fdCmd int, fn func(id uint32, fd int)) {
	for id := uint32(0); ; {
		attr := idAttr{id: id}
		if _, err := bpfCall(nextCmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
			return // ENOENT: no more (EPERM: not root, nothing to show)
		}
		id = attr.nextID
		get := idAttr{id: id}
		fd, err := bpfCall(fdCmd, unsafe.Pointer(&get), unsafe.Sizeof(get))
		if err != nil {
			continue
		}
		fn(id, int(fd))
		unix.Close(int(fd))
	}
}

// listKernel lists the kernel's maps ("map") or programs ("prog").
func listKernel(family string) []kernelObject {
	var objs []kernelObject
	switch family {
	case "map":
		eachID(unix.BPF_MAP_GET_NEXT_ID, unix.BPF_MAP_GET_FD_BY_ID, func(id uint32, fd int) {
			var info bpfMapInfo
			if objInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)) == nil {
				objs = append(objs, kernelObject{id: id, name: cString(info.Name[:]), typ: strings.ToLower(ebpf.MapType(info.Type).String())})
			}
		})
	case "prog":
		eachID(unix.BPF_PROG_GET_NEXT_ID, unix.BPF_PROG_GET_FD_BY_ID, func(id uint32, fd int) {
			var info bpfProgInfo
			if objInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)) == nil {
				objs = append(objs, kernelObject{id: id, name: cString(info.Name[:]), typ: strings.ToLower(ebpf.ProgramType(info.Type).String()), tag: hex.EncodeToString(info.Tag[:])})
			}
		})
	}
	return objs
}

// mapBTFTypeIDs asks the kernel for the BTF type ids of a map's key and
// value. cilium/ebpf's MapInfo does not expose them (v0.22).
func mapBTFTypeIDs(fd int) (key, value uint32, err error) {
	var info bpfMapInfo
	if err := objInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
		return 0, 0, fmt.Errorf("get map info: %w", err)
	}
	return info.BTFKeyTypeID, info.BTFValueTypeID, nil
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
