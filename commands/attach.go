// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bpfsh/bpfsh/bpf"
)

// net attach/detach and prog attach/detach: bpftool's verbs, attaching
// without a link so that bpftool and bpfsh see and undo each other's work.

var netAttachCmd = &Command{
	Name:  "attach",
	Usage: "xdp|xdpgeneric|xdpdrv|xdpoffload|tcx_ingress|tcx_egress REF dev IFACE [overwrite]",
	Short: "attach a program to a network device, as bpftool net attach",
	Long: "net attach attaches an XDP program (xdp: the driver's mode if it has one, else generic; xdpgeneric, xdpdrv, xdpoffload: that mode) or a TC program (tcx_ingress, tcx_egress; Linux 6.6 and later) to the device IFACE of bpfsh's network namespace, as 'bpftool net attach' does: without a link, so the attachment stays after bpfsh exits and until 'net detach' (or bpftool's) takes it off or the device goes. " +
		"A device already running an XDP program is left alone unless 'overwrite' is given; tcx hooks hold several programs and the new one runs last. 'net show dev IFACE' shows the result.",
	Example: "net attach xdp hx/hx_pong dev veth0",
	Args:    []ArgKind{ArgProgRef, ArgIface},
	Run:     runNetAttach,
}

var netDetachCmd = &Command{
	Name:  "detach",
	Usage: "xdp|xdpgeneric|xdpdrv|xdpoffload|tcx_ingress|tcx_egress dev IFACE",
	Short: "detach the program from a network device, as bpftool net detach",
	Long: "net detach takes the XDP program off the device IFACE, or every tcx program attached to its ingress or egress without a link, as 'bpftool net detach' does, and names the programs it took off. " +
		"Programs attached by a link (cache attach, link pins) are not touched: the error names the link; remove its pin to detach it.",
	Example: "net detach xdp dev veth0",
	Args:    []ArgKind{ArgIface},
	Run:     runNetDetach,
}

var progAttachCmd = &Command{
	Name:  "attach",
	Usage: "REF sk_msg_verdict|sk_skb_verdict|sk_skb_stream_verdict|sk_skb_stream_parser|flow_dissector [MAPREF]",
	Short: "attach a program to a sockmap or the flow dissector, as bpftool prog attach",
	Long: "prog attach attaches a program to a hook that is not a device's: the sk_msg and sk_skb hooks of a sockmap or sockhash (MAPREF), or the network namespace's flow dissector (no map), as 'bpftool prog attach' does. The attachment lasts as long as the map does (or the namespace), with no pin. " +
		"XDP and TC programs attach to devices with 'net attach'.",
	Example: "prog attach name verdict sk_skb_stream_verdict pinned /sys/fs/bpf/sockmap",
	Args:    []ArgKind{ArgProgRef, ArgMapRef},
	Run:     func(s *Session, args []string) (Result, error) { return runProgAttach(s, args, false) },
}

var progDetachCmd = &Command{
	Name:    "detach",
	Usage:   "REF sk_msg_verdict|sk_skb_verdict|sk_skb_stream_verdict|sk_skb_stream_parser|flow_dissector [MAPREF]",
	Short:   "detach a program from a sockmap or the flow dissector, as bpftool prog detach",
	Long:    "prog detach undoes prog attach: the same words take the program off the hook of the map (or the namespace's flow dissector).",
	Example: "prog detach name verdict sk_skb_stream_verdict pinned /sys/fs/bpf/sockmap",
	Args:    []ArgKind{ArgProgRef, ArgMapRef},
	Run:     func(s *Session, args []string) (Result, error) { return runProgAttach(s, args, true) },
}

func runNetAttach(s *Session, args []string) (Result, error) {
	if len(args) == 0 || !slices.Contains(bpf.NetAttachTypes, args[0]) {
		got := "nothing"
		if len(args) > 0 {
			got = fmt.Sprintf("%q", args[0])
		}
		return nil, Usagef("net attach needs an attach type first, one of %s; got %s", strings.Join(bpf.NetAttachTypes, ", "), got)
	}
	kind := args[0]
	ref, rest, err := parseProgRef(s, args[1:], false)
	if err != nil {
		return nil, err
	}
	if len(rest) < 2 || rest[0] != "dev" {
		return nil, Usagef("net attach %s %s needs 'dev IFACE' after the program", kind, ref)
	}
	iface, rest := rest[1], rest[2:]
	overwrite := false
	for _, w := range rest {
		if w != "overwrite" {
			return nil, Usagef("unexpected %q after dev %s; net attach takes only 'overwrite' there", w, iface)
		}
		overwrite = true
	}
	p, err := bpf.Program(ref)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	info, err := bpf.DescribeProgram(p)
	if err != nil {
		return nil, fmt.Errorf("net attach %s: %w", ref, err)
	}
	if err := bpf.NetAttach(kind, p, iface, overwrite); err != nil {
		return nil, err
	}
	return &Message{
		Text: fmt.Sprintf("attached program %d (%s) to %s %s", info.ID, info.Name, iface, kind),
		Data: map[string]any{"id": info.ID, "name": info.Name, "devname": iface, "attach_type": kind},
	}, nil
}

func runNetDetach(s *Session, args []string) (Result, error) {
	if len(args) == 0 || !slices.Contains(bpf.NetAttachTypes, args[0]) {
		return nil, Usagef("net detach needs an attach type first, one of %s", strings.Join(bpf.NetAttachTypes, ", "))
	}
	kind := args[0]
	if len(args) != 3 || args[1] != "dev" {
		return nil, Usagef("net detach %s needs 'dev IFACE' and nothing else, e.g. net detach %s dev eth0", kind, kind)
	}
	iface := args[2]
	ids, err := bpf.NetDetach(kind, iface, nil)
	if err != nil {
		return nil, err
	}
	words := make([]string, len(ids))
	for i, id := range ids {
		words[i] = fmt.Sprint(id)
	}
	noun := "program"
	if len(ids) > 1 {
		noun = "programs"
	}
	return &Message{
		Text: fmt.Sprintf("detached %s %s from %s %s", noun, strings.Join(words, ", "), iface, kind),
		Data: map[string]any{"ids": ids, "devname": iface, "attach_type": kind},
	}, nil
}

func runProgAttach(s *Session, args []string, detach bool) (Result, error) {
	verb := "prog attach"
	if detach {
		verb = "prog detach"
	}
	if len(args) == 0 {
		return nil, Usagef("%s needs a program, an attach type and (for the socket hooks) a map", verb)
	}
	ref, rest, err := parseProgRef(s, args, false)
	if err != nil {
		return nil, err
	}
	if len(rest) == 0 || !slices.Contains(bpf.ProgAttachTypes, rest[0]) {
		got := "nothing"
		if len(rest) > 0 {
			got = fmt.Sprintf("%q", rest[0])
			if slices.Contains(bpf.NetAttachTypes, rest[0]) {
				return nil, Usagef("%s programs attach to a device: net attach %s %s dev IFACE", rest[0], rest[0], ref)
			}
		}
		return nil, Usagef("%s %s needs an attach type, one of %s; got %s", verb, ref, strings.Join(bpf.ProgAttachTypes, ", "), got)
	}
	kind, rest := rest[0], rest[1:]
	var mref bpf.Ref
	if bpf.ProgAttachNeedsMap(kind) {
		if len(rest) == 0 {
			return nil, Usagef("%s %s %s needs the sockmap or sockhash after it", verb, ref, kind)
		}
		if mref, rest, err = parseMapRef(s, verb, rest); err != nil {
			return nil, err
		}
	}
	if len(rest) > 0 {
		return nil, Usagef("unexpected %q at the end of %s", rest[0], verb)
	}
	p, err := bpf.Program(ref)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	info, err := bpf.DescribeProgram(p)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", verb, ref, err)
	}
	where := "the flow dissector of this network namespace"
	data := map[string]any{"id": info.ID, "name": info.Name, "attach_type": kind}
	if bpf.ProgAttachNeedsMap(kind) {
		m, err := bpf.Map(mref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", verb, explainMapRef(mref, err))
		}
		defer m.Close()
		d, err := bpf.DescribeMap(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", verb, err)
		}
		where = fmt.Sprintf("map %d (%s) as %s", d.ID, d.Name, kind)
		data["map_id"] = d.ID
		if err := bpf.ProgAttach(kind, p, m, detach); err != nil {
			return nil, fmt.Errorf("%s %s: %w", verb, ref, err)
		}
	} else if err := bpf.ProgAttach(kind, p, nil, detach); err != nil {
		return nil, fmt.Errorf("%s %s: %w", verb, ref, err)
	}
	done := "attached"
	prep := "to"
	if detach {
		done, prep = "detached", "from"
	}
	return &Message{
		Text: fmt.Sprintf("%s program %d (%s) %s %s", done, info.ID, info.Name, prep, where),
		Data: data,
	}, nil
}
