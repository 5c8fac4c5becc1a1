package bpf

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the few raw bpf(2) calls that cilium/ebpf does not expose
// in the shape the object commands need: opening a pin without knowing its
// kind, and BPF_OBJ_GET_INFO_BY_FD into our own structs (cilium/ebpf's
// ProgramInfo copies the whole instruction stream and JIT image on every
// call, and hides gpl_compatible and the run statistics).

// sysObjAttr is the BPF_OBJ_GET / BPF_OBJ_PIN part of union bpf_attr.
type sysObjAttr struct {
	Pathname  uint64
	BPFFD     uint32
	FileFlags uint32
	PathFD    int32
	_         uint32
}

// sysInfoAttr is the BPF_OBJ_GET_INFO_BY_FD part of union bpf_attr.
type sysInfoAttr struct {
	BPFFD   uint32
	InfoLen uint32
	Info    uint64
}

// sysGetIDAttr is the BPF_*_GET_FD_BY_ID part of union bpf_attr.
type sysGetIDAttr struct {
	ID        uint32
	NextID    uint32
	OpenFlags uint32
}

func sysBPF(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// sysObjGet opens whatever is pinned at path (program, map or link) and
// returns a new file descriptor for it. The caller closes it.
func sysObjGet(path string) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	attr := sysObjAttr{Pathname: uint64(uintptr(unsafe.Pointer(p)))}
	fd, err := sysBPF(unix.BPF_OBJ_GET, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	return fd, err
}

// sysObjPin pins the object behind fd at path.
func sysObjPin(fd int, path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	attr := sysObjAttr{Pathname: uint64(uintptr(unsafe.Pointer(p))), BPFFD: uint32(fd)}
	_, err = sysBPF(unix.BPF_OBJ_PIN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	return err
}

// sysObjGetInfo fills info (size bytes) with what the kernel knows about the
// object behind fd. A struct shorter than the kernel's is fine: the kernel
// copies only what fits.
func sysObjGetInfo(fd int, info unsafe.Pointer, size uintptr) error {
	attr := sysInfoAttr{BPFFD: uint32(fd), InfoLen: uint32(size), Info: uint64(uintptr(info))}
	_, err := sysBPF(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// sysFDByID opens the program, map or link with id (cmd says which).
func sysFDByID(cmd int, id uint32) (int, error) {
	attr := sysGetIDAttr{ID: id}
	return sysBPF(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// sysFDKind says what kind of BPF object fd is: "prog", "map" or "link".
// bpffs keeps no type in its inodes, but every BPF object is an anonymous
// inode file whose /proc/self/fd link names its kind, so one readlink
// answers where trying each kind in turn would cost a failed syscall each.
func sysFDKind(fd int) (string, error) {
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", err
	}
	switch target {
	case "anon_inode:bpf-prog":
		return "prog", nil
	case "anon_inode:bpf-map":
		return "map", nil
	case "anon_inode:bpf_link", "anon_inode:bpf-link": // renamed in Linux 6.x
		return "link", nil
	}
	return "", fmt.Errorf("not a BPF program, map or link (%s)", target)
}

// sysFDMemlock reads the "memlock:" line of /proc/self/fdinfo/FD, which is
// where bpftool takes bytes_memlock from.
func sysFDMemlock(fd int) (uint64, bool) {
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "memlock:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
