package testrun

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Reading whole maps as raw bytes. cilium/ebpf's Lookup and BatchLookup
// want Go types of the map's shape (and per-CPU slices), while a diff only
// needs keys and values as bytes of sizes known at run time, so testrun
// issues the few bpf(2) calls it needs itself.

// mapInfoRaw is struct bpf_map_info up to the fields testrun reads.
type mapInfoRaw struct {
	typ            uint32
	id             uint32
	keySize        uint32
	valueSize      uint32
	maxEntries     uint32
	mapFlags       uint32
	name           [16]byte
	ifindex        uint32
	btfVmlinuxVal  uint32
	netnsDev       uint64
	netnsIno       uint64
	btfID          uint32
	btfKeyTypeID   uint32
	btfValueTypeID uint32
	btfVmlinuxID   uint32
	mapExtra       uint64
}

// objInfoAttr is the info member of union bpf_attr.
type objInfoAttr struct {
	fd      uint32
	infoLen uint32
	info    uint64
}

// mapFDByID opens the map with id (BPF_MAP_GET_FD_BY_ID). cilium/ebpf's
// NewMapFromID also reads the map's info, twice over with fdinfo; a diff
// that reads it once itself is several times faster.
func mapFDByID(id ebpf.MapID) (int, error) {
	attr := struct {
		id, next, openFlags uint32
	}{id: uint32(id)}
	fd, err := bpfCall(cmdMapGetFDByID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, err
	}
	return int(fd), nil
}

// mapInfo reads struct bpf_map_info of the map at fd.
func mapInfo(fd int) (*mapInfoRaw, error) {
	var ps pins
	info := new(mapInfoRaw)
	attr := objInfoAttr{fd: uint32(fd), infoLen: uint32(unsafe.Sizeof(*info)), info: ps.ptr(unsafe.Pointer(info))}
	_, err := bpfCall(cmdObjGetInfoByFD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	ps.unpin()
	return info, err
}

// name is the map's name as the kernel keeps it.
func (info *mapInfoRaw) nameString() string {
	return unix.ByteSliceToString(info.name[:])
}

// mapBTFTypes returns the BTF key and value types of a map (nil when it
// has no BTF). cilium/ebpf's MapInfo does not expose btf_key_type_id and
// btf_value_type_id, so they come from BPF_OBJ_GET_INFO_BY_FD directly.
// specs caches the BTF of each id across the maps of one run.
func mapBTFTypes(info *mapInfoRaw, specs map[btf.ID]*btf.Spec) (key, value btf.Type) {
	if info.btfID == 0 {
		return nil, nil
	}
	id := btf.ID(info.btfID)
	spec, ok := specs[id]
	if !ok {
		h, err := btf.NewHandleFromID(id)
		if err == nil {
			spec, err = h.Spec(nil)
			h.Close()
		}
		if err != nil {
			spec = nil
		}
		specs[id] = spec
	}
	if spec == nil {
		return nil, nil
	}
	if info.btfKeyTypeID != 0 {
		key, _ = spec.TypeByID(btf.TypeID(info.btfKeyTypeID))
	}
	if info.btfValueTypeID != 0 {
		value, _ = spec.TypeByID(btf.TypeID(info.btfValueTypeID))
	}
	return key, value
}

// mapElemAttr is the map-element member of union bpf_attr.
type mapElemAttr struct {
	fd    uint32
	_     uint32
	key   uint64
	value uint64 // or next_key
	flags uint64
}

// mapBatchAttr is the batch member of union bpf_attr.
type mapBatchAttr struct {
	inBatch   uint64
	outBatch  uint64
	keys      uint64
	values    uint64
	count     uint32
	fd        uint32
	elemFlags uint64
	flags     uint64
}

// errTooMany is returned when a map holds more entries than asked to read.
var errTooMany = errors.New("too many entries")

// readMap returns every entry of m as key -> value bytes (values of per-CPU
// maps hold every possible CPU's value, each padded to 8 bytes), reading at
// most limit entries. It batches where the kernel can and walks the keys
// where it cannot.
func readMap(fd int, keySize, fullValueSize, limit int) (map[string][]byte, error) {
	entries, err := readMapBatch(fd, keySize, fullValueSize, limit)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, errnoENOTSUPP) {
		return readMapWalk(fd, keySize, fullValueSize, limit)
	}
	return entries, err
}

// readMapBatch reads m with BPF_MAP_LOOKUP_BATCH.
func readMapBatch(fd int, keySize, fullValueSize, limit int) (map[string][]byte, error) {
	out := map[string][]byte{}
	chunk := 256
	cursor := make([]byte, max(keySize, 4))
	first := true
	for {
		keys := make([]byte, chunk*keySize)
		values := make([]byte, chunk*fullValueSize)
		next := make([]byte, len(cursor))
		var ps pins
		attr := mapBatchAttr{outBatch: ps.addr(next), keys: ps.addr(keys), values: ps.addr(values), count: uint32(chunk), fd: uint32(fd)}
		if !first {
			attr.inBatch = ps.addr(cursor)
		}
		_, err := bpfCall(cmdMapLookupBatch, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		ps.unpin()
		if errors.Is(err, unix.ENOSPC) && chunk < 1<<16 {
			chunk *= 4 // a hash bucket holds more entries than the chunk
			continue
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
		for i := range int(attr.count) {
			out[string(keys[i*keySize:(i+1)*keySize])] = values[i*fullValueSize : (i+1)*fullValueSize]
		}
		if len(out) > limit {
			return nil, errTooMany
		}
		if errors.Is(err, unix.ENOENT) {
			return out, nil // the kernel's way of saying "that was the end"
		}
		cursor, first = next, false
	}
}

// readMapWalk reads m one key at a time (maps without batch support, such
// as LPM tries).
func readMapWalk(fd int, keySize, fullValueSize, limit int) (map[string][]byte, error) {
	out := map[string][]byte{}
	var prev []byte
	for {
		next := make([]byte, keySize)
		var ps pins
		attr := mapElemAttr{fd: uint32(fd), key: ps.addr(prev), value: ps.addr(next)}
		_, err := bpfCall(cmdMapGetNextKey, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		ps.unpin()
		if errors.Is(err, unix.ENOENT) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		value := make([]byte, fullValueSize)
		la := mapElemAttr{fd: uint32(fd), key: ps.addr(next), value: ps.addr(value)}
		_, err = bpfCall(cmdMapLookupElem, unsafe.Pointer(&la), unsafe.Sizeof(la))
		ps.unpin()
		switch {
		case err == nil:
			out[string(next)] = value
		case errors.Is(err, unix.ENOENT):
			// deleted between the two calls
		default:
			return nil, fmt.Errorf("lookup: %w", err)
		}
		if len(out) > limit {
			return nil, errTooMany
		}
		prev = next
	}
}
