// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// lastPacket is the packet the expect form op checks: the last run's
// output, or the packet the last "packet" command showed.
func lastPacket(s *Session, op string) (data []byte, layers []packet.Layer, err error) {
	if r, ok := runOf(s.Last); ok {
		if r.Outcome.DataOut == nil {
			return nil, nil, expectFailf("%s: the last run (a %s program) has no output packet", op, r.Outcome.TypeName)
		}
		return r.Outcome.DataOut, r.Outcome.LayersOut, nil
	}
	if t, ok := s.Last.(*Text); ok {
		if v, ok := t.JSON.(*PacketView); ok && v.Packet != nil {
			return v.Packet.Data, v.Layers, nil
		}
	}
	return nil, nil, expectFailf("%s: there is no packet to check: the last command that succeeded neither ran a program nor showed a packet", op)
}

func expectPacket(s *Session, args []string) error {
	const op = "expect packet"
	if len(args) == 0 {
		return Usagef("%s needs the packet expected: %s", op, packetForms)
	}
	want, err := packet.Expected(args, s.Vars)
	if err != nil {
		var pe *packet.Error
		if errors.As(err, &pe) {
			return &exprError{usage: &UsageError{Msg: op + ": " + err.Error()}, expr: pe}
		}
		return Usagef("%s: %v", op, err)
	}
	_, got, err := lastPacket(s, op)
	if err != nil {
		return err
	}
	ms := packet.Match(want, got)
	if len(ms) == 0 {
		return nil
	}
	msg := op + ": " + ms[0].String()
	if len(ms) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(ms)-1)
	}
	return &ExpectError{Msg: msg, Diff: MatchDiff(got, ms)}
}

// MatchDiff shows a packet layer by layer with what Match found wrong
// marked '*': a field that differs as "got, want W", a layer that is
// another as "(want W)", and layers the packet lacks at the end.
func MatchDiff(got []packet.Layer, ms []packet.Mismatch) string {
	fieldWant := map[int]map[string]packet.Mismatch{}
	layerWant := map[int]packet.Mismatch{}
	for _, m := range ms {
		if m.Field == "" {
			layerWant[m.Layer] = m
			continue
		}
		if fieldWant[m.Layer] == nil {
			fieldWant[m.Layer] = map[string]packet.Mismatch{}
		}
		fieldWant[m.Layer][strings.ToLower(m.Field)] = m
	}
	var b strings.Builder
	for i, l := range got {
		wrong := fieldWant[i]
		switch m, ok := layerWant[i]; {
		case ok:
			fmt.Fprintf(&b, "* %s (want %s)\n", l.Name, m.Want)
		case len(wrong) > 0:
			fmt.Fprintf(&b, "* %s\n", l.Name)
		default:
			fmt.Fprintf(&b, "  %s\n", l.Name)
		}
		seen := map[string]bool{}
		for _, f := range l.Fields {
			value := f.Value
			if f.Note != "" {
				value += " (" + f.Note + ")"
			}
			if m, ok := wrong[strings.ToLower(f.Name)]; ok {
				fmt.Fprintf(&b, "*   %-8s %s, want %s\n", f.Name, value, m.Want)
				seen[strings.ToLower(f.Name)] = true
				continue
			}
			fmt.Fprintf(&b, "    %-8s %s\n", f.Name, value)
		}
		// Decoders leave out fields that are zero; Match compares those
		// with the zero value, which it reports as got.
		for _, m := range ms {
			if m.Layer == i && m.Field != "" && !seen[strings.ToLower(m.Field)] {
				fmt.Fprintf(&b, "*   %-8s %s, want %s\n", m.Field, m.Got, m.Want)
			}
		}
	}
	for i := len(got); ; i++ {
		m, ok := layerWant[i]
		if !ok {
			break
		}
		fmt.Fprintf(&b, "- %s (wanted; the packet ends before it)\n", m.Want)
	}
	return strings.TrimRight(b.String(), "\n")
}

func expectPayload(s *Session, args []string) error {
	const op = "expect payload"
	text, err := containsArg(op, args)
	if err != nil {
		return err
	}
	var payloads [][]byte
	if r, ok := runOf(s.Last); ok && r.Outcome.Live != nil {
		for _, a := range r.Outcome.Live.Arrivals {
			payloads = append(payloads, a.Data)
		}
		for _, p := range payloads {
			if bytes.Contains(p, []byte(text)) {
				return nil
			}
		}
		if len(payloads) == 0 {
			return expectFailf("%s: want %q; nothing arrived on any socket (%s)", op, text, r.Outcome.Live.Summary)
		}
		return expectFailf("%s: want %q; what arrived was %s", op, text, quoteBytes(bytes.Join(payloads, []byte(" | ")), 96))
	}
	data, layers, err := lastPacket(s, op)
	if err != nil {
		return err
	}
	p := Payload(data, layers)
	if bytes.Contains(p, []byte(text)) {
		return nil
	}
	return expectFailf("%s: want %q in the %d-byte payload %s", op, text, len(p), quoteBytes(p, 96))
}

// Payload is what expect payload searches: the bytes of the packet's Raw
// layers (what follows the last header decoded), or all of data when no
// layer is Raw.
func Payload(data []byte, layers []packet.Layer) []byte {
	var out []byte
	found := false
	for _, l := range layers {
		if l.Name == "Raw" && l.Offset+l.Len <= len(data) {
			out = append(out, data[l.Offset:l.Offset+l.Len]...)
			found = true
		}
	}
	if !found {
		return data
	}
	return out
}

// quoteBytes is b as a quoted Go string, cut at n bytes.
func quoteBytes(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
