// SPDX-License-Identifier: Apache-2.0

// Package proxy is bpfsh's PostgreSQL transaction-pooling proxy, after
// Tigger (VLDB'23): sk_skb programs on a client and a server sockhash
// walk PostgreSQL v3 messages and move bytes between linked sockets in
// the kernel (PROTOCOL.md), and a user-space front does start-up,
// authentication and everything the programs hand it.
package proxy

import (
	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// BuiltinName is the name "load" knows the embedded object by.
const BuiltinName = "proxy"

// Names of the programs and maps as they are pinned under <pin-root>/NAME/.
const (
	ParserProgram = "sk_pg_parser" // stream parser of both sockhashes
	ClientProgram = "sk_pg_client" // stream verdict of client_socks
	ServerProgram = "sk_pg_server" // stream verdict of server_socks
	WalkProgram   = "tc_pg_walk"   // the walker over a TCP packet, for test-run

	ClientSocksMap = "client_socks"
	ServerSocksMap = "server_socks"
	ConnsMap       = "conns"
	IdleMap        = "idle"
	EventsMap      = "events"
	StatsMap       = "stats"
	WalksMap       = "walks"
	WalkLastMap    = "walk_last"
	CancellingMap  = "cancelling"
)

// VarPoolMode is the load-time constant with the pool mode (load proxy
// set pool_mode=2 for session pooling).
const VarPoolMode = "pool_mode"

// Ports tc_pg_walk and the PG packet layer take for PostgreSQL's.
const (
	Port        = 5432 // PostgreSQL
	BouncerPort = 6432 // PgBouncer and bpfsh's proxy
)

// Limits, as PROTOCOL.md documents them.
const (
	// MaxSockets is how many sockets each sockhash holds.
	MaxSockets = 65536
	// MaxIdle is how many servers the idle stack holds.
	MaxIdle = 4096
	// MaxMessageLen is the longest message accepted, its length field
	// included; a longer length is malformed.
	MaxMessageLen = 1 << 30
	// WalkSteps is the most messages walked in one chunk; a chunk with
	// more is passed to user space (bound_hit).
	WalkSteps = 1 << 17
	// IdleTries is how many stale idle-stack entries one pop skips.
	IdleTries = 8
)

// Roles of a socket in conns.
const (
	RoleClient = 1
	RoleServer = 2
)

// Flags of a socket in conns.
const (
	FlagWaiting = 1 // client: no server was idle; its bytes go to user space
	FlagPassing = 2 // every byte goes to user space (Terminate, malformed, bound, redirect failed)
	FlagIdle    = 4 // server: on the idle stack
	FlagHeld    = 8 // server: unlinked while a cancel request was in flight; Unhold releases it
)

// Walker flags (pg_walk.flags).
const (
	WalkStatus = 1 // the next byte is a ReadyForQuery status
	WalkBroken = 2 // a malformed header was seen: the stream is lost
)

func init() { bpf.RegisterBuiltin(BuiltinName, _ProxyBytes) }

// Object returns the compiled ELF, as embedded in bpfsh.
func Object() []byte { return _ProxyBytes }

// Spec parses the embedded object into a fresh CollectionSpec, which the
// caller may change (constants, map sizes) before loading it.
func Spec() (*ebpf.CollectionSpec, error) { return LoadProxy() }
