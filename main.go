// SPDX-License-Identifier: Apache-2.0

// Command bpfsh is an interactive shell for loading, pinning, inspecting
// and test-running eBPF programs, with three in-kernel database programs
// to learn from. Run it as root: go run .
package main

import (
	"os"

	"github.com/bpfsh/bpfsh/shell"
)

func main() {
	os.Exit(shell.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
