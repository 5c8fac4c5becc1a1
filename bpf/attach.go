// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attaching as bpftool does
//
// "bpftool net attach" and "bpftool prog attach" attach without a link:
// XDP through netlink (IFLA_XDP), tcx and the socket-map and flow
// dissector hooks with BPF_PROG_ATTACH. Such an attachment needs no pin
// and no process to hold it: it stays until it is detached (or the device
// or map goes). NetAttach, NetDetach, ProgAttach and ProgDetach do the
// same, so that what bpfsh attaches bpftool sees and can detach, and the
// other way round.

// NetAttachTypes are the hooks of "net attach", as bpftool names them.
var NetAttachTypes = []string{"xdp", "xdpgeneric", "xdpdrv", "xdpoffload", "tcx_ingress", "tcx_egress"}

// xdpModeFlags are the IFLA_XDP flags of each XDP attach type.
var xdpModeFlags = map[string]int{
	"xdp":        0, // the driver's mode when it has one, else generic
	"xdpgeneric": unix.XDP_FLAGS_SKB_MODE,
	"xdpdrv":     unix.XDP_FLAGS_DRV_MODE,
	"xdpoffload": unix.XDP_FLAGS_HW_MODE,
}

// tcxAttach are the attach types of the tcx hooks.
var tcxAttach = map[string]ebpf.AttachType{
	"tcx_ingress": ebpf.AttachTCXIngress,
	"tcx_egress":  ebpf.AttachTCXEgress,
}

// NetAttach attaches prog to the hook kind (one of NetAttachTypes) of the
// device iface. An XDP program already on the device is replaced only
// with overwrite; tcx hooks hold several programs, and the new one runs
// last.
func NetAttach(kind string, prog *ebpf.Program, iface string, overwrite bool) error {
	dev, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("no device %s: %w; 'ip link' lists them", iface, err)
	}
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("read the program's info: %w", err)
	}
	if flags, ok := xdpModeFlags[kind]; ok {
		if info.Type != ebpf.XDP {
			return fmt.Errorf("%s takes an XDP program; %s is of type %s", kind, info.Name, typeNameOf(info.Type))
		}
		if !overwrite {
			flags |= unix.XDP_FLAGS_UPDATE_IF_NOEXIST
		}
		err := netlink.LinkSetXdpFdWithFlags(dev, prog.FD(), flags)
		switch {
		case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
			return fmt.Errorf("%s already runs an XDP program%s; add 'overwrite' to replace it, or 'net detach %s dev %s' first", iface, attachedXDP(iface), kind, iface)
		case errors.Is(err, unix.EOPNOTSUPP) && kind == "xdpdrv":
			return fmt.Errorf("the driver of %s has no native XDP; use xdpgeneric", iface)
		case errors.Is(err, unix.EINVAL) && kind == "xdpoffload":
			return fmt.Errorf("%s cannot offload XDP programs (and the program would have to be loaded for the device)", iface)
		case err != nil:
			return fmt.Errorf("attach %s to %s (%s): %w", info.Name, iface, kind, err)
		}
		return nil
	}
	at, ok := tcxAttach[kind]
	if !ok {
		return fmt.Errorf("unknown attach type %q; one of %s", kind, strings.Join(NetAttachTypes, ", "))
	}
	if info.Type != ebpf.SchedCLS && info.Type != ebpf.SchedACT {
		return fmt.Errorf("%s takes a TC (sched_cls) program; %s is of type %s", kind, info.Name, typeNameOf(info.Type))
	}
	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: dev.Attrs().Index, Program: prog, Attach: at})
	switch {
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s already runs on %s %s", info.Name, iface, kind)
	case errors.Is(err, unix.EINVAL) && !kernelAtLeast(6, 6):
		return fmt.Errorf("this kernel has no tcx hooks (they came in Linux 6.6); attach TC programs with 'cache attach' or tc(8)'s clsact")
	case err != nil:
		return fmt.Errorf("attach %s to %s (%s): %w", info.Name, iface, kind, err)
	}
	return nil
}

// attachedXDP is " (id N)" for the XDP program on iface, or "".
func attachedXDP(iface string) string {
	na, err := NetShow(iface)
	if err != nil {
		return ""
	}
	for _, x := range na.XDP {
		name := ""
		if x.ProgName != "" {
			name = ", " + x.ProgName
		}
		return fmt.Sprintf(" (id %d%s, %s)", x.ProgID, name, x.Mode)
	}
	return ""
}

// NetDetach takes the programs off the hook kind of iface that were
// attached without a link (links are detached by closing or unpinning
// them): the XDP program, or every tcx program attached so, or only prog
// when it is not nil. It returns the ids of the programs it detached.
func NetDetach(kind, iface string, prog *ebpf.Program) ([]uint32, error) {
	dev, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("no device %s: %w; 'ip link' lists them", iface, err)
	}
	if flags, ok := xdpModeFlags[kind]; ok {
		na, err := NetShow(iface)
		if err != nil {
			return nil, err
		}
		var ids []uint32
		for _, x := range na.XDP {
			if x.LinkID != 0 {
				return nil, fmt.Errorf("the XDP program on %s (id %d) is attached by link %d: 'link show id %d', and remove its pin to detach it", iface, x.ProgID, x.LinkID, x.LinkID)
			}
			mode := flags
			if kind == "xdp" {
				// Detach in the mode it runs in.
				switch x.Mode {
				case "generic":
					mode = unix.XDP_FLAGS_SKB_MODE
				case "driver":
					mode = unix.XDP_FLAGS_DRV_MODE
				case "offload":
					mode = unix.XDP_FLAGS_HW_MODE
				}
			}
			if err := netlink.LinkSetXdpFdWithFlags(dev, -1, mode); err != nil {
				return ids, fmt.Errorf("detach the XDP program from %s: %w", iface, err)
			}
			ids = append(ids, x.ProgID)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%s runs no XDP program", iface)
		}
		return ids, nil
	}
	at, ok := tcxAttach[kind]
	if !ok {
		return nil, fmt.Errorf("unknown attach type %q; one of %s", kind, strings.Join(NetAttachTypes, ", "))
	}
	q, err := link.QueryPrograms(link.QueryOptions{Target: dev.Attrs().Index, Attach: at})
	if err != nil {
		return nil, fmt.Errorf("list the programs on %s %s: %w", iface, kind, err)
	}
	var want ebpf.ProgramID
	if prog != nil {
		info, err := prog.Info()
		if err != nil {
			return nil, err
		}
		want, _ = info.ID()
	}
	var ids []uint32
	linked := 0
	for _, ap := range q.Programs {
		if want != 0 && ap.ID != want {
			continue
		}
		if _, isLink := ap.LinkID(); isLink {
			linked++
			continue
		}
		p, err := ebpf.NewProgramFromID(ap.ID)
		if err != nil {
			continue // gone meanwhile
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: dev.Attrs().Index, Program: p, Attach: at})
		p.Close()
		if err != nil {
			return ids, fmt.Errorf("detach program %d from %s %s: %w", ap.ID, iface, kind, err)
		}
		ids = append(ids, uint32(ap.ID))
	}
	if len(ids) == 0 {
		msg := fmt.Sprintf("no program is attached to %s %s without a link", iface, kind)
		if linked > 0 {
			msg += fmt.Sprintf(" (%d by links: 'link list' shows them; remove a link's pin to detach it)", linked)
		}
		return nil, errors.New(msg)
	}
	return ids, nil
}

// ProgAttachTypes are the attach types of "prog attach", as bpftool
// names them: socket-map hooks, which need the map, and the flow
// dissector of the network namespace.
var ProgAttachTypes = []string{"sk_msg_verdict", "sk_skb_verdict", "sk_skb_stream_verdict", "sk_skb_stream_parser", "flow_dissector"}

var progAttach = map[string]ebpf.AttachType{
	"sk_msg_verdict":        ebpf.AttachSkMsgVerdict,
	"sk_skb_verdict":        ebpf.AttachSkSKBVerdict,
	"sk_skb_stream_verdict": ebpf.AttachSkSKBStreamVerdict,
	"sk_skb_stream_parser":  ebpf.AttachSkSKBStreamParser,
	"flow_dissector":        ebpf.AttachFlowDissector,
}

// ProgAttachNeedsMap reports whether attach type kind attaches to a map.
func ProgAttachNeedsMap(kind string) bool { return kind != "flow_dissector" }

// ProgAttach attaches prog to the hook kind (one of ProgAttachTypes): of
// the sockmap or sockhash m, or of this network namespace for the flow
// dissector (m nil). Detach undoes it.
func ProgAttach(kind string, prog *ebpf.Program, m *ebpf.Map, detach bool) error {
	at, ok := progAttach[kind]
	if !ok {
		return fmt.Errorf("unknown attach type %q; one of %s", kind, strings.Join(ProgAttachTypes, ", "))
	}
	target := 0
	if m != nil {
		target = m.FD()
		// A map of another type gives EOPNOTSUPP or EINVAL; say why.
		if mi, err := m.Info(); err == nil && !slices.Contains([]ebpf.MapType{ebpf.SockMap, ebpf.SockHash}, mi.Type) {
			return fmt.Errorf("%s attaches to a sockmap or sockhash; map %s is a %s", kind, mi.Name, MapTypeName(uint32(mi.Type)))
		}
	}
	if detach {
		err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: target, Program: prog, Attach: at})
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("the program is not attached there as %s", kind)
		}
		return err
	}
	err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: target, Program: prog, Attach: at})
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("the kernel refused %s here (EINVAL): is the program's type and expected attach type %s?", kind, kind)
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.EBUSY):
		return fmt.Errorf("another program is attached there as %s; detach it first", kind)
	}
	return err
}

// IfaceExists reports whether the device iface exists here.
func IfaceExists(iface string) bool {
	_, err := net.InterfaceByName(iface)
	return err == nil
}

func typeNameOf(t ebpf.ProgramType) string { return ProgTypeName(uint32(t)) }
