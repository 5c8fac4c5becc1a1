// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// maxRestoredEntries bounds the entries a suite's preamble puts back per
// map: past it the suite would be mostly map updates.
const maxRestoredEntries = 100

// ReplayState is what a suite recorded from now on needs first, to replay
// from the state the session is in: the loads under the pin root (a suite
// runs in a fresh pin root), their maps' entries and the session's
// packets.
type ReplayState struct {
	// Lines are commands, as words.
	Lines [][]string
	// Notes say what could not be put back, for comments in the suite.
	Notes []string
	// Loads names the loads, Entries counts the entries put back and Lets
	// names the packets kept with let.
	Loads   []string
	Entries int
	Lets    []string
}

// CurrentState reads the loads bpfsh made under the session's pin root,
// oldest first, their maps, and the packets kept with let. file rewrites a
// load's file path for the suite (relative to its directory).
func CurrentState(s *Session, file func(string) string) *ReplayState {
	st := &ReplayState{}
	if s.StateDir == "" || s.PinRoot == "" {
		return st
	}
	for _, m := range bpf.ReadManifests(s.StateDir, s.PinRoot) {
		if _, err := os.Stat(m.Dir); err != nil {
			continue // unloaded, or its pins went with a reboot
		}
		st.Loads = append(st.Loads, m.Name)
		if len(m.Load) == 0 {
			st.Notes = append(st.Notes, fmt.Sprintf("%s (from %s) was loaded by an older bpfsh, which did not keep how: add its load line here", m.Name, m.Source))
			continue
		}
		words := append([]string{"load", file(m.Load[0])}, m.Load[1:]...)
		st.Lines = append(st.Lines, words)
		for _, o := range m.Objects {
			if o.Kind == bpf.KindMap {
				st.addMap(s, m.Name+"/"+o.Name, o)
			}
		}
	}
	st.addLets(s)
	return st
}

// addLets adds a let line for each packet kept with let, as its bytes.
func (st *ReplayState) addLets(s *Session) {
	var names []string
	for name, v := range s.Vars {
		if _, ok := v.(*packet.Packet); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		p := s.Vars[name].(*packet.Packet)
		st.Lines = append(st.Lines, []string{"let", name, "=", "hex", hex.EncodeToString(p.Data)})
		st.Lets = append(st.Lets, "$"+name)
	}
}

// addMap adds the map updates that put the map pinned as o back, or a note
// saying why they cannot.
func (st *ReplayState) addMap(s *Session, ref string, o bpf.Pinned) {
	r, _, err := bpf.ParseRef([]string{"pinned", o.Path}, s.PinRoot)
	if err != nil {
		return
	}
	m, err := openMapRef("record", r)
	if err != nil || m.d.ID != ebpf.MapID(o.ID) {
		if m != nil {
			m.Close()
		}
		return // replaced or gone since the load
	}
	defer m.Close()
	switch {
	case strings.HasPrefix(m.d.Name, "."):
		// .rodata cannot change; .data starts with values of its own.
		// A .bss that is not all zero was changed by the programs.
		if m.d.Name == ".bss" && m.d.Type == ebpf.Array {
			v := make([]byte, m.d.ValueSize)
			if m.Lookup(uint32(0), &v) == nil && bytes.ContainsFunc(v, func(r rune) bool { return r != 0 }) {
				st.Notes = append(st.Notes, fmt.Sprintf("%s holds the programs' global variables, which are not put back: expectations on what they count may differ on replay", ref))
			}
		}
		return
	case m.d.Type == ebpf.Array || m.d.Type == ebpf.Hash || m.d.Type == ebpf.LRUHash:
	default:
		var k []byte
		if m.d.KeySize > 0 && m.NextKey(nil, &k) == nil {
			st.Notes = append(st.Notes, fmt.Sprintf("%s (%s) is not empty and its entries are not put back: expectations on it may differ on replay", ref, m.typeName()))
		}
		return
	}
	var lines [][]string
	it := m.Iterate()
	key, value := make([]byte, m.d.KeySize), make([]byte, m.d.ValueSize)
	n := 0
	for it.Next(&key, &value) {
		// An array's slots always exist: only those that are not zero
		// differ from a fresh load.
		if m.d.Type == ebpf.Array && !bytes.ContainsFunc(value, func(r rune) bool { return r != 0 }) {
			continue
		}
		if n++; n > maxRestoredEntries {
			st.Notes = append(st.Notes, fmt.Sprintf("%s holds more than %d entries: they are not put back, so expectations on it may differ on replay", ref, maxRestoredEntries))
			return
		}
		l := st.update(m, ref, key, value)
		if l == nil {
			st.Notes = append(st.Notes, fmt.Sprintf("%s has entries that cannot be typed back: they are not put back", ref))
			return
		}
		lines = append(lines, l)
	}
	if err := it.Err(); err != nil {
		st.Notes = append(st.Notes, fmt.Sprintf("%s could not be read (%v): its entries are not put back", ref, err))
		return
	}
	st.Lines = append(st.Lines, lines...)
	st.Entries += len(lines)
}

// update is "map update REF key K value V" for one entry; nil when it
// cannot be written as words.
func (st *ReplayState) update(m *openedMap, ref string, key, value []byte) []string {
	k, _ := bpf.FormatValue(key, m.d.Key)
	v, ok := m.heldLiteral(value)
	if !ok {
		return nil
	}
	line := append([]string{"map", "update", ref, "key"}, literalWords(k)...)
	return append(append(line, "value"), literalWords(v)...)
}
