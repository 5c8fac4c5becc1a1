// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// RodataMap is the name load pins a program's load-time constants'
// map (.rodata) as.
const RodataMap = "rodata"

// PinnedConstU16 reads the 2-byte load-time constant name (e.g.
// kv_port, cache_port) from the rodata map pinned in dir, found by the
// map's BTF, so that commands reach a program loaded with "load NAME set
// name=N". It is def when dir has no rodata map or the map has no such
// variable (an object pinned by another tool).
func PinnedConstU16(dir, name string, def uint16) (uint16, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, RodataMap), &ebpf.LoadPinOptions{ReadOnly: true})
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s in %s: %w", name, dir, err)
	}
	defer m.Close()
	d, err := DescribeMap(m)
	if err != nil {
		return 0, fmt.Errorf("read %s in %s: %w", name, dir, err)
	}
	sec, ok := d.Value.(*btf.Datasec)
	if !ok {
		return def, nil
	}
	for _, v := range sec.Vars {
		if vv, ok := v.Type.(*btf.Var); !ok || vv.Name != name || v.Size != 2 {
			continue
		}
		b := make([]byte, m.ValueSize())
		if err := m.Lookup(uint32(0), &b); err != nil {
			return 0, fmt.Errorf("read %s in %s: %w", name, dir, err)
		}
		if int(v.Offset)+2 > len(b) {
			return 0, fmt.Errorf("read %s in %s: its BTF places it past the map's %d bytes", name, dir, len(b))
		}
		return binary.NativeEndian.Uint16(b[v.Offset:]), nil
	}
	return def, nil
}
