// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// perCPUStride is how far apart the kernel puts one CPU's value from the
// next in a per-CPU lookup or update buffer: rounded up to 8 bytes.
func perCPUStride(valueSize int) int { return (valueSize + 7) &^ 7 }

// LookupElem returns the value stored under key. For a per-CPU map it is
// one value per possible CPU, packed at the map's value size (CPU c's value
// starts at c*ValueSize). A missing key is ebpf.ErrKeyNotExist.
func LookupElem(m *ebpf.Map, key []byte) ([]byte, error) {
	if !IsPerCPU(m.Type()) {
		out := make([]byte, m.ValueSize())
		if err := m.Lookup(key, out); err != nil {
			return nil, err
		}
		return out, nil
	}
	raw, err := m.LookupBytes(key)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, ebpf.ErrKeyNotExist
	}
	vs, stride := int(m.ValueSize()), perCPUStride(int(m.ValueSize()))
	cpus := len(raw) / stride
	out := make([]byte, cpus*vs)
	for c := range cpus {
		copy(out[c*vs:], raw[c*stride:c*stride+vs])
	}
	return out, nil
}

// UpdateElem stores value under key. For a per-CPU map, value (one value)
// is stored on every CPU, so that the sum over CPUs is predictable.
func UpdateElem(m *ebpf.Map, key, value []byte, flags ebpf.MapUpdateFlags) error {
	if !IsPerCPU(m.Type()) {
		return m.Update(key, value, flags)
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("count possible CPUs: %w", err)
	}
	perCPU := make([][]byte, cpus)
	for i := range perCPU {
		perCPU[i] = value
	}
	return m.Update(key, perCPU, flags)
}

// PeekElem returns the value at the head of a queue (the oldest) or the
// top of a stack (the newest) without removing it.
func PeekElem(m *ebpf.Map) ([]byte, error) {
	out := make([]byte, m.ValueSize())
	// For queues and stacks the kernel's lookup is a peek.
	if err := m.Lookup(nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// PopElem removes and returns the value PeekElem would return.
func PopElem(m *ebpf.Map) ([]byte, error) {
	out := make([]byte, m.ValueSize())
	if err := m.LookupAndDelete(nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// PushElem adds value to a queue or stack. With ebpf.UpdateExist a full
// map drops its oldest value to make room; otherwise a full map is E2BIG.
func PushElem(m *ebpf.Map, value []byte, flags ebpf.MapUpdateFlags) error {
	return m.Update(nil, value, flags)
}
