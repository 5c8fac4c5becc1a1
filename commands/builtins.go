package commands

// Packages that register built-in objects ("load kv") and their packet
// layers (KV) from init functions.
import (
	_ "github.com/bpfsh/bpfsh/bpf/cache"
	_ "github.com/bpfsh/bpfsh/bpf/kv"
	_ "github.com/bpfsh/bpfsh/bpf/proxy"
)
