// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// BuiltinName is the name "load" knows the embedded object by.
const BuiltinName = "kv"

// Names of the program and maps as they are pinned under <pin-root>/NAME/.
const (
	ProgramName = "xdp_kv"
	StoreMap    = "store"
	TxnsMap     = "txns"
	MetaMap     = "meta"
	LogMap      = "log"
	StatsMap    = "stats"
)

// Load-time constants (load kv set kv_port=7000).
const (
	VarPort       = "kv_port"
	VarTxnTimeout = "kv_txn_timeout_ns"
)

func init() { bpf.RegisterBuiltin(BuiltinName, _KvBytes) }

// Object returns the compiled ELF, as embedded in bpfsh.
func Object() []byte { return _KvBytes }

// Spec parses the embedded object into a fresh CollectionSpec, which the
// caller may change (constants, map sizes) before loading it.
func Spec() (*ebpf.CollectionSpec, error) { return LoadKv() }
