// Package cache is bpfsh's in-kernel memcached cache (PROTOCOL.md): an XDP
// program that answers UDP gets from a hash map and invalidates written
// keys, and a TC egress program that fills the map from the server's
// replies.
package cache

import (
	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// BuiltinName is the name "load" knows the embedded object by.
const BuiltinName = "cache"

// Names of the programs and maps as they are pinned under <pin-root>/NAME/.
const (
	RxProgram   = "xdp_cache_rx"
	FillProgram = "tc_cache_fill"
	CacheMap    = "cache"
	GensMap     = "gens"
	MissesMap   = "misses"
	MetaMap     = "meta"
	StatsMap    = "stats"
)

// VarPort is the load-time constant with memcached's port (load cache set
// cache_port=11311).
const VarPort = "cache_port"

// Port is memcached's default port, cache_port's default.
const Port = 11211

// Limits, as PROTOCOL.md documents them: anything larger passes to the
// server.
const (
	MaxKey   = 250
	MaxValue = 1024
	// FrameHeaderLen is the length of memcached's UDP frame header.
	FrameHeaderLen = 8
)

func init() { bpf.RegisterBuiltin(BuiltinName, _CacheBytes) }

// Object returns the compiled ELF, as embedded in bpfsh.
func Object() []byte { return _CacheBytes }

// Spec parses the embedded object into a fresh CollectionSpec, which the
// caller may change (constants, map sizes) before loading it.
func Spec() (*ebpf.CollectionSpec, error) { return LoadCache() }
