// SPDX-License-Identifier: Apache-2.0

package commands

// Packages that register built-in objects ("load kv") and their packet
// layers (KV) from init functions.
import (
	"github.com/bpfsh/bpfsh/bpf"
	_ "github.com/bpfsh/bpfsh/bpf/cache"
	"github.com/bpfsh/bpfsh/bpf/fixture"
	_ "github.com/bpfsh/bpfsh/bpf/kv"
	_ "github.com/bpfsh/bpfsh/bpf/proxy"
)

// fixture is the small object bpfsh's tests load, one map of each common
// kind (hash with a struct key, array, per-CPU hash, queue, stack, ring
// buffer) and three tiny programs: lesson 02 teaches maps on it, wherever
// bpfsh runs (load fixture name maps).
func init() { bpf.RegisterBuiltin("fixture", fixture.FixtureObject()) }
