// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

const packetForms = `A packet is a layer expression such as Ether()/IPv4(dst=10.0.0.2)/UDP(dport=7777)/Raw("ping") (omitted fields get defaults; lengths and checksums are computed unless given; "packet layers" lists every layer and field), or hex 00 11 22 ..., or @FILE (raw bytes, or the first packet of a pcap or pcapng file), or $NAME (a packet kept with let).`

var packetCmd = &Command{
	Name:    "packet",
	Usage:   "EXPR | hex BYTES | @FILE | $NAME | layers [LAYER]",
	Short:   "build a packet and show it decoded layer by layer, with a hexdump",
	Long:    "packet builds the packet described and shows each layer with its byte range and fields (a wrong checksum or length is flagged beside its field), then a hexdump of every byte. " + packetForms + " Blanks around '/' are fine. A malformed expression is reported with the column of the mistake, counted in the expression.",
	Example: `packet Ether()/IPv4(src=10.0.0.1, dst=10.0.0.2)/TCP(dport=80, flags=SA, options=[mss=1460])/Raw("hi")`,
	Run:     runPacket,
}

var letCmd = &Command{
	Name:    "let",
	Usage:   "NAME = EXPR | hex BYTES | @FILE | $NAME",
	Short:   "keep a packet in a session variable, used as $NAME",
	Long:    "let builds a packet and keeps it in the session as $NAME, which works wherever a packet is expected (packet $NAME, run REF packet $NAME, expect packet $NAME). " + packetForms,
	Example: `let ping = Ether()/IPv4()/ICMP(type=echo-request, id=1, seq=1)/Raw("abcd")`,
	Run:     runLet,
}

// PacketView is what the packet command returns as the JSON of its
// *Text result, and what a later command (expect) can read back from
// Session.Last.
type PacketView struct {
	Length  int            `json:"length"`
	Hex     string         `json:"hex"`
	Summary string         `json:"summary"`
	Layers  []packet.Layer `json:"layers"`
	// Packet is the packet shown.
	Packet *packet.Packet `json:"-"`
}

func runPacket(s *Session, args []string) (Result, error) {
	if len(args) > 0 && args[0] == "layers" {
		return layersTable(args[1:])
	}
	if len(args) == 0 {
		return nil, Usagef("packet needs a packet: %s", packetForms)
	}
	p, err := inputPacket("packet", args, s.Vars)
	if err != nil {
		return nil, err
	}
	layers := p.Layers()
	return &Text{Body: packet.Dump(p.Data, layers), JSON: &PacketView{
		Length: len(p.Data), Hex: hex.EncodeToString(p.Data), Summary: packet.Summary(layers), Layers: layers, Packet: p,
	}}, nil
}

func runLet(s *Session, args []string) (Result, error) {
	name, rest, err := splitLet(args)
	if err != nil {
		return nil, err
	}
	p, err := inputPacket("let "+name, rest, s.Vars)
	if err != nil {
		return nil, err
	}
	if s.Vars == nil {
		s.Vars = map[string]any{}
	}
	s.Vars[name] = p
	summary := packet.Summary(p.Layers())
	return &Message{
		Text: fmt.Sprintf("$%s = %d bytes: %s", name, len(p.Data), summary),
		Data: map[string]any{"name": name, "length": len(p.Data), "summary": summary, "hex": hex.EncodeToString(p.Data)},
	}, nil
}

// splitLet reads "NAME = ...", "NAME=...", "NAME =..." or "$NAME = ...".
func splitLet(args []string) (string, []string, error) {
	var name string
	var rest []string
	switch {
	case len(args) == 0:
		return "", nil, Usagef("let needs NAME = PACKET")
	case strings.Contains(args[0], "="):
		n, first, _ := strings.Cut(args[0], "=")
		name, rest = n, args[1:]
		if first != "" {
			rest = append([]string{first}, rest...)
		}
	case len(args) > 1 && strings.HasPrefix(args[1], "="):
		name, rest = args[0], args[2:]
		if first := args[1][1:]; first != "" {
			rest = append([]string{first}, rest...)
		}
	default:
		return "", nil, Usagef("let: expected '=' after %q; write let NAME = PACKET", args[0])
	}
	name = strings.TrimPrefix(name, "$")
	if !isVarName(name) {
		return "", nil, Usagef("let: %q is not a variable name; use letters, digits and _, starting with a letter or _", name)
	}
	if len(rest) == 0 {
		return "", nil, Usagef("let %s: nothing after '='; %s", name, packetForms)
	}
	return name, rest, nil
}

func isVarName(s string) bool {
	for i, r := range s {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}

// inputPacket reads a packet from args. A malformed expression is a usage
// error that still carries the *packet.Error (for the column); a file or
// variable that cannot be read is a failure.
func inputPacket(op string, args []string, vars map[string]any) (*packet.Packet, error) {
	p, err := packet.Input(args, vars)
	if err == nil {
		return p, nil
	}
	var pe *packet.Error
	switch {
	case errors.As(err, &pe):
		return nil, &exprError{usage: &UsageError{Msg: op + ": " + err.Error()}, expr: pe}
	case len(args) > 0 && args[0] == "hex":
		return nil, Usagef("%s: %v", op, err) // mistyped bytes
	}
	return nil, fmt.Errorf("%s: %w", op, err)
}

// exprError is a malformed packet expression: a usage error (exit status
// 2) that also unwraps to the *packet.Error with its column, so the shell
// can draw a caret under the mistake.
type exprError struct {
	usage *UsageError
	expr  *packet.Error
}

func (e *exprError) Error() string   { return e.usage.Msg }
func (e *exprError) Unwrap() []error { return []error{e.usage, e.expr} }

// layersTable lists the registered layers and their fields.
func layersTable(args []string) (Result, error) {
	defs := packet.Layers()
	if len(args) > 1 {
		return nil, Usagef("packet layers takes at most one LAYER")
	}
	if len(args) == 1 {
		d := packet.Lookup(args[0])
		if d == nil {
			var names []string
			for _, d := range defs {
				names = append(names, d.Name)
			}
			return nil, Usagef("packet layers: no layer %q; layers are %s", args[0], strings.Join(names, ", "))
		}
		defs = []*packet.LayerDef{d}
	}
	t := &Table{Columns: []string{"layer", "field", "kind", "default", "description"}}
	var js []map[string]any
	for _, d := range defs {
		t.Rows = append(t.Rows, []string{d.Name, "", "", "", d.Summary})
		var fields []map[string]string
		for _, f := range d.Fields {
			def := f.DefaultText()
			if f.Next {
				def += ", or as the next layer needs"
			}
			t.Rows = append(t.Rows, []string{"", f.Name, f.Kind.String(), def, f.Help})
			fields = append(fields, map[string]string{"name": f.Name, "kind": f.Kind.String(), "default": def, "description": f.Help})
		}
		js = append(js, map[string]any{"name": d.Name, "aliases": d.Aliases, "summary": d.Summary, "fields": fields})
	}
	t.JSON = js
	return t, nil
}
