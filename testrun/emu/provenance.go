// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Pointer is what a value points to, when it points into memory the
// session knows: its provenance.
type Pointer struct {
	// Kind is the region's kind.
	Kind RegionKind
	// Offset is from the region's origin: the packet's data (negative
	// offsets are metadata), a stack's frame pointer (negative offsets
	// are the frame's slots), the start of anything else.
	Offset int
	// Frame is a stack's frame depth.
	Frame int
	// Map is the map of a map, map value or key region, and Key the
	// entry's key (CPU the value's CPU, for per-CPU maps).
	Map string
	Key []byte
	CPU int
	// Type is what the region holds, when known (a map value's BTF).
	Type btf.Type
	// Text is the provenance as the front end shows it: "pkt+34",
	// "&hx_flows[{saddr: 10.0.0.1}] (struct flow_stats)", "ctx (struct
	// xdp_md)", "stack frame 0 -16", "map hx_flows".
	Text string
}

// describeAddr is the provenance of a value, or the value in hex.
func (m *machine) describeAddr(v uint64) string {
	if p, ok := m.pointer(v); ok {
		return p.Text
	}
	return fmt.Sprintf("0x%x", v)
}

// pointer works out where v points.
func (m *machine) pointer(v uint64) (Pointer, bool) {
	if v&addrTagMsk != addrTag {
		return Pointer{}, false
	}
	id := int32((v >> idShift) & idMask)
	if int(id) >= len(m.regions) {
		return Pointer{}, false
	}
	r := m.regions[id]
	off := int(v & offMask)
	p := Pointer{Kind: r.kind, Frame: r.frame, Type: r.typ, CPU: r.cpu}
	plus := func(n int) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%+d", n)
	}
	switch r.kind {
	case RegionNone:
		if id == codeRegion {
			p.Offset = off
			name := fmt.Sprintf("insn %d", off)
			if f, ok := m.prog.FuncAt(off); ok && f.Start == off {
				name = f.Name
			}
			p.Text = "&" + name + " (function)"
			return p, true
		}
		return Pointer{}, false
	case RegionStack:
		p.Offset = off - stackSize
		p.Text = fmt.Sprintf("stack frame %d %d", r.frame, p.Offset)
	case RegionPacket:
		p.Offset = off - int(m.env.pkt.data)
		p.Text = "pkt" + plus(p.Offset)
		if p.Offset == 0 {
			p.Text = "pkt+0"
		}
		if uint32(off) == m.env.pkt.end {
			p.Text += " (data_end)"
		}
	case RegionCtx:
		p.Offset = off
		name := "ctx"
		if r.ctx != nil {
			name += " (" + r.ctx.name() + ")"
			p.Type = kernelStruct(r.ctx.name())
		}
		p.Text = name + plus(off)
	case RegionMap:
		p.Map = r.mp.name
		p.Text = "map " + r.mp.name + plus(off)
	case RegionMapValue:
		p.Offset, p.Map, p.Key = off, r.mp.name, r.key
		p.Text = fmt.Sprintf("&%s[%s]%s", r.mp.name, formatKey(r.mp, r.key), plus(off))
		if r.typ != nil {
			p.Text += " (" + typeName(r.typ) + ")"
		}
		if isPerCPU(r.mp.typ) {
			p.Text += fmt.Sprintf(" on CPU %d", r.cpu)
		}
	case RegionMapKey:
		p.Offset, p.Map, p.Key = off, r.mp.name, r.key
		p.Text = fmt.Sprintf("key %s of %s%s", formatKey(r.mp, r.key), r.mp.name, plus(off))
	case RegionRingRec:
		p.Offset, p.Map = off, r.mp.name
		p.Text = fmt.Sprintf("ringbuf record of %s%s", r.mp.name, plus(off))
	case RegionFlowKeys:
		p.Offset = off
		p.Text = "flow_keys (struct bpf_flow_keys)" + plus(off)
	case RegionSocket:
		p.Map = r.mp.name
		p.Text = "socket from " + r.mp.name
	default:
		p.Offset = off
		p.Text = r.name + plus(off)
	}
	return p, true
}

// formatKey shows a key by its BTF type, or a plain integer, or hex.
func formatKey(v *mapView, key []byte) string {
	if v.keyType != nil {
		if s, _ := bpf.FormatValue(key, v.keyType); s != "" {
			return s
		}
	}
	switch len(key) {
	case 4:
		return fmt.Sprint(binary.LittleEndian.Uint32(key))
	case 8:
		return fmt.Sprint(binary.LittleEndian.Uint64(key))
	}
	return fmt.Sprintf("%x", key)
}

// typeName spells a BTF type as C does: "struct flow_stats", "__u64".
func typeName(t btf.Type) string {
	switch u := t.(type) {
	case *btf.Struct:
		return "struct " + u.Name
	case *btf.Union:
		return "union " + u.Name
	case *btf.Enum:
		return "enum " + u.Name
	case *btf.Pointer:
		return typeName(u.Target) + " *"
	case *btf.Const:
		return "const " + typeName(u.Type)
	case *btf.Volatile:
		return "volatile " + typeName(u.Type)
	case *btf.Array:
		return fmt.Sprintf("%s[%d]", typeName(u.Type), u.Nelems)
	case *btf.Datasec:
		return "section " + strings.TrimPrefix(u.Name, ".")
	case nil:
		return "void"
	}
	if n := t.TypeName(); n != "" {
		return n
	}
	return "?"
}

// kernelStructs caches kernelStruct: a lookup in the kernel's BTF costs
// milliseconds, and every helper call's arguments are described.
var kernelStructs sync.Map // name -> btf.Type (nil when not found)

// kernelStruct is the kernel's BTF of a context struct ("struct
// xdp_md"), nil when the kernel has no BTF.
func kernelStruct(name string) btf.Type {
	if t, ok := kernelStructs.Load(name); ok {
		typ, _ := t.(btf.Type)
		return typ
	}
	var typ btf.Type
	if spec, err := btf.LoadKernelSpec(); err == nil {
		var st *btf.Struct
		if err := spec.TypeByName(strings.TrimPrefix(name, "struct "), &st); err == nil {
			typ = st
		}
	}
	kernelStructs.Store(name, typ)
	return typ
}
