// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// mapExpectation is one "expect map" line, parsed.
type mapExpectation struct {
	ref        bpf.Ref
	key, value []string // words as typed
	absent     bool
	count      int // -1 unless "count N"
}

func parseMapExpectation(s *Session, op string, args []string) (*mapExpectation, error) {
	const forms = "key KEY value VALUE, key KEY absent, or count N"
	ref, rest, err := parseMapRef(s, op, args)
	if err != nil {
		return nil, err
	}
	e := &mapExpectation{ref: ref, count: -1}
	switch {
	case len(rest) == 0:
		return nil, Usagef("%s %s needs what to check: %s", op, ref, forms)
	case rest[0] == "count":
		if len(rest) != 2 {
			return nil, Usagef("%s %s count needs one number", op, ref)
		}
		n, err := strconv.ParseUint(rest[1], 0, 31)
		if err != nil {
			return nil, Usagef("%s %s count %q: want a whole number", op, ref, rest[1])
		}
		e.count = int(n)
	case rest[0] == "key":
		rest = rest[1:]
		if i := slices.Index(rest, "value"); i >= 0 {
			e.key, e.value = rest[:i], rest[i+1:]
		} else if n := len(rest); n > 0 && rest[n-1] == "absent" {
			e.key, e.absent = rest[:n-1], true
		} else {
			return nil, Usagef("%s %s key ...: say what the key holds: value VALUE, or absent", op, ref)
		}
		if len(e.key) == 0 {
			return nil, Usagef("%s %s needs a key after 'key' (e.g. key 42, key hex 2a 00 00 00)", op, ref)
		}
		if !e.absent && len(e.value) == 0 {
			return nil, Usagef("%s %s needs a value after 'value' (e.g. value 1, value hex 01 00 00 00)", op, ref)
		}
	default:
		return nil, Usagef("%s %s: expected %s, found %q", op, ref, forms, rest[0])
	}
	return e, nil
}

func expectMap(s *Session, args []string) error {
	const op = "expect map"
	e, err := parseMapExpectation(s, op, args)
	if err != nil {
		return err
	}
	m, err := openMapRef(op, e.ref)
	if err != nil {
		return err
	}
	defer m.Close()
	if e.count >= 0 {
		return m.expectCount(op, e.count)
	}
	if err := m.needKeys(op); err != nil {
		return err
	}
	key, err := m.parseKey(op, e.key)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s: map %s key %s", op, m.name(), keyText(m.d, key))
	got, err := bpf.LookupElem(m.Map, key)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		if e.absent {
			return nil
		}
		want, err := m.parseValue(op, e.value)
		if err != nil {
			return err
		}
		return expectFailf("%s: want %s, but the key is absent", what, m.valueText(want))
	case err != nil:
		return m.opError(op, err, keyText(m.d, key))
	case e.absent:
		return expectFailf("%s: want it absent, but it holds %s", what, m.heldText(got))
	}
	want, err := m.parseValue(op, e.value)
	if err != nil {
		return err
	}
	if m.holds(got, want) {
		return nil
	}
	return expectFailf("%s: want %s, got %s", what, m.valueText(want), m.heldText(got))
}

// expectCount counts the map's entries now.
func (m *openedMap) expectCount(op string, want int) error {
	if err := m.needKeys(op); err != nil {
		return err
	}
	n := 0
	if err := bpf.ReadMapChunks(m.Map, func(c *bpf.MapChunk) error { n += c.N; return nil }); err != nil {
		return fmt.Errorf("%s: read map %s: %w", op, m.name(), err)
	}
	if n != want {
		return expectFailf("%s: map %s: want %d entries, got %d", op, m.name(), want, n)
	}
	return nil
}

// sumType is the integer type of a per-CPU map's values, when they are
// integers that can be summed; nil otherwise.
func (m *openedMap) sumType() *btf.Int {
	if !bpf.IsPerCPU(m.d.Type) || m.d.Value == nil {
		return nil
	}
	if i, ok := btf.UnderlyingType(m.d.Value).(*btf.Int); ok {
		switch i.Size {
		case 1, 2, 4, 8:
			return i
		}
	}
	return nil
}

// holds reports whether got, the value looked up (one per CPU on a
// per-CPU map), is want: on a per-CPU map of integers the sum over CPUs
// is compared, on other per-CPU maps every CPU's value.
func (m *openedMap) holds(got, want []byte) bool {
	if !bpf.IsPerCPU(m.d.Type) {
		return bytes.Equal(got, want)
	}
	if t := m.sumType(); t != nil {
		return perCPUSum(got, t).Cmp(intValue(want, t)) == 0
	}
	vs := len(want)
	for off := 0; off+vs <= len(got); off += vs {
		if !bytes.Equal(got[off:off+vs], want) {
			return false
		}
	}
	return true
}

func perCPUSum(values []byte, t *btf.Int) *big.Int {
	sum := new(big.Int)
	for off := 0; off+int(t.Size) <= len(values); off += int(t.Size) {
		sum.Add(sum, intValue(values[off:], t))
	}
	return sum
}

// valueText is one value formatted by the map's BTF.
func (m *openedMap) valueText(v []byte) string {
	text, _ := bpf.FormatValue(v, m.d.Value)
	return text
}

// heldText is what a lookup returned, formatted as expect compares it:
// the sum of a per-CPU map of integers, the one value when every CPU
// holds the same, each CPU's value otherwise.
func (m *openedMap) heldText(got []byte) string {
	text, ok := m.heldLiteral(got)
	if ok {
		return text
	}
	vs := int(m.d.ValueSize)
	var parts []string
	for cpu := 0; (cpu+1)*vs <= len(got); cpu++ {
		parts = append(parts, fmt.Sprintf("cpu%d=%s", cpu, m.valueText(got[cpu*vs:(cpu+1)*vs])))
	}
	return fmt.Sprint(parts)
}

// heldLiteral is what a lookup returned as one literal that an "expect
// map ... value" line accepts and finds equal; false for a per-CPU map
// whose CPUs hold different values that cannot be summed.
func (m *openedMap) heldLiteral(got []byte) (string, bool) {
	if !bpf.IsPerCPU(m.d.Type) {
		return m.valueText(got), true
	}
	if t := m.sumType(); t != nil {
		return perCPUSum(got, t).String(), true
	}
	vs := int(m.d.ValueSize)
	if vs == 0 || len(got) < vs {
		return "", false
	}
	for off := vs; off+vs <= len(got); off += vs {
		if !bytes.Equal(got[off:off+vs], got[:vs]) {
			return "", false
		}
	}
	return m.valueText(got[:vs]), true
}
