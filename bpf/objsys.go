// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the few raw bpf(2) calls that cilium/ebpf does not expose
// in the shape the object commands need: opening a pin without knowing its
// kind, walking the kernel's objects by id, and BPF_OBJ_GET_INFO_BY_FD into
// our own structs (cilium/ebpf's ProgramInfo copies the whole instruction
// stream and JIT image on every call, hides gpl_compatible and the run
// statistics, and its MapInfo leaves out the BTF key and value type ids).
// The info structs themselves are in mapinfo.go, proginfo.go and links.go.
// Every raw bpf(2) call of bpfsh goes through Syscall.

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

// Syscall issues bpf(2) command cmd with attr, the command's part of union
// bpf_attr (size bytes), for the commands cilium/ebpf does not offer in the
// shape bpfsh needs (BPF_PROG_TEST_RUN with the kernel's duration,
// BPF_PROG_STREAM_READ_BY_FD). The result is the call's return value (a
// new fd, a count) or its errno as a unix.Errno. Buffers that attr points
// to must stay alive and in place until it returns (runtime.KeepAlive, or
// runtime.Pinner for heap memory).
func Syscall(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
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
	fd, err := Syscall(unix.BPF_OBJ_GET, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
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
	_, err = Syscall(unix.BPF_OBJ_PIN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	return err
}

// sysObjGetInfo fills info (size bytes) with what the kernel knows about the
// object behind fd. A struct shorter than the kernel's is fine: the kernel
// copies only what fits.
func sysObjGetInfo(fd int, info unsafe.Pointer, size uintptr) error {
	attr := sysInfoAttr{BPFFD: uint32(fd), InfoLen: uint32(size), Info: uint64(uintptr(info))}
	_, err := Syscall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// sysFDByID opens the program, map or link with id (cmd says which).
func sysFDByID(cmd int, id uint32) (int, error) {
	attr := sysGetIDAttr{ID: id}
	return Syscall(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// eachID opens every object of one kind in id order (nextCmd is
// BPF_*_GET_NEXT_ID, fdCmd BPF_*_GET_FD_BY_ID) and calls fn with a file
// descriptor that is closed when fn returns. Objects that go away between
// the two calls are skipped; EPERM becomes errNotRoot.
func eachID(nextCmd, fdCmd int, fn func(fd int) error) error {
	var id uint32
	for {
		attr := sysGetIDAttr{ID: id}
		if _, err := Syscall(nextCmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			if errors.Is(err, unix.EPERM) {
				return errNotRoot
			}
			return err
		}
		id = attr.NextID
		fd, err := sysFDByID(fdCmd, id)
		if errors.Is(err, unix.ENOENT) {
			continue // gone since we saw its id
		}
		if err != nil {
			if errors.Is(err, unix.EPERM) {
				return errNotRoot
			}
			return err
		}
		err = fn(fd)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
}

// errNotRoot explains EPERM from bpf(2).
var errNotRoot = fmt.Errorf("permission denied; run bpfsh as root (or with CAP_SYS_ADMIN): %w", os.ErrPermission)

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

// sysFDInfo reads the numbers on the lines named (e.g. "memlock") of
// /proc/self/fdinfo/FD, where the kernel puts what BPF_OBJ_GET_INFO_BY_FD
// leaves out and bpftool reads: bytes_memlock, a map's frozen state. A
// line that is missing or unreadable reads as 0.
func sysFDInfo(fd int, names ...string) []uint64 {
	values := make([]uint64, len(names))
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return values
	}
	for line := range strings.Lines(string(data)) {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if i := slices.Index(names, name); i >= 0 {
			values[i], _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return values
}
