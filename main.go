// SPDX-License-Identifier: Apache-2.0

// Command bpfsh is an interactive shell for loading, pinning, inspecting
// and test-running eBPF programs, with three in-kernel database programs
// to learn from. `go run .` works as root, and as a user with sudo (it
// re-runs itself as root).
package main

import (
	"os"

	"github.com/bpfsh/bpfsh/shell"
)

func main() {
	shell.BecomeRoot(os.Args[1:], os.Stderr)
	os.Exit(shell.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
