// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"slices"
	"sync"
)

// Built-in objects are BPF ELFs compiled into bpfsh (the kv store, the
// cache, ...), so that "load kv" works without a file on disk. Each
// program's package registers its object from an init function:
//
//	func init() { bpf.RegisterBuiltin("kv", _KvBytes) }
//
// The registry is empty until such packages exist and are imported.
var (
	builtinMu sync.RWMutex
	builtins  = map[string][]byte{}
	// attached are objects bpfsh loads and attaches itself (cache attach
	// --redis), not through load: doctor verifies them like the others.
	attached = map[string][]byte{}
)

// RegisterAttached names an object that a command loads and attaches on
// its own, so that doctor shows whether this kernel takes it.
func RegisterAttached(name string, elf []byte) {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	if _, dup := attached[name]; dup {
		panic(fmt.Sprintf("bpf.RegisterAttached: %q registered twice", name))
	}
	attached[name] = elf
}

// RegisterBuiltin makes elf loadable as "load NAME". name must be a valid
// pin name (see ValidName); registering a name twice is a programming
// error and panics.
func RegisterBuiltin(name string, elf []byte) {
	if err := ValidName(name); err != nil {
		panic(fmt.Sprintf("bpf.RegisterBuiltin: %v", err))
	}
	builtinMu.Lock()
	defer builtinMu.Unlock()
	if _, dup := builtins[name]; dup {
		panic(fmt.Sprintf("bpf.RegisterBuiltin: %q registered twice", name))
	}
	builtins[name] = elf
}

// Builtin returns the ELF registered as name.
func Builtin(name string) ([]byte, bool) {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	elf, ok := builtins[name]
	return elf, ok
}

// Builtins lists the registered names, sorted.
func Builtins() []string {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
