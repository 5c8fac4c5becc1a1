// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawLinkInfo is struct bpf_link_info: a header and a union of the
// per-type details, which starts at offset 16.
type rawLinkInfo struct {
	Type, ID, ProgID, _ uint32
	Extra               [64]byte
}

// Link types with details (enum bpf_link_type).
const (
	linkRawTracepoint = 1
	linkTracing       = 2
	linkCgroup        = 3
	linkNetns         = 5
	linkXDP           = 6
	linkStructOps     = 9
	linkNetfilter     = 10
	linkTCX           = 11
	linkNetkit        = 13
	linkSockmap       = 14
)

// LinkInfo is what "link show" tells about one link. Only the fields that
// apply to the link's type are set.
type LinkInfo struct {
	ID       uint32
	Type     string // bpftool's spelling: "xdp", "tcx", "cgroup", ...
	ProgID   uint32
	ProgName string
	// AttachType is where the program hooks in ("tcx_ingress", ...).
	AttachType string
	// Ifindex and Ifname are the device of an XDP, TCX or netkit link
	// (Ifname is empty when the device is in another network namespace).
	Ifindex uint32
	Ifname  string
	// CgroupID is the cgroup of a cgroup link (its inode number in cgroupfs).
	CgroupID uint64
	// NetnsIno is the network namespace of a netns link.
	NetnsIno uint32
	// MapID is the map of a struct_ops or sockmap link.
	MapID uint32
	// TargetObjID and TargetBTFID are a tracing link's target.
	TargetObjID, TargetBTFID uint32
	// TPName is a raw tracepoint link's tracepoint.
	TPName string
	// Netfilter hook details.
	NFFamily, NFHook uint32
	NFPriority       int32
	NFFlags          uint32
}

// JSON is the link as "bpftool -j link show" prints it.
func (li *LinkInfo) JSON() any {
	type kv struct {
		k string
		v any
	}
	fields := []kv{{"id", li.ID}, {"type", li.Type}, {"prog_id", li.ProgID}}
	if li.ProgName != "" {
		fields = append(fields, kv{"prog_name", li.ProgName})
	}
	switch li.Type {
	case "raw_tracepoint":
		fields = append(fields, kv{"tp_name", li.TPName})
	case "tracing":
		fields = append(fields, kv{"attach_type", li.AttachType}, kv{"target_obj_id", li.TargetObjID}, kv{"target_btf_id", li.TargetBTFID})
	case "cgroup":
		fields = append(fields, kv{"cgroup_id", li.CgroupID}, kv{"attach_type", li.AttachType})
	case "netns":
		fields = append(fields, kv{"netns_ino", li.NetnsIno}, kv{"attach_type", li.AttachType})
	case "xdp":
		fields = append(fields, kv{"devname", li.Ifname}, kv{"ifindex", li.Ifindex})
	case "tcx", "netkit":
		fields = append(fields, kv{"devname", li.Ifname}, kv{"ifindex", li.Ifindex}, kv{"attach_type", li.AttachType})
	case "struct_ops":
		fields = append(fields, kv{"map_id", li.MapID})
	case "sockmap":
		fields = append(fields, kv{"map_id", li.MapID}, kv{"attach_type", li.AttachType})
	case "netfilter":
		fields = append(fields, kv{"pf", li.NFFamily}, kv{"hook", li.NFHook}, kv{"prio", li.NFPriority}, kv{"flags", li.NFFlags})
	}
	obj := make(orderedObject, len(fields))
	for i, f := range fields {
		obj[i] = orderedField{f.k, f.v}
	}
	return obj
}

// Target says in a few words where the link is attached, for tables:
// "veth0(5) tcx_ingress", "cgroup 4242 cgroup_inet_egress".
func (li *LinkInfo) Target() string {
	dev := func() string {
		if li.Ifname == "" {
			return fmt.Sprintf("ifindex %d", li.Ifindex)
		}
		return fmt.Sprintf("%s(%d)", li.Ifname, li.Ifindex)
	}
	switch li.Type {
	case "raw_tracepoint":
		return "tracepoint " + li.TPName
	case "tracing":
		return fmt.Sprintf("%s btf_obj %d type %d", li.AttachType, li.TargetObjID, li.TargetBTFID)
	case "cgroup":
		return fmt.Sprintf("cgroup %d %s", li.CgroupID, li.AttachType)
	case "netns":
		return fmt.Sprintf("netns %d %s", li.NetnsIno, li.AttachType)
	case "xdp":
		return dev()
	case "tcx", "netkit":
		return dev() + " " + li.AttachType
	case "struct_ops":
		return fmt.Sprintf("map %d", li.MapID)
	case "sockmap":
		return fmt.Sprintf("map %d %s", li.MapID, li.AttachType)
	case "netfilter":
		return fmt.Sprintf("pf %d hook %d prio %d", li.NFFamily, li.NFHook, li.NFPriority)
	}
	return ""
}

// LinkInfoFD reads what the kernel says about the link behind fd.
func LinkInfoFD(fd int) (*LinkInfo, error) {
	var raw rawLinkInfo
	if err := sysObjGetInfo(fd, unsafe.Pointer(&raw), unsafe.Sizeof(raw)); err != nil {
		return nil, fmt.Errorf("link info: %w", err)
	}
	tpName := ""
	if raw.Type == linkRawTracepoint {
		// The tracepoint's name comes only into a buffer we pass.
		name := make([]byte, 256)
		var again rawLinkInfo
		binary.NativeEndian.PutUint64(again.Extra[0:8], uint64(uintptr(unsafe.Pointer(&name[0]))))
		binary.NativeEndian.PutUint32(again.Extra[8:12], uint32(len(name)))
		err := sysObjGetInfo(fd, unsafe.Pointer(&again), unsafe.Sizeof(again))
		runtime.KeepAlive(name)
		if err == nil {
			tpName = unix.ByteSliceToString(name)
		}
	}
	li := &LinkInfo{ID: raw.ID, Type: LinkTypeName(raw.Type), ProgID: raw.ProgID}
	bo := binary.NativeEndian
	u32 := func(off int) uint32 { return bo.Uint32(raw.Extra[off : off+4]) }
	switch raw.Type {
	case linkRawTracepoint:
		li.TPName = tpName
	case linkTracing:
		li.AttachType, li.TargetObjID, li.TargetBTFID = AttachTypeName(u32(0)), u32(4), u32(8)
	case linkCgroup:
		li.CgroupID, li.AttachType = bo.Uint64(raw.Extra[0:8]), AttachTypeName(u32(8))
	case linkNetns:
		li.NetnsIno, li.AttachType = u32(0), AttachTypeName(u32(4))
	case linkXDP:
		li.Ifindex = u32(0)
	case linkTCX, linkNetkit:
		li.Ifindex, li.AttachType = u32(0), AttachTypeName(u32(4))
	case linkStructOps:
		li.MapID = u32(0)
	case linkSockmap:
		li.MapID, li.AttachType = u32(0), AttachTypeName(u32(4))
	case linkNetfilter:
		li.NFFamily, li.NFHook, li.NFPriority, li.NFFlags = u32(0), u32(4), int32(u32(8)), u32(12)
	}
	if li.Ifindex != 0 {
		if ifi, err := net.InterfaceByIndex(int(li.Ifindex)); err == nil {
			li.Ifname = ifi.Name
		}
	}
	li.ProgName = progNameByID(li.ProgID)
	return li, nil
}

// ListLinks describes every link in the kernel, in id order.
func ListLinks() ([]*LinkInfo, error) {
	var out []*LinkInfo
	err := eachID(unix.BPF_LINK_GET_NEXT_ID, unix.BPF_LINK_GET_FD_BY_ID, func(fd int) error {
		li, err := LinkInfoFD(fd)
		if err != nil {
			return err
		}
		out = append(out, li)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return out, nil
}

// OpenLink opens the link ref names and returns its file descriptor, which
// the caller closes. Links have ids and pins, but no names or tags.
func OpenLink(ref Ref) (int, error) {
	switch ref.Kind {
	case RefID:
		id, _ := strconv.ParseUint(ref.Value, 10, 32)
		fd, err := sysFDByID(unix.BPF_LINK_GET_FD_BY_ID, uint32(id))
		switch {
		case errors.Is(err, unix.ENOENT):
			return -1, fmt.Errorf("no link with %s; 'link list' shows the links", ref)
		case errors.Is(err, unix.EPERM):
			return -1, fmt.Errorf("link %s: %w", ref, errNotRoot)
		case err != nil:
			return -1, fmt.Errorf("link %s: %w", ref, err)
		}
		return fd, nil
	case RefPinned:
		fd, err := sysObjGet(ref.Value)
		if err != nil {
			return -1, fmt.Errorf("link %s: %w", ref, explainPinned(ref.Value, err, "link"))
		}
		kind, err := sysFDKind(fd)
		if err != nil || kind != PinLink {
			unix.Close(fd)
			if err != nil {
				return -1, fmt.Errorf("link %s: %w", ref, err)
			}
			if kind == PinProg {
				kind = "program"
			}
			return -1, fmt.Errorf("%s is a pinned %s, not a link", ref.Value, kind)
		}
		return fd, nil
	}
	return -1, fmt.Errorf("links have no %s; name a link by id or pinned path ('link list' shows them)", ref.Kind)
}

// DescribeLink returns what the kernel says about the link ref names.
func DescribeLink(ref Ref) (*LinkInfo, error) {
	fd, err := OpenLink(ref)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	li, err := LinkInfoFD(fd)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", ref, err)
	}
	return li, nil
}

// orderedObject is a JSON object whose fields keep their order, so that
// output reads like bpftool's.
type orderedObject []orderedField

type orderedField struct {
	Key   string
	Value any
}

// MarshalJSON writes the fields in order.
func (o orderedObject) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}
