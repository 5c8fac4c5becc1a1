// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/hex"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// rawProgInfo is struct bpf_prog_info (include/uapi/linux/bpf.h, Linux 6.x).
// The kernel accepts a shorter or longer struct than its own, so this works
// on older kernels (missing fields stay zero) and newer ones.
type rawProgInfo struct {
	Type                 uint32
	ID                   uint32
	Tag                  [8]byte
	JitedProgLen         uint32
	XlatedProgLen        uint32
	JitedProgInsns       uint64
	XlatedProgInsns      uint64
	LoadTime             uint64
	CreatedByUID         uint32
	NrMapIDs             uint32
	MapIDs               uint64
	Name                 [unix.BPF_OBJ_NAME_LEN]byte
	Ifindex              uint32
	Flags                uint32 // bit 0 (little endian): gpl_compatible
	NetnsDev             uint64
	NetnsIno             uint64
	NrJitedKsyms         uint32
	NrJitedFuncLens      uint32
	JitedKsyms           uint64
	JitedFuncLens        uint64
	BTFID                uint32
	FuncInfoRecSize      uint32
	FuncInfo             uint64
	NrFuncInfo           uint32
	NrLineInfo           uint32
	LineInfo             uint64
	JitedLineInfo        uint64
	NrJitedLineInfo      uint32
	LineInfoRecSize      uint32
	JitedLineInfoRecSize uint32
	NrProgTags           uint32
	ProgTags             uint64
	RunTimeNs            uint64
	RunCnt               uint64
	RecursionMisses      uint64
	VerifiedInsns        uint32
	AttachBTFObjID       uint32
	AttachBTFID          uint32
	_                    uint32
}

// gplCompatible reads the one-bit field after ifindex. C bit-fields start at
// the least significant bit on little-endian machines and at the most
// significant one on big-endian machines.
func (r *rawProgInfo) gplCompatible() bool {
	one := uint16(1)
	if *(*byte)(unsafe.Pointer(&one)) == 1 {
		return r.Flags&1 != 0
	}
	return r.Flags&(1<<31) != 0
}

// ProgInfo is what "prog show" tells about one program, in bpftool's terms.
type ProgInfo struct {
	ID            uint32
	Type          string // bpftool's spelling: "xdp", "sched_cls", ...
	Name          string
	Tag           string // 16 hex digits
	GPLCompatible bool
	// LoadedAt is when the program was loaded (zero if the kernel does not say).
	LoadedAt time.Time
	UID      uint32
	// BytesXlated and BytesJited are the sizes of the translated and the
	// JIT-compiled program; BytesJited is 0 when the program is not JITed.
	BytesXlated  uint32
	BytesJited   uint32
	BytesMemlock uint64
	MapIDs       []uint32
	BTFID        uint32
	// RunTimeNs and RunCnt are only counted while statistics are enabled
	// (sysctl kernel.bpf_stats_enabled=1).
	RunTimeNs       uint64
	RunCnt          uint64
	RecursionMisses uint64
	VerifiedInsns   uint32
	Ifindex         uint32 // offloaded to this device, if not zero
}

// progInfoJSON is ProgInfo in the shape and field order of "bpftool -j prog show".
type progInfoJSON struct {
	ID              uint32   `json:"id"`
	Type            string   `json:"type"`
	Name            string   `json:"name,omitempty"`
	Tag             string   `json:"tag"`
	GPLCompatible   bool     `json:"gpl_compatible"`
	RunTimeNs       *uint64  `json:"run_time_ns,omitempty"`
	RunCnt          *uint64  `json:"run_cnt,omitempty"`
	RecursionMisses uint64   `json:"recursion_misses,omitempty"`
	LoadedAt        *int64   `json:"loaded_at,omitempty"`
	UID             *uint32  `json:"uid,omitempty"`
	BytesXlated     uint32   `json:"bytes_xlated"`
	Jited           bool     `json:"jited"`
	BytesJited      uint32   `json:"bytes_jited,omitempty"`
	BytesMemlock    uint64   `json:"bytes_memlock,omitempty"`
	MapIDs          []uint32 `json:"map_ids,omitempty"`
	BTFID           uint32   `json:"btf_id,omitempty"`
}

// JSON is the program as "bpftool -j prog show" prints it.
func (pi *ProgInfo) JSON() any {
	j := progInfoJSON{
		ID: pi.ID, Type: pi.Type, Name: pi.Name, Tag: pi.Tag, GPLCompatible: pi.GPLCompatible,
		RecursionMisses: pi.RecursionMisses,
		BytesXlated:     pi.BytesXlated, Jited: pi.BytesJited > 0, BytesJited: pi.BytesJited,
		BytesMemlock: pi.BytesMemlock, MapIDs: pi.MapIDs, BTFID: pi.BTFID,
	}
	if pi.RunTimeNs != 0 {
		j.RunTimeNs, j.RunCnt = &pi.RunTimeNs, &pi.RunCnt
	}
	if !pi.LoadedAt.IsZero() {
		secs := pi.LoadedAt.Unix()
		j.LoadedAt, j.UID = &secs, &pi.UID
	}
	return j
}

// DescribeProgram returns what the kernel says about p.
func DescribeProgram(p *ebpf.Program) (*ProgInfo, error) {
	return progInfoFD(p.FD())
}

// progInfoFD reads a program's info with two bpf(2) calls (the second only
// for its map ids) and its memlock from fdinfo, as bpftool does.
func progInfoFD(fd int) (*ProgInfo, error) {
	var raw rawProgInfo
	if err := sysObjGetInfo(fd, unsafe.Pointer(&raw), unsafe.Sizeof(raw)); err != nil {
		return nil, fmt.Errorf("program info: %w", err)
	}
	pi := &ProgInfo{
		ID:              raw.ID,
		Type:            ProgTypeName(raw.Type),
		Name:            unix.ByteSliceToString(raw.Name[:]),
		Tag:             hex.EncodeToString(raw.Tag[:]),
		GPLCompatible:   raw.gplCompatible(),
		UID:             raw.CreatedByUID,
		BytesXlated:     raw.XlatedProgLen,
		BytesJited:      raw.JitedProgLen,
		BTFID:           raw.BTFID,
		RunTimeNs:       raw.RunTimeNs,
		RunCnt:          raw.RunCnt,
		RecursionMisses: raw.RecursionMisses,
		VerifiedInsns:   raw.VerifiedInsns,
		Ifindex:         raw.Ifindex,
	}
	if raw.LoadTime != 0 {
		pi.LoadedAt = bootClockToWall(raw.LoadTime)
	}
	if raw.NrMapIDs > 0 {
		ids := make([]uint32, raw.NrMapIDs)
		var raw2 rawProgInfo
		raw2.NrMapIDs = uint32(len(ids))
		raw2.MapIDs = uint64(uintptr(unsafe.Pointer(&ids[0])))
		err := sysObjGetInfo(fd, unsafe.Pointer(&raw2), unsafe.Sizeof(raw2))
		runtime.KeepAlive(ids)
		if err != nil {
			return nil, fmt.Errorf("program %d map ids: %w", raw.ID, err)
		}
		pi.MapIDs = ids[:min(int(raw2.NrMapIDs), len(ids))]
	}
	pi.BytesMemlock = sysFDInfo(fd, "memlock")[0]
	// The kernel keeps 15 characters of a name; the BTF of the program's
	// first function has all of it (bpftool prints the full name too).
	if len(pi.Name) == unix.BPF_OBJ_NAME_LEN-1 && raw.BTFID != 0 {
		if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(raw.ID)); err == nil {
			if info, err := p.Info(); err == nil {
				pi.Name = info.Name
			}
			p.Close()
		}
	}
	return pi, nil
}

// progNameByID is the name of the program with id, or "" if it is gone.
func progNameByID(id uint32) string {
	if id == 0 {
		return ""
	}
	fd, err := sysFDByID(unix.BPF_PROG_GET_FD_BY_ID, id)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	var info rawProgInfo
	if sysObjGetInfo(fd, unsafe.Pointer(&info), unsafe.Sizeof(info)) != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Name[:])
}

// bootClockToWall turns nanoseconds since boot into wall-clock time, the
// way bpftool does (whole seconds of the difference between the two clocks),
// so both print the same loaded_at.
func bootClockToWall(ns uint64) time.Time {
	var real, boot unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME, &real) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil {
		return time.Time{}
	}
	return time.Unix(real.Sec-boot.Sec+int64(ns/1e9), 0)
}

// ListPrograms describes every program loaded in the kernel, in id order.
// Programs unloaded while the list is made are left out.
func ListPrograms() ([]*ProgInfo, error) {
	var out []*ProgInfo
	err := eachID(unix.BPF_PROG_GET_NEXT_ID, unix.BPF_PROG_GET_FD_BY_ID, func(fd int) error {
		pi, err := progInfoFD(fd)
		if err != nil {
			return err
		}
		out = append(out, pi)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list programs: %w", err)
	}
	return out, nil
}
