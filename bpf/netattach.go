// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NetAttachments is what is attached to the network hooks of the current
// network namespace: what "net show" prints.
type NetAttachments struct {
	XDP []XDPAttachment
	TC  []TCAttachment
	// Netns are programs attached to the namespace itself (flow dissector,
	// sk_lookup).
	Netns []NetnsAttachment
	// Netfilter are netfilter links.
	Netfilter []*LinkInfo
	// Sockmap are programs attached to sockmaps and sockhashes.
	Sockmap []SockmapAttachment
	// Cgroup are the cgroup links. Programs attached to cgroups without a
	// link are not listed (that takes a walk over every cgroup:
	// "bpftool cgroup tree").
	Cgroup []*LinkInfo
}

// XDPAttachment is an XDP program on a device.
type XDPAttachment struct {
	Ifname   string
	Ifindex  int
	Mode     string // "driver", "generic" or "offload"
	ProgID   uint32
	ProgName string
	LinkID   uint32 // when attached through a bpf_link
}

// TCAttachment is a TC program on a device: a cls_bpf filter under a qdisc
// (Kind "clsact/ingress", "clsact/egress", or the qdisc's kind) or a TCX or
// netkit link (Kind "tcx/ingress", "tcx/egress", "netkit/primary", ...).
type TCAttachment struct {
	Ifname  string
	Ifindex int
	Kind    string
	// Name is the cls_bpf filter's name (often "FILE:[SECTION]"); for TCX
	// it is the program's name.
	Name     string
	ProgID   uint32
	ProgName string
	LinkID   uint32
	// Pref and Handle identify a cls_bpf filter ("tc filter del ... pref N handle H").
	Pref   uint16
	Handle uint32
}

// NetnsAttachment is a program attached to the network namespace.
type NetnsAttachment struct {
	AttachType string // "flow_dissector" or "sk_lookup"
	ProgID     uint32
	ProgName   string
	LinkID     uint32
}

// SockmapAttachment is a program attached to a sockmap or sockhash.
type SockmapAttachment struct {
	MapID      uint32
	MapName    string
	AttachType string // "sk_msg_verdict", "sk_skb_stream_verdict", ...
	ProgID     uint32
	ProgName   string
	LinkID     uint32
}

// ErrNoIface is returned by NetShow for a device that does not exist.
var ErrNoIface = errors.New("no such network interface")

// netDev is a network device from an RTM_GETLINK dump.
type netDev struct {
	index int
	name  string
	kind  string // "veth", "netkit", ... ("" for physical devices)
	xdp   []XDPAttachment
}

// NetShow collects what is attached to the network hooks of the calling
// thread's network namespace; with iface, only that device's XDP and TC
// programs.
func NetShow(iface string) (*NetAttachments, error) {
	devs, err := netDevices()
	if err != nil {
		return nil, err
	}
	if iface != "" {
		var keep []netDev
		for _, d := range devs {
			if d.name == iface {
				keep = append(keep, d)
			}
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrNoIface, iface)
		}
		devs = keep
	}
	links, err := ListLinks()
	if err != nil {
		return nil, err
	}
	xdpLinks := map[uint32]uint32{} // ifindex -> link id
	out := &NetAttachments{}
	for _, l := range links {
		switch l.Type {
		case "xdp":
			xdpLinks[l.Ifindex] = l.ID
		case "netfilter":
			out.Netfilter = append(out.Netfilter, l)
		case "cgroup":
			out.Cgroup = append(out.Cgroup, l)
		}
	}
	names := map[uint32]string{}
	progName := func(id uint32) string {
		n, ok := names[id]
		if !ok {
			n = progNameByID(id)
			names[id] = n
		}
		return n
	}
	for _, d := range devs {
		for _, x := range d.xdp {
			x.ProgName = progName(x.ProgID)
			if x.Mode != "offload" {
				x.LinkID = xdpLinks[uint32(d.index)]
			}
			out.XDP = append(out.XDP, x)
		}
		tc, err := devTC(d, progName)
		if err != nil {
			return nil, err
		}
		out.TC = append(out.TC, tc...)
	}
	if iface != "" {
		return out, nil
	}
	out.Netns = netnsAttachments(progName)
	out.Sockmap = sockmapAttachments(progName, links)
	return out, nil
}

// netDevices dumps the devices with their XDP state. vishvananda/netlink's
// LinkList reports one XDP program per device, but a device can run a
// generic and a driver program at once (XDP_ATTACHED_MULTI); reading
// IFLA_XDP here shows both, as bpftool does.
func netDevices() ([]netDev, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list network devices: %w", err)
	}
	var devs []netDev
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		ifi := nl.DeserializeIfInfomsg(m)
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			continue
		}
		d := netDev{index: int(ifi.Index)}
		var xdpAttr []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_IFNAME:
				d.name = unix.ByteSliceToString(a.Value)
			case unix.IFLA_LINKINFO:
				if info, err := nl.ParseRouteAttr(a.Value); err == nil {
					for _, ia := range info {
						if ia.Attr.Type == unix.IFLA_INFO_KIND {
							d.kind = unix.ByteSliceToString(ia.Value)
						}
					}
				}
			case unix.IFLA_XDP | unix.NLA_F_NESTED, unix.IFLA_XDP:
				xdpAttr = a.Value
			}
		}
		d.xdp = parseXDP(d, xdpAttr)
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].index < devs[j].index })
	return devs, nil
}

// XDP attach modes in IFLA_XDP_ATTACHED.
const (
	xdpAttachedDrv   = 1
	xdpAttachedSkb   = 2
	xdpAttachedHw    = 3
	xdpAttachedMulti = 4
)

func parseXDP(d netDev, data []byte) []XDPAttachment {
	if data == nil {
		return nil
	}
	attrs, err := nl.ParseRouteAttr(data)
	if err != nil {
		return nil
	}
	var mode uint8
	ids := map[uint16]uint32{}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_XDP_ATTACHED:
			if len(a.Value) > 0 {
				mode = a.Value[0]
			}
		case unix.IFLA_XDP_PROG_ID, unix.IFLA_XDP_DRV_PROG_ID, unix.IFLA_XDP_SKB_PROG_ID, unix.IFLA_XDP_HW_PROG_ID:
			if len(a.Value) >= 4 {
				ids[a.Attr.Type] = nl.NativeEndian().Uint32(a.Value)
			}
		}
	}
	one := func(mode string, id uint32) XDPAttachment {
		return XDPAttachment{Ifname: d.name, Ifindex: d.index, Mode: mode, ProgID: id}
	}
	switch mode {
	case xdpAttachedDrv:
		return []XDPAttachment{one("driver", ids[unix.IFLA_XDP_PROG_ID])}
	case xdpAttachedSkb:
		return []XDPAttachment{one("generic", ids[unix.IFLA_XDP_PROG_ID])}
	case xdpAttachedHw:
		return []XDPAttachment{one("offload", ids[unix.IFLA_XDP_PROG_ID])}
	case xdpAttachedMulti:
		var out []XDPAttachment
		for _, m := range []struct {
			attr uint16
			name string
		}{{unix.IFLA_XDP_SKB_PROG_ID, "generic"}, {unix.IFLA_XDP_DRV_PROG_ID, "driver"}, {unix.IFLA_XDP_HW_PROG_ID, "offload"}} {
			if id, ok := ids[m.attr]; ok {
				out = append(out, one(m.name, id))
			}
		}
		return out
	}
	return nil
}

// devTC lists the TC programs of one device: cls_bpf filters under clsact
// (and other qdiscs), then TCX and netkit links.
func devTC(d netDev, progName func(uint32) string) ([]TCAttachment, error) {
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: d.index, Name: d.name}}
	var out []TCAttachment
	addFilters := func(parent uint32, kind string) error {
		filters, err := netlink.FilterList(dev, parent)
		if err != nil {
			// No such qdisc, or the device vanished: nothing attached.
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
				return nil
			}
			return fmt.Errorf("list tc filters of %s: %w", d.name, err)
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok {
				continue
			}
			a := f.Attrs()
			out = append(out, TCAttachment{
				Ifname: d.name, Ifindex: d.index, Kind: kind, Name: bf.Name,
				ProgID: uint32(bf.Id), ProgName: progName(uint32(bf.Id)),
				Pref: a.Priority, Handle: a.Handle,
			})
		}
		return nil
	}
	if err := addFilters(netlink.HANDLE_MIN_INGRESS, "clsact/ingress"); err != nil {
		return nil, err
	}
	if err := addFilters(netlink.HANDLE_MIN_EGRESS, "clsact/egress"); err != nil {
		return nil, err
	}
	if qdiscs, err := netlink.QdiscList(dev); err == nil {
		for _, q := range qdiscs {
			switch q.Type() {
			case "clsact", "ingress", "noqueue":
				continue // clsact and ingress are covered above
			}
			if err := addFilters(q.Attrs().Handle, q.Type()); err != nil {
				return nil, err
			}
		}
	}
	hooks := []struct {
		attach ebpf.AttachType
		kind   string
	}{{ebpf.AttachTCXIngress, "tcx/ingress"}, {ebpf.AttachTCXEgress, "tcx/egress"}}
	if d.kind == "netkit" {
		hooks = append(hooks, struct {
			attach ebpf.AttachType
			kind   string
		}{ebpf.AttachNetkitPrimary, "netkit/primary"}, struct {
			attach ebpf.AttachType
			kind   string
		}{ebpf.AttachNetkitPeer, "netkit/peer"})
	}
	for _, h := range hooks {
		res, err := link.QueryPrograms(link.QueryOptions{Target: d.index, Attach: h.attach})
		if err != nil {
			continue // the kernel has no TCX (before 6.6) or netkit
		}
		for _, p := range res.Programs {
			lid, _ := p.LinkID()
			name := progName(uint32(p.ID))
			out = append(out, TCAttachment{
				Ifname: d.name, Ifindex: d.index, Kind: h.kind, Name: name,
				ProgID: uint32(p.ID), ProgName: name, LinkID: uint32(lid),
			})
		}
	}
	return out, nil
}

// netnsAttachments lists the flow dissector and sk_lookup programs of the
// calling thread's network namespace.
func netnsAttachments(progName func(uint32) string) []NetnsAttachment {
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []NetnsAttachment
	for _, h := range []struct {
		attach ebpf.AttachType
		name   string
	}{{ebpf.AttachFlowDissector, "flow_dissector"}, {ebpf.AttachSkLookup, "sk_lookup"}} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: h.attach})
		if err != nil {
			continue
		}
		for _, p := range res.Programs {
			lid, _ := p.LinkID()
			out = append(out, NetnsAttachment{AttachType: h.name, ProgID: uint32(p.ID), ProgName: progName(uint32(p.ID)), LinkID: uint32(lid)})
		}
	}
	return out
}

// Map types that hold sockets and run programs on them.
const (
	mapTypeSockmap  = 15
	mapTypeSockhash = 18
)

// sockmapAttachments asks every sockmap and sockhash which programs it runs
// (BPF_PROG_QUERY on a map works since Linux 5.19).
func sockmapAttachments(progName func(uint32) string, links []*LinkInfo) []SockmapAttachment {
	type key struct {
		mapID  uint32
		attach string
		progID uint32
	}
	linkIDs := map[key]uint32{}
	for _, l := range links {
		if l.Type == "sockmap" {
			linkIDs[key{l.MapID, l.AttachType, l.ProgID}] = l.ID
		}
	}
	var out []SockmapAttachment
	eachID(unix.BPF_MAP_GET_NEXT_ID, unix.BPF_MAP_GET_FD_BY_ID, func(fd int) error {
		info, err := mapInfoFD(fd)
		if err != nil {
			return nil
		}
		if info.Type != mapTypeSockmap && info.Type != mapTypeSockhash {
			return nil
		}
		for _, at := range []ebpf.AttachType{ebpf.AttachSkMsgVerdict, ebpf.AttachSkSKBStreamParser, ebpf.AttachSkSKBStreamVerdict, ebpf.AttachSkSKBVerdict} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: at})
			if err != nil {
				continue
			}
			atName := AttachTypeName(uint32(at))
			for _, p := range res.Programs {
				out = append(out, SockmapAttachment{
					MapID: info.ID, MapName: unix.ByteSliceToString(info.Name[:]), AttachType: atName,
					ProgID: uint32(p.ID), ProgName: progName(uint32(p.ID)),
					LinkID: linkIDs[key{info.ID, atName, uint32(p.ID)}],
				})
			}
		}
		return nil
	})
	return out
}
