package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// RodataMap is the name the load-time constants' map is pinned as.
const RodataMap = "rodata"

// PinnedPort is the UDP port (kv_port) of the kv program pinned in dir,
// read from its pinned rodata map by the map's BTF, so that requests
// reach a program loaded with "load kv set kv_port=7000". Port when dir
// has no rodata map (an object pinned by another tool).
func PinnedPort(dir string) (uint16, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, RodataMap), &ebpf.LoadPinOptions{ReadOnly: true})
	if errors.Is(err, fs.ErrNotExist) {
		return Port, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s of kv in %s: %w", VarPort, dir, err)
	}
	defer m.Close()
	d, err := bpf.DescribeMap(m)
	if err != nil {
		return 0, fmt.Errorf("read %s of kv in %s: %w", VarPort, dir, err)
	}
	sec, ok := d.Value.(*btf.Datasec)
	if !ok {
		return Port, nil
	}
	for _, v := range sec.Vars {
		if vv, ok := v.Type.(*btf.Var); !ok || vv.Name != VarPort || v.Size != 2 {
			continue
		}
		b := make([]byte, m.ValueSize())
		if err := m.Lookup(uint32(0), &b); err != nil {
			return 0, fmt.Errorf("read %s of kv in %s: %w", VarPort, dir, err)
		}
		if int(v.Offset)+2 > len(b) {
			return 0, fmt.Errorf("read %s of kv in %s: its BTF places it past the map's %d bytes", VarPort, dir, len(b))
		}
		return binary.NativeEndian.Uint16(b[v.Offset:]), nil
	}
	return Port, nil
}
