// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// MapDetails is what the kernel says about one map: bpftool's "map show"
// fields plus the BTF types of its keys and values.
type MapDetails struct {
	ID         ebpf.MapID
	Type       ebpf.MapType
	Name       string
	Flags      uint32
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Memlock    uint64
	Frozen     bool
	// BTFID is the map's BTF object (0: none); KeyTypeID and ValueTypeID
	// are type ids inside it (0: not typed).
	BTFID       btf.ID
	KeyTypeID   btf.TypeID
	ValueTypeID btf.TypeID
	// Key and Value are the BTF types of keys and values, nil when the
	// map has no BTF for them (then keys and values are shown as bytes).
	Key, Value btf.Type
	// BTFErr says why the map's BTF could not be read, when it has some
	// but Key and Value are nil all the same.
	BTFErr error
}

// rawMapInfo is struct bpf_map_info from <linux/bpf.h>, up to map_extra.
// cilium/ebpf's MapInfo leaves out btf_key_type_id and btf_value_type_id,
// which are what typing keys and values needs, so bpfsh asks for the
// struct itself. The kernel fills in at most info_len bytes, so a newer
// kernel with a longer struct is fine.
type rawMapInfo struct {
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
	_                     uint32
	MapExtra              uint64
}

// DescribeMap returns m's details, its key and value types resolved in
// the map's BTF when it has any.
func DescribeMap(m *ebpf.Map) (*MapDetails, error) {
	return describeMapFD(m.FD(), nil)
}

// describeMapFD describes the map behind fd; specs is as for ResolveTypes.
func describeMapFD(fd int, specs map[btf.ID]*btf.Spec) (*MapDetails, error) {
	d, err := mapKernelInfo(fd)
	if err != nil {
		return nil, err
	}
	fdinfo := sysFDInfo(fd, "memlock", "frozen")
	d.Memlock, d.Frozen = fdinfo[0], fdinfo[1] != 0
	d.ResolveTypes(specs)
	return d, nil
}

// ListMaps describes every map in the kernel, in id order. Maps that go
// away (or cannot be described) while the list is made are left out.
func ListMaps() ([]*MapDetails, error) {
	var out []*MapDetails
	specs := map[btf.ID]*btf.Spec{}
	err := eachID(unix.BPF_MAP_GET_NEXT_ID, unix.BPF_MAP_GET_FD_BY_ID, func(fd int) error {
		if d, err := describeMapFD(fd, specs); err == nil {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list maps: %w", err)
	}
	return out, nil
}

// MapKernelInfo is DescribeMap without what costs more than one bpf(2)
// call: Memlock and Frozen (read from /proc/self/fdinfo) and Key and Value
// (the map's BTF parsed; see ResolveTypes) stay unset. It is for callers
// that look at many maps, or at one on every keystroke.
func MapKernelInfo(m *ebpf.Map) (*MapDetails, error) {
	return mapKernelInfo(m.FD())
}

func mapKernelInfo(fd int) (*MapDetails, error) {
	raw, err := mapInfoFD(fd)
	if err != nil {
		return nil, fmt.Errorf("map info: %w", err)
	}
	return &MapDetails{
		ID:          ebpf.MapID(raw.ID),
		Type:        ebpf.MapType(raw.Type),
		Name:        unix.ByteSliceToString(raw.Name[:]),
		Flags:       raw.MapFlags,
		KeySize:     raw.KeySize,
		ValueSize:   raw.ValueSize,
		MaxEntries:  raw.MaxEntries,
		BTFID:       btf.ID(raw.BTFID),
		KeyTypeID:   btf.TypeID(raw.BTFKeyTypeID),
		ValueTypeID: btf.TypeID(raw.BTFValueTypeID),
	}, nil
}

// ResolveTypes looks d's key and value type ids up in the map's BTF and
// sets Key and Value, or BTFErr when the map has BTF that cannot be read:
// such a map is still a map, whose keys and values are then shown as bytes.
// specs, when not nil, keeps the BTF objects parsed so far by id, for
// callers that resolve the types of several maps (the maps of one program
// share one).
func (d *MapDetails) ResolveTypes(specs map[btf.ID]*btf.Spec) {
	if d.BTFID == 0 || (d.KeyTypeID == 0 && d.ValueTypeID == 0) {
		return
	}
	d.Key, d.Value, d.BTFErr = mapTypes(d.BTFID, d.KeyTypeID, d.ValueTypeID, specs)
	if d.BTFErr != nil {
		d.BTFErr = fmt.Errorf("read BTF %d of map %s: %w", d.BTFID, d.Name, d.BTFErr)
	}
}

// MapNameByID is the kernel's name of the map with id, or "" if it is gone
// (or has no name).
func MapNameByID(id uint32) string {
	fd, err := sysFDByID(unix.BPF_MAP_GET_FD_BY_ID, id)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := mapInfoFD(fd)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Name[:])
}

// mapInfoFD reads struct bpf_map_info of the map behind fd.
func mapInfoFD(fd int) (*rawMapInfo, error) {
	var raw rawMapInfo
	if err := sysObjGetInfo(fd, unsafe.Pointer(&raw), unsafe.Sizeof(raw)); err != nil {
		return nil, err
	}
	return &raw, nil
}

// mapTypes looks the key and value type ids up in BTF object id. (The
// id comes from the map's info: cilium/ebpf's Map.Handle would read
// /proc/self/fdinfo to find it again.)
func mapTypes(id btf.ID, keyID, valueID btf.TypeID, specs map[btf.ID]*btf.Spec) (key, value btf.Type, err error) {
	spec := specs[id]
	if spec == nil {
		h, err := btf.NewHandleFromID(id)
		if err != nil {
			return nil, nil, err
		}
		spec, err = HandleSpec(h)
		h.Close()
		if err != nil {
			return nil, nil, err
		}
		if specs != nil {
			specs[id] = spec
		}
	}
	if keyID != 0 {
		if key, err = spec.TypeByID(keyID); err != nil {
			return nil, nil, fmt.Errorf("key type %d: %w", keyID, err)
		}
	}
	if valueID != 0 {
		if value, err = spec.TypeByID(valueID); err != nil {
			return nil, nil, fmt.Errorf("value type %d: %w", valueID, err)
		}
	}
	return key, value, nil
}

// HandleSpec parses the types of a BTF object in the kernel. Module BTF
// only makes sense on top of vmlinux, so the kernel's types are its base.
func HandleSpec(h *btf.Handle) (*btf.Spec, error) {
	info, err := h.Info()
	if err != nil {
		return nil, err
	}
	var base *btf.Spec
	if info.IsModule() {
		if base, err = btf.LoadKernelSpec(); err != nil {
			return nil, fmt.Errorf("load vmlinux BTF for module %s: %w", info.Name, err)
		}
	}
	return h.Spec(base)
}

// MapPins walks the bpffs mounted at root and returns, for each map id,
// the paths it is pinned at (what "bpftool -f map show" prints). Objects
// that vanish or cannot be opened while walking are skipped: other
// processes pin and unpin all the time.
func MapPins(root string) map[ebpf.MapID][]string {
	pins := map[ebpf.MapID][]string{}
	filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			if de != nil && de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			return nil
		}
		m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			return nil // not a map, or gone
		}
		if raw, err := mapInfoFD(m.FD()); err == nil {
			id := ebpf.MapID(raw.ID)
			pins[id] = append(pins[id], path)
		}
		m.Close()
		return nil
	})
	return pins
}
