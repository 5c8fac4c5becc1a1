// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
)

// VarSetting is one global variable to set before an object is loaded:
// "load kv set kv_port=7000". Globals declared `volatile const` in C are
// read-only once loaded, so load time is the only time to set them.
type VarSetting struct {
	Name  string
	Value string // a literal typed by the variable's BTF, as map values are
}

// ParseVarSetting reads NAME=VALUE.
func ParseVarSetting(word string) (VarSetting, error) {
	name, value, ok := strings.Cut(word, "=")
	if !ok || name == "" || value == "" {
		return VarSetting{}, fmt.Errorf("%q is not NAME=VALUE (e.g. kv_port=7000)", word)
	}
	return VarSetting{Name: name, Value: value}, nil
}

// SetVars sets the global variables of spec by name, each value parsed by
// the variable's BTF type as ParseValue reads a map value. An unknown name
// is an error that lists the variables the object has.
func SetVars(spec *ebpf.CollectionSpec, vars []VarSetting) error {
	for _, v := range vars {
		vs := spec.Variables[v.Name]
		if vs == nil {
			return fmt.Errorf("set %s: the object has no global variable %s; %s", v.Name, v.Name, settableVars(spec))
		}
		size := int(vs.Size())
		if size == 0 {
			return fmt.Errorf("set %s: the variable's size is unknown (no BTF)", v.Name)
		}
		var t = vs.Type
		if t == nil {
			return fmt.Errorf("set %s: the variable has no BTF type to read %q by", v.Name, v.Value)
		}
		b, err := ParseValue([]string{v.Value}, t.Type, size)
		if err != nil {
			return fmt.Errorf("set %s=%s: %v", v.Name, v.Value, err)
		}
		if err := vs.Set(b); err != nil {
			return fmt.Errorf("set %s=%s: %v", v.Name, v.Value, err)
		}
	}
	return nil
}

// settableVars says which variables an object has, with their types and
// values as compiled: "settable: kv_port (__u16, 6390), ...".
func settableVars(spec *ebpf.CollectionSpec) string {
	names := make([]string, 0, len(spec.Variables))
	for n, v := range spec.Variables {
		if v.Type != nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "it has none to set"
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		v := spec.Variables[n]
		value := v.Value
		if value == nil {
			value = make([]byte, v.Size())
		}
		text, _ := FormatValue(value, v.Type.Type)
		parts[i] = fmt.Sprintf("%s (%s, %s)", n, TypeName(v.Type.Type), text)
	}
	return "settable: " + strings.Join(parts, ", ")
}
