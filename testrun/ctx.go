// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf/hexbytes"
)

// ctxRules is what BPF_PROG_TEST_RUN accepts as the context of one family
// of program types (net/bpf/test_run.c).
type ctxRules struct {
	// Struct is the kernel's context struct; "" when the context is the
	// program's own (syscall) or a list of u64 (raw tracepoints).
	Struct string
	// Allowed are the fields the kernel takes from user space; others must
	// be zero (EINVAL). nil allows every field.
	Allowed []string
	// Auto are fields bpfsh fills itself (xdp_md's data_end); KernelSet
	// are fields the kernel writes back on its own whatever the program
	// does (shown only when the user set them).
	Auto, KernelSet []string
}

var (
	skbRules = ctxRules{
		Struct:    "__sk_buff",
		Allowed:   []string{"mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp", "wire_len", "gso_segs", "gso_size", "hwtstamp"},
		KernelSet: []string{"ifindex", "wire_len"},
	}
	xdpRules = ctxRules{
		Struct:    "xdp_md",
		Allowed:   []string{"data", "data_end", "ingress_ifindex", "rx_queue_index"},
		Auto:      []string{"data_end"},
		KernelSet: []string{"data", "data_end", "data_meta"},
	}
	flowRules   = ctxRules{Struct: "bpf_flow_keys", Allowed: []string{"flags"}}
	lookupRules = ctxRules{
		Struct:  "bpf_sk_lookup",
		Allowed: []string{"family", "protocol", "remote_ip4", "remote_ip6", "remote_port", "local_ip4", "local_ip6", "local_port"},
	}
)

// rulesFor returns the context rules of program type t.
func rulesFor(t ebpf.ProgramType) ctxRules {
	switch {
	case isSKBType(t):
		return skbRules
	case t == ebpf.XDP:
		return xdpRules
	case t == ebpf.FlowDissector:
		return flowRules
	case t == ebpf.SkLookup:
		return lookupRules
	}
	return ctxRules{}
}

// isSKBType reports whether t runs on an skb built by bpf_prog_test_run_skb.
func isSKBType(t ebpf.ProgramType) bool {
	switch t {
	case ebpf.SocketFilter, ebpf.SchedCLS, ebpf.SchedACT, ebpf.CGroupSKB,
		ebpf.LWTIn, ebpf.LWTOut, ebpf.LWTXmit, ebpf.LWTSeg6Local:
		return true
	}
	return false
}

// isL2Type reports whether the program sees the Ethernet header. The
// others see the packet from L3 on, and the kernel hands back their output
// with a zeroed Ethernet header.
func isL2Type(t ebpf.ProgramType) bool {
	return t == ebpf.XDP || t == ebpf.SchedCLS || t == ebpf.SchedACT
}

// ctxState is one run's context: its layout, the bytes sent, and which
// fields the user set.
type ctxState struct {
	Type   btf.Type // the struct, or nil for raw bytes
	Name   string   // "struct __sk_buff", for messages
	Fields []field
	In     []byte
	Set    map[string]bool
	rules  ctxRules
}

var (
	kernelStructsMu sync.Mutex
	kernelStructs   = map[string]*btf.Struct{}
)

// fieldsCache keeps the flattened fields of each context type: a script
// of runs lays out the same struct every time.
var fieldsCache sync.Map // btf.Type -> []field

// structFields is fields(t, 0), once per type. Callers do not modify it.
func structFields(t btf.Type) []field {
	if f, ok := fieldsCache.Load(t); ok {
		return f.([]field)
	}
	f := fields(t, 0)
	fieldsCache.Store(t, f)
	return f
}

// kernelStruct finds a context struct in the kernel's BTF, once.
func kernelStruct(name string) (*btf.Struct, error) {
	kernelStructsMu.Lock()
	defer kernelStructsMu.Unlock()
	if st, ok := kernelStructs[name]; ok {
		return st, nil
	}
	if st := cachedKernelStruct(name); st != nil {
		kernelStructs[name] = st
		return st, nil
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("read the kernel's BTF to lay out struct %s: %w (is /sys/kernel/btf/vmlinux there?)", name, err)
	}
	var st *btf.Struct
	if err := spec.TypeByName(name, &st); err != nil {
		return nil, fmt.Errorf("struct %s is not in the kernel's BTF: %w", name, err)
	}
	kernelStructs[name] = st
	cacheKernelStruct(name, st)
	return st, nil
}

// programCtxType is the struct a syscall program's context points to,
// from the program's BTF: the first parameter of its entry function.
func programCtxType(info *ebpf.ProgramInfo) (btf.Type, error) {
	funcs, err := info.FuncInfos()
	if err != nil || len(funcs) == 0 {
		return nil, wrongf("the program has no BTF function info to lay out its context; give it as hex")
	}
	for _, fo := range funcs {
		if fo.Offset != 0 {
			continue
		}
		proto, ok := fo.Func.Type.(*btf.FuncProto)
		if !ok || len(proto.Params) == 0 {
			break
		}
		if ptr, ok := btf.UnderlyingType(proto.Params[0].Type).(*btf.Pointer); ok {
			if _, ok := btf.UnderlyingType(ptr.Target).(*btf.Struct); ok {
				return ptr.Target, nil
			}
		}
		break
	}
	return nil, wrongf("the program's context is not a pointer to a struct in its BTF; give it as hex")
}

// buildCtx encodes the context words a user typed for a program of type t:
// "{field: value, ...}" by name from BTF, "hex 01 02 ...", or for raw
// tracepoints a list of u64 arguments "[1, 2]". raw, when set, is used as is.
// dataLen is the packet's length (xdp_md.data_end must equal it).
func buildCtx(t ebpf.ProgramType, info *ebpf.ProgramInfo, words []string, raw []byte, dataLen int) (*ctxState, error) {
	rules := rulesFor(t)
	cs := &ctxState{rules: rules, Set: map[string]bool{}}
	switch {
	case rules.Struct != "":
		st, err := kernelStruct(rules.Struct)
		if err != nil {
			return nil, err
		}
		cs.Type, cs.Name = st, "struct "+rules.Struct
	case t == ebpf.Syscall && (len(words) > 0 && strings.HasPrefix(words[0], "{")):
		ct, err := programCtxType(info)
		if err != nil {
			return nil, err
		}
		cs.Type, cs.Name = ct, btfName(ct)
	}
	if cs.Type != nil {
		cs.Fields = structFields(cs.Type)
	}

	switch {
	case raw != nil:
		cs.In = slices.Clone(raw)
	case len(words) == 0:
		if cs.Type == nil {
			return nil, nil // no context at all
		}
		size, _ := btf.Sizeof(cs.Type)
		cs.In = make([]byte, size)
	case words[0] == "hex":
		b, err := hexbytes.Parse(words[1:])
		if err != nil {
			return nil, wrongf("ctx hex: %v", err)
		}
		cs.In = b
	case t == ebpf.RawTracepoint && strings.HasPrefix(words[0], "["):
		args, err := splitList(strings.Join(words, " "))
		if err != nil {
			return nil, wrongf("ctx: %w", err)
		}
		if len(args) > maxRawTPArgs {
			return nil, wrongf("ctx: raw tracepoints take at most %d arguments, got %d", maxRawTPArgs, len(args))
		}
		cs.In = make([]byte, 8*len(args))
		for i, a := range args {
			if err := putInt(cs.In[8*i:8*i+8], a, false, true); err != nil {
				return nil, wrongf("ctx argument %d: %w", i, err)
			}
		}
	case strings.HasPrefix(words[0], "{"):
		if cs.Type == nil {
			return nil, wrongf("ctx: %s programs have no context struct to fill by name; give it as hex", typeName(t))
		}
		pairs, err := parseStructLiteral(strings.Join(words, " "))
		if err != nil {
			return nil, wrongf("ctx: %w", err)
		}
		size, _ := btf.Sizeof(cs.Type)
		cs.In = make([]byte, size)
		for _, p := range pairs {
			f, ok := cs.field(p.Name)
			if !ok {
				return nil, wrongf("ctx: %s has no field %q; its fields: %s", cs.Name, p.Name, strings.Join(cs.fieldNames(), ", "))
			}
			b, err := f.encode(p.Value)
			if err != nil {
				return nil, wrongf("ctx: %w", err)
			}
			copy(cs.In[f.Offset:f.Offset+f.Size], b)
			cs.Set[f.Name] = true
		}
	default:
		return nil, wrongf("ctx: want {field: value, ...} or hex BYTES, got %q", words[0])
	}
	cs.applyDefaults(t, dataLen)
	if err := cs.check(t, dataLen); err != nil {
		return nil, err
	}
	return cs, nil
}

// applyDefaults fills what the kernel requires and users should not have
// to type: xdp_md.data_end is the packet's length; an sk_lookup context
// is an IPv4 TCP lookup unless it says otherwise.
func (cs *ctxState) applyDefaults(t ebpf.ProgramType, dataLen int) {
	put := func(name string, v string) {
		if f, ok := cs.field(name); ok && !cs.Set[name] && len(cs.In) >= f.Offset+f.Size {
			if b, err := f.encode(v); err == nil {
				copy(cs.In[f.Offset:], b)
			}
		}
	}
	switch t {
	case ebpf.XDP:
		put("data_end", fmt.Sprint(dataLen))
	case ebpf.SkLookup:
		put("family", "2")   // AF_INET
		put("protocol", "6") // IPPROTO_TCP
	}
}

// check names, before the kernel can only say EINVAL, the context fields
// the kernel refuses for this program type.
func (cs *ctxState) check(t ebpf.ProgramType, dataLen int) error {
	if cs.Type == nil {
		return nil
	}
	size, _ := btf.Sizeof(cs.Type)
	if len(cs.In) > size && !allZero(cs.In[size:]) {
		return wrongf("ctx has %d bytes but %s has %d, and the kernel refuses non-zero bytes past its end", len(cs.In), cs.Name, size)
	}
	get := func(name string) (uint64, bool) {
		f, ok := cs.field(name)
		if !ok || f.Offset+f.Size > len(cs.In) {
			return 0, false
		}
		u, _ := getInt(cs.In[f.Offset:f.Offset+f.Size], f.BigEndian, false)
		return u, true
	}
	switch {
	case isSKBType(t):
		if ifx, _ := get("ifindex"); ifx > 1 {
			if _, err := net.InterfaceByIndex(int(ifx)); err != nil {
				return fmt.Errorf("ctx ifindex %d: no such interface in this network namespace ('net show' or 'ip link' lists them)", ifx)
			}
		}
		wire, _ := get("wire_len")
		seen := dataLen
		if !isL2Type(t) {
			seen -= ethHeaderLen
		}
		if wire != 0 && (wire < uint64(seen) || wire > 65536) {
			return wrongf("ctx wire_len %d must be at least the packet's %d bytes and at most 65536", wire, seen)
		}
		if segs, _ := get("gso_segs"); segs > 65535 {
			return wrongf("ctx gso_segs %d is more than the kernel's limit of 65535", segs)
		}
	case t == ebpf.XDP:
		end, _ := get("data_end")
		if end != uint64(dataLen) {
			return wrongf("ctx data_end %d must equal the packet's length %d (leave it out and bpfsh fills it in)", end, dataLen)
		}
		meta, _ := get("data")
		if meta > end {
			return wrongf("ctx data %d is past the packet's end (%d): data is the length of the metadata at the packet's start", meta, end)
		}
		if meta%4 != 0 || meta > 32 {
			return wrongf("ctx data %d: XDP metadata must be a multiple of 4 bytes and at most 32", meta)
		}
		ifx, _ := get("ingress_ifindex")
		rxq, _ := get("rx_queue_index")
		if ifx == 0 && rxq != 0 {
			return wrongf("ctx rx_queue_index needs ingress_ifindex: name the interface whose queue it is")
		}
		if ifx != 0 {
			iface, err := net.InterfaceByIndex(int(ifx))
			if err != nil {
				return fmt.Errorf("ctx ingress_ifindex %d: no such interface in this network namespace ('net show' or 'ip link' lists them)", ifx)
			}
			if n := rxQueues(iface.Name); n > 0 && rxq >= uint64(n) {
				return fmt.Errorf("ctx rx_queue_index %d: %s has %d receive queues (0..%d)", rxq, iface.Name, n, n-1)
			}
		}
	case t == ebpf.SkLookup:
		if c, _ := get("cookie"); c != 0 || cs.Set["sk"] {
			return wrongf("ctx cookie/sk cannot be set for sk_lookup programs: the kernel fills it with the socket the program selects")
		}
		if fam, _ := get("family"); fam != 2 && fam != 10 {
			return wrongf("ctx family %d: sk_lookup test runs take AF_INET (2) or AF_INET6 (10)", fam)
		}
		if port, _ := get("local_port"); port > 65535 {
			return wrongf("ctx local_port %d is not a port (at most 65535)", port)
		}
	}
	if cs.rules.Allowed != nil {
		for _, f := range cs.Fields {
			if f.Offset+f.Size > len(cs.In) || slices.Contains(cs.rules.Allowed, f.Name) {
				continue
			}
			if !allZero(cs.In[f.Offset : f.Offset+f.Size]) {
				return wrongf("ctx field %s cannot be set for %s programs: the kernel takes only %s (others must be zero)",
					f.Name, typeName(t), strings.Join(cs.rules.Allowed, ", "))
			}
		}
	}
	return nil
}

// rxQueues counts an interface's receive queues, 0 when unknown.
func rxQueues(iface string) int {
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", iface, "queues", "rx-*"))
	if len(m) == 0 {
		if _, err := os.Stat(filepath.Join("/sys/class/net", iface)); err != nil {
			return 0
		}
	}
	return len(m)
}

func (cs *ctxState) field(name string) (field, bool) {
	for _, f := range cs.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return field{}, false
}

func (cs *ctxState) fieldNames() []string {
	names := make([]string, 0, len(cs.Fields))
	for _, f := range cs.Fields {
		names = append(names, f.Name)
	}
	return names
}

// FieldChange is one context field the program changed, e.g. mark 5 -> 42.
type FieldChange struct {
	Field  string
	Before string
	After  string
	// AfterJSON is After for JSON (a number, a string, a list).
	AfterJSON any
}

// changes lists the fields that differ between the context sent and the
// one the kernel handed back, leaving out those the kernel fills on its
// own unless the user set them.
func (cs *ctxState) changes(out []byte) []FieldChange {
	if cs == nil || cs.Type == nil || len(out) == 0 {
		return nil
	}
	var ch []FieldChange
	for _, f := range cs.Fields {
		end := f.Offset + f.Size
		if end > len(out) || end > len(cs.In) {
			continue
		}
		if slices.Contains(cs.rules.KernelSet, f.Name) && !cs.Set[f.Name] {
			continue
		}
		if _, ptr := btf.UnderlyingType(f.Type).(*btf.Pointer); ptr {
			continue // a kernel address means nothing here
		}
		before, after := cs.In[f.Offset:end], out[f.Offset:end]
		if bytes.Equal(before, after) {
			continue
		}
		bt, _ := f.format(before)
		at, aj := f.format(after)
		ch = append(ch, FieldChange{Field: f.Name, Before: bt, After: at, AfterJSON: aj})
	}
	return ch
}

// nonZeroFields shows every non-zero field of b laid out as st: the flow
// keys a flow dissector produced.
func nonZeroFields(st btf.Type, b []byte) []FieldChange {
	var out []FieldChange
	for _, f := range fields(st, 0) {
		end := f.Offset + f.Size
		if end > len(b) || allZero(b[f.Offset:end]) {
			continue
		}
		at, aj := f.format(b[f.Offset:end])
		out = append(out, FieldChange{Field: f.Name, After: at, AfterJSON: aj})
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func btfName(t btf.Type) string {
	switch u := t.(type) {
	case *btf.Struct:
		return "struct " + u.Name
	case *btf.Typedef:
		return u.Name
	}
	if t != nil && t.TypeName() != "" {
		return t.TypeName()
	}
	return "the context"
}

// wrongf is a context the user wrote wrong (a field the struct lacks, a
// value out of range, a field the kernel refuses for the type): an
// *OptionsError, which the shell reports as typed wrong (exit status 2).
func wrongf(format string, args ...any) error {
	return &OptionsError{Err: fmt.Errorf(format, args...)}
}
