// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bpfsh/bpfsh/bpf"
)

var netCmd = &Command{
	Name:    "net",
	Short:   "show what is attached to network devices and sockets",
	Long:    "net show lists the programs attached to the network hooks of bpfsh's network namespace, as 'bpftool net show' does: XDP programs per device with their mode, TC programs (cls_bpf filters under clsact and TCX or netkit links), and the namespace's flow dissector, plus sk_lookup programs, netfilter links, programs attached to sockmaps, and cgroup links.",
	Example: "net show dev eth0",
	Subs:    []*Command{netShowCmd, netListCmd, netAttachCmd, netDetachCmd},
}

const netShowLong = "net show prints, section by section: 'xdp' (device(ifindex), mode driver, generic or offload, program id and name, link id when attached by a link), 'tc' (cls_bpf filters as clsact/ingress or clsact/egress with the filter's name and program id; TCX and netkit links as tcx/ingress, tcx/egress, netkit/primary or netkit/peer with program and link ids), 'flow_dissector' and 'sk_lookup' (programs attached to the network namespace), 'netfilter' links, 'sockmap' (programs run by sockmaps and sockhashes) and 'cgroup' links. Programs attached to cgroups without a link are not listed; 'bpftool cgroup tree' walks every cgroup for them. With 'dev IFACE' only that device's XDP and TC programs are shown. With -j the output is bpftool's JSON."

var netShowCmd = &Command{
	Name:    "show",
	Usage:   "[dev IFACE]",
	Short:   "list XDP, TC, sockmap and cgroup attachments",
	Long:    netShowLong,
	Example: "net show dev veth0",
	Args:    []ArgKind{ArgIface},
	Run:     runNetShow,
}

var netListCmd = &Command{
	Name:    "list",
	Usage:   "[dev IFACE]",
	Short:   "the same as net show (bpftool accepts both)",
	Long:    netShowLong,
	Example: "net list",
	Args:    []ArgKind{ArgIface},
	Run:     runNetShow,
}

func runNetShow(s *Session, args []string) (Result, error) {
	iface := ""
	switch {
	case len(args) == 0:
	case len(args) == 2 && args[0] == "dev":
		iface = args[1]
	case args[0] == "dev":
		return nil, Usagef("net show dev needs one interface name, e.g. net show dev eth0")
	default:
		return nil, Usagef("unexpected %q; net show takes only 'dev IFACE'", args[0])
	}
	na, err := bpf.NetShow(iface)
	if errors.Is(err, bpf.ErrNoIface) {
		return nil, fmt.Errorf("no interface %s; 'ip link' lists them", iface)
	}
	if err != nil {
		return nil, fmt.Errorf("net show: %w", err)
	}
	return netResult(na, iface == ""), nil
}

// netResult renders attachments as bpftool's sections; all says whether
// the sections beyond xdp and tc belong (not with 'dev IFACE').
func netResult(na *bpf.NetAttachments, all bool) *Text {
	var b strings.Builder
	obj := map[string]any{}

	xdp := []any{}
	b.WriteString("xdp:\n")
	for _, x := range na.XDP {
		fmt.Fprintf(&b, "%s(%d) %s id %d", x.Ifname, x.Ifindex, x.Mode, x.ProgID)
		if x.ProgName != "" {
			fmt.Fprintf(&b, " name %s", x.ProgName)
		}
		if x.LinkID != 0 {
			fmt.Fprintf(&b, " link_id %d", x.LinkID)
		}
		b.WriteByte('\n')
		j := map[string]any{"devname": x.Ifname, "ifindex": x.Ifindex, "mode": x.Mode, "id": x.ProgID, "name": x.ProgName}
		if x.LinkID != 0 {
			j["link_id"] = x.LinkID
		}
		xdp = append(xdp, j)
	}
	obj["xdp"] = xdp

	tc := []any{}
	b.WriteString("\ntc:\n")
	for _, t := range na.TC {
		j := map[string]any{"devname": t.Ifname, "ifindex": t.Ifindex, "kind": t.Kind, "name": t.Name}
		name := t.Name
		if name == "" {
			name = t.ProgName
		}
		if t.LinkID != 0 || strings.HasPrefix(t.Kind, "tcx/") || strings.HasPrefix(t.Kind, "netkit/") {
			// A tcx program attached without a link (net attach) has none.
			fmt.Fprintf(&b, "%s(%d) %s %s prog_id %d", t.Ifname, t.Ifindex, t.Kind, name, t.ProgID)
			if t.LinkID != 0 {
				fmt.Fprintf(&b, " link_id %d", t.LinkID)
			}
			b.WriteByte('\n')
			j["prog_id"], j["link_id"] = t.ProgID, t.LinkID
		} else {
			fmt.Fprintf(&b, "%s(%d) %s %s id %d\n", t.Ifname, t.Ifindex, t.Kind, name, t.ProgID)
			j["id"], j["prog_name"], j["pref"], j["handle"] = t.ProgID, t.ProgName, t.Pref, fmt.Sprintf("0x%x", t.Handle)
		}
		tc = append(tc, j)
	}
	obj["tc"] = tc
	if !all {
		return &Text{Body: b.String(), JSON: []any{obj}}
	}

	for _, hook := range []string{"flow_dissector", "sk_lookup"} {
		list := []any{}
		fmt.Fprintf(&b, "\n%s:\n", hook)
		for _, n := range na.Netns {
			if n.AttachType != hook {
				continue
			}
			fmt.Fprintf(&b, "id %d name %s", n.ProgID, n.ProgName)
			j := map[string]any{"id": n.ProgID, "name": n.ProgName}
			if n.LinkID != 0 {
				fmt.Fprintf(&b, " link_id %d", n.LinkID)
				j["link_id"] = n.LinkID
			}
			b.WriteByte('\n')
			list = append(list, j)
		}
		obj[hook] = list
	}

	nf := []any{}
	b.WriteString("\nnetfilter:\n")
	for _, l := range na.Netfilter {
		fmt.Fprintf(&b, "%s prog_id %d name %s link_id %d\n", l.Target(), l.ProgID, l.ProgName, l.ID)
		nf = append(nf, l.JSON())
	}
	obj["netfilter"] = nf

	sm := []any{}
	b.WriteString("\nsockmap:\n")
	for _, a := range na.Sockmap {
		fmt.Fprintf(&b, "map %d (%s) %s prog_id %d name %s", a.MapID, a.MapName, a.AttachType, a.ProgID, a.ProgName)
		j := map[string]any{"map_id": a.MapID, "map_name": a.MapName, "attach_type": a.AttachType, "prog_id": a.ProgID, "name": a.ProgName}
		if a.LinkID != 0 {
			fmt.Fprintf(&b, " link_id %d", a.LinkID)
			j["link_id"] = a.LinkID
		}
		b.WriteByte('\n')
		sm = append(sm, j)
	}
	obj["sockmap"] = sm

	cg := []any{}
	b.WriteString("\ncgroup:\n")
	for _, l := range na.Cgroup {
		fmt.Fprintf(&b, "%s prog_id %d name %s link_id %d\n", l.Target(), l.ProgID, l.ProgName, l.ID)
		cg = append(cg, l.JSON())
	}
	b.WriteString("# programs attached to cgroups without a link: bpftool cgroup tree\n")
	obj["cgroup"] = cg
	return &Text{Body: b.String(), JSON: []any{obj}}
}
