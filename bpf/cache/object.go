// SPDX-License-Identifier: Apache-2.0

// Package cache is bpfsh's in-kernel memcached cache (PROTOCOL.md): an XDP
// program that answers UDP gets from a hash map and invalidates written
// keys, and a TC egress program that fills the map from the server's
// replies.
package cache

import (
	"errors"
	"unsafe"

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
	// PendingMap holds each client connection's writes until the
	// server's reply to it leaves (invalidation at the acknowledgement).
	PendingMap = "pending"

	// The Redis RESP path (test-run and labs only: ErrRESPLive).
	RESPProgram     = "xdp_cache_resp"
	RESPFillProgram = "tc_cache_resp_fill"
	RESPCacheMap    = "resp_cache"
	RESPMissesMap   = "resp_misses"
)

// VarRedisPort is the load-time constant with Redis's port (load cache set
// redis_port=6380).
const VarRedisPort = "redis_port"

// RedisPort is Redis's default port, redis_port's default.
const RedisPort = 6379

// ErrRESPLive is why the RESP programs are not attached to a live
// interface: an XDP_TX answer is bytes of the server's TCP stream that the
// server's socket never sent, and upstream kernels give XDP no way to
// advance that socket's sequence numbers (Huawei's Redis cache adds a
// kernel helper for it). The next reply the server sends would carry
// sequence numbers the client has already seen, and the connection breaks.
var ErrRESPLive = errors.New("the RESP cache (xdp_cache_resp, tc_cache_resp_fill) runs under test-run only: " +
	"its XDP_TX answers are bytes of Redis's TCP stream that the server's socket never sent, " +
	"and upstream kernels cannot advance that socket's sequence numbers from XDP " +
	"(Huawei's kernel adds a helper for it); attach the memcached programs (xdp_cache_rx, tc_cache_fill) instead")

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
	// MaxGetKeys is the most keys of a multi-key get answered from the
	// cache; a get of more passes to the server.
	MaxGetKeys = 8
	// MaxPending is the most unacknowledged writes remembered per
	// connection; one more makes the next reply flush the cache.
	MaxPending = 4
	// FrameHeaderLen is the length of memcached's UDP frame header.
	FrameHeaderLen = 8
)

// Where a struct cache_value (PROTOCOL.md "Maps") keeps its sequence word
// (odd: held by a writer, or dead), the reply text's length and the text,
// for code that reads the cache map's values as bytes.
const (
	ValueSeqOffset  = unsafe.Offsetof(CacheCacheValue{}.Seq)
	ValueTlenOffset = unsafe.Offsetof(CacheCacheValue{}.Tlen)
	ValueTextOffset = unsafe.Offsetof(CacheCacheValue{}.Text)
)

func init() {
	bpf.RegisterBuiltin(BuiltinName, _CacheBytes)
	// The live Redis cache is its own object, which 'cache attach --redis'
	// loads; doctor checks it as "object cache --redis".
	bpf.RegisterAttached(BuiltinName+" --redis", _RedisBytes)
}

// Object returns the compiled ELF, as embedded in bpfsh.
func Object() []byte { return _CacheBytes }

// Spec parses the embedded object into a fresh CollectionSpec, which the
// caller may change (constants, map sizes) before loading it.
func Spec() (*ebpf.CollectionSpec, error) { return LoadCache() }
