// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// maxPinnedMapChanges and maxPinnedTraceLines bound what Pin writes after
// one run: a suite pins the run, it does not copy a dump.
const (
	maxPinnedMapChanges = 8
	maxPinnedTraceLines = 4
)

// Pin returns expect lines, as words, that hold for res, the result of the
// command cmd (its full name, e.g. "map lookup") run with args: what
// record writes after each command so that replaying the recording checks
// the same results. A word that is an expect TEXT is already escaped (see
// Escape) and holds no double quote.
//
//   - a run: its return value, its whole output packet (every field of
//     every layer, checksums included: the same input through the same
//     program gives the same bytes), each map entry it changed as the map
//     holds it now, and its first trace lines;
//   - map lookup, update and delete: what the map holds under the key now,
//     or that the key is absent.
//
// Other results pin nothing. Maps are named as NAME/OBJ under the pin root
// so that the lines hold in another pin root (bpfsh test makes a fresh
// one); an entry of a map not pinned there is left out.
func Pin(s *Session, cmd string, args []string, res Result) [][]string {
	if r, ok := runOf(res); ok {
		return pinRun(s, r)
	}
	switch cmd {
	case "map lookup", "map update", "map delete":
		if line := pinMapCommand(s, args); line != nil {
			return [][]string{line}
		}
	}
	return nil
}

func pinRun(s *Session, r *RunResult) [][]string {
	o := r.Outcome
	var lines [][]string
	if o.Live == nil {
		want := o.RetvalName
		if v, err := testrun.ParseRetval(o.Type, want); err != nil || v != o.Retval {
			want = strconv.FormatUint(uint64(o.Retval), 10)
		}
		lines = append(lines, []string{"expect", "retval", want})
	}
	if o.DataOut != nil && len(o.LayersOut) > 0 {
		lines = append(lines, []string{"expect", "packet", packet.Format(o.LayersOut)})
	}
	if len(o.Maps) > 0 {
		pins := bpf.MapPins(s.PinRoot)
		n := 0
		for _, c := range o.Maps {
			if n == maxPinnedMapChanges {
				break
			}
			ref := stableMapRef(s.PinRoot, pins[ebpf.MapID(c.MapID)])
			if ref == "" {
				continue
			}
			if line := pinMapEntry(s, []string{ref}, literalWords(c.Key)); line != nil {
				lines = append(lines, line)
				n++
			}
		}
	}
	for i, t := range o.Trace {
		if i == maxPinnedTraceLines {
			break
		}
		lines = append(lines, []string{"expect", "trace", "contains", Escape(t.Text)})
	}
	return lines
}

// stableMapRef is the NAME/OBJ form of the first of paths directly under
// NAME/ in the pin root; "" when there is none.
func stableMapRef(pinRoot string, paths []string) string {
	for _, p := range paths {
		rel, err := filepath.Rel(pinRoot, p)
		if err == nil && strings.Count(rel, "/") == 1 && !strings.HasPrefix(rel, ".") {
			return rel
		}
	}
	return ""
}

// literalWords are the words a formatted key or value is typed back as:
// one literal, or bytes ("hex 01 00", or "01 00" from a map without BTF)
// as several words.
func literalWords(text string) []string {
	if strings.HasPrefix(text, "hex ") {
		return strings.Fields(text)
	}
	if f := strings.Fields(text); len(f) > 1 && isHexBytes(f) {
		return append([]string{"hex"}, f...)
	}
	return []string{text}
}

func isHexBytes(words []string) bool {
	for _, w := range words {
		if _, err := strconv.ParseUint(w, 16, 8); err != nil || len(w) != 2 {
			return false
		}
	}
	return true
}

// pinMapCommand pins the key a map lookup, update or delete named.
func pinMapCommand(s *Session, args []string) []string {
	ref, rest, err := bpf.ParseRef(args, s.PinRoot)
	if err != nil || len(rest) < 2 || rest[0] != "key" {
		return nil
	}
	key := rest[1:]
	if i := slices.Index(key, "value"); i >= 0 {
		key = key[:i]
	}
	if n := len(key); n > 0 && slices.Contains([]string{"any", "exist", "noexist"}, key[n-1]) {
		key = key[:n-1]
	}
	refWords := strings.Fields(ref.Typed)
	if ref.Kind == bpf.RefID {
		id, _ := strconv.ParseUint(ref.Value, 10, 32)
		if r := stableMapRef(s.PinRoot, bpf.MapPins(s.PinRoot)[ebpf.MapID(id)]); r != "" {
			refWords = []string{r}
		}
	}
	return pinMapEntry(s, refWords, key)
}

// pinMapEntry is "expect map REF key KEY value V" with what the map holds
// under key now, or "... absent"; nil when it cannot be read or its value
// is not data (a program array, a map of maps, a socket map).
func pinMapEntry(s *Session, refWords, key []string) []string {
	ref, rest, err := bpf.ParseRef(refWords, s.PinRoot)
	if err != nil || len(rest) > 0 {
		return nil
	}
	m, err := openMapRef("record", ref)
	if err != nil {
		return nil
	}
	defer m.Close()
	if m.needKeys("record") != nil || holdsObjects(m.d.Type) {
		return nil
	}
	k, err := m.parseKey("record", key)
	if err != nil {
		return nil
	}
	line := append([]string{"expect", "map"}, refWords...)
	line = append(append(line, "key"), key...)
	got, err := bpf.LookupElem(m.Map, k)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return append(line, "absent")
	case err != nil:
		return nil
	}
	text, ok := m.heldLiteral(got)
	if !ok {
		return nil
	}
	return append(append(line, "value"), literalWords(text)...)
}

// holdsObjects reports whether a map's values are kernel objects (file
// descriptors in, ids out) rather than data a literal can pin.
func holdsObjects(t ebpf.MapType) bool {
	switch t {
	case ebpf.ProgramArray, ebpf.ArrayOfMaps, ebpf.HashOfMaps, ebpf.PerfEventArray, ebpf.SockMap, ebpf.SockHash,
		ebpf.DevMap, ebpf.DevMapHash, ebpf.CPUMap, ebpf.XSKMap, ebpf.CGroupArray, ebpf.ReusePortSockArray:
		return true
	}
	return false
}
