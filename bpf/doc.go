// SPDX-License-Identifier: Apache-2.0

// Package bpf is everything in bpfsh that talks to the kernel's BPF: object
// references, bpffs mounting and pinning, loading ELF objects, BTF-typed
// value parsing and formatting, and map dumping. It knows nothing about
// terminals: it returns values and errors for commands/ to pass on.
package bpf
