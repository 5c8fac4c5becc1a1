// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

var linkCmd = &Command{
	Name:    "link",
	Short:   "list, show and pin BPF links (programs attached to hooks)",
	Long:    "A BPF link is a program attached to a hook (an XDP or TCX device, a cgroup, a tracepoint, ...) that stays attached while the link lives. The link commands list them, show one with where it is attached, and pin one so that it outlives the process that made it.",
	Example: "link list",
	Subs:    []*Command{linkListCmd, linkShowCmd, linkPinCmd},
}

var linkListCmd = &Command{
	Name:    "list",
	Short:   "list every link",
	Long:    "link list shows every BPF link in the kernel: its id, type, the program it runs (id and name) and where it is attached, e.g. 'veth0(5) tcx_ingress' or 'cgroup 4242 cgroup_inet_egress'. With -j it prints bpftool's JSON objects.",
	Example: "link list",
	Run: func(s *Session, args []string) (Result, error) {
		if len(args) > 0 {
			return nil, Usagef("link list takes no arguments; to show one link: link show REF")
		}
		return linkTable()
	},
}

var linkShowCmd = &Command{
	Name:    "show",
	Usage:   "[REF]",
	Short:   "show one link (or all, like link list)",
	Long:    "link show REF shows one link: id, type, program, and the fields of its type (device for XDP, TCX and netkit links; cgroup id and attach type for cgroup links; tracepoint, netns, map or netfilter hook for the others). REF is 'id N', 'pinned PATH' or NAME/OBJ under the pin root; links have no names. Without REF it lists every link.",
	Example: "link show id 7",
	Args:    []ArgKind{ArgLinkRef},
	Run:     runLinkShow,
}

var linkPinCmd = &Command{
	Name:    "pin",
	Usage:   "ID|REF PATH",
	Short:   "pin a link at PATH on bpffs",
	Long:    "link pin pins a link, named by its id or a REF, at PATH so that the program stays attached after the process that attached it exits. PATH must be on a bpf file system and must not exist yet; a relative PATH is under the pin root. Nothing is left behind if pinning fails.",
	Example: "link pin 7 /sys/fs/bpf/mine/xdp_link",
	Args:    []ArgKind{ArgLinkRef, ArgPinPath},
	Run:     runLinkPin,
}

func linkTable() (Result, error) {
	links, err := bpf.ListLinks()
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: []string{"id", "type", "prog_id", "prog", "attached"}}
	js := make([]any, 0, len(links))
	for _, l := range links {
		t.Rows = append(t.Rows, []string{
			strconv.FormatUint(uint64(l.ID), 10), l.Type, idOrDash(l.ProgID), l.ProgName, l.Target(),
		})
		js = append(js, l.JSON())
	}
	t.JSON = js
	return t, nil
}

func parseLinkRef(s *Session, args []string) (bpf.Ref, []string, error) {
	return parseProgRef(s, args, true)
}

func runLinkShow(s *Session, args []string) (Result, error) {
	if len(args) == 0 {
		return linkTable()
	}
	ref, rest, err := parseLinkRef(s, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("unexpected %q after %s", rest[0], ref)
	}
	li, err := bpf.DescribeLink(ref)
	if err != nil {
		return nil, err
	}
	return linkRecord(li), nil
}

// linkRecord is one link as "link show" prints it.
func linkRecord(l *bpf.LinkInfo) *Record {
	r := &Record{JSON: l.JSON()}
	add := func(name, value string) { r.Fields = append(r.Fields, Field{name, value}) }
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	add("id", u(l.ID))
	add("type", l.Type)
	prog := u(l.ProgID)
	if l.ProgName != "" {
		prog += " (" + l.ProgName + ")"
	}
	add("prog", prog)
	dev := func() {
		name := l.Ifname
		if name == "" {
			name = "(in another network namespace)"
		}
		add("devname", name)
		add("ifindex", u(l.Ifindex))
	}
	switch l.Type {
	case "raw_tracepoint":
		add("tp_name", l.TPName)
	case "tracing":
		add("attach_type", l.AttachType)
		add("target_obj_id", u(l.TargetObjID))
		add("target_btf_id", u(l.TargetBTFID))
	case "cgroup":
		add("cgroup_id", strconv.FormatUint(l.CgroupID, 10))
		add("attach_type", l.AttachType)
	case "netns":
		add("netns_ino", u(l.NetnsIno))
		add("attach_type", l.AttachType)
	case "xdp":
		dev()
	case "tcx", "netkit":
		dev()
		add("attach_type", l.AttachType)
	case "struct_ops":
		add("map_id", u(l.MapID))
	case "sockmap":
		add("map_id", u(l.MapID))
		add("attach_type", l.AttachType)
	case "netfilter":
		add("pf", u(l.NFFamily))
		add("hook", u(l.NFHook))
		add("prio", strconv.Itoa(int(l.NFPriority)))
		add("flags", u(l.NFFlags))
	}
	return r
}

func runLinkPin(s *Session, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("link pin needs a link and a path, e.g. link pin 7 /sys/fs/bpf/mine/link")
	}
	ref, rest, err := parseLinkRef(s, args)
	if err != nil {
		return nil, err
	}
	if len(rest) != 1 {
		return nil, Usagef("link pin needs one PATH after %s", ref)
	}
	path := pinPath(s, rest[0])
	fd, err := bpf.OpenLink(ref)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	li, err := bpf.LinkInfoFD(fd)
	if err != nil {
		return nil, fmt.Errorf("pin link %s: %w", ref, err)
	}
	if err := bpf.PinFD(fd, path); err != nil {
		return nil, fmt.Errorf("pin link %s: %w", ref, err)
	}
	return &Message{
		Text: fmt.Sprintf("pinned link %d (%s, prog %d) at %s", li.ID, li.Type, li.ProgID, path),
		Data: map[string]any{"id": li.ID, "type": li.Type, "prog_id": li.ProgID, "pinned": path},
	}, nil
}
