// SPDX-License-Identifier: Apache-2.0

// Package benchrun runs one bpfsh command line for a bench command
// (bench/cache, bench/kv, bench/proxy) as `bpfsh -c` would, in a temporary pin root and
// state directory, so that a bench touches nothing of the user's.
package benchrun

import (
	"fmt"
	"os"
	"strings"

	"github.com/bpfsh/bpfsh/shell"
)

// Run runs line (e.g. "cache bench clients 8 ...") through shell.Main,
// with -j when jsonOut, and returns its exit code. name is the bench's
// name (bench/NAME), for messages and the temporary directories' names.
// It refuses to run (exit code 2) unless it is root, which XDP and
// network namespaces need. The pin root (under /sys/fs/bpf) and the state
// directory (XDG_STATE_HOME) it makes are removed when the line is done.
func Run(name, line string, jsonOut bool) int {
	return RunAsRoot(name, "XDP, network namespaces", line, jsonOut)
}

// RunAsRoot is Run for a bench that needs root for other reasons: why
// says which, in the message when it is not root.
func RunAsRoot(name, why, line string, jsonOut bool) int {
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "bench/%s: run as root (%s): sudo go run ./bench/%s\n", name, why, name)
		return 2
	}
	pinRoot, err := os.MkdirTemp("/sys/fs/bpf", "bpfsh-"+name+"bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/%s: temporary pin root: %v (is bpffs mounted on /sys/fs/bpf?)\n", name, err)
		return 1
	}
	defer os.RemoveAll(pinRoot)
	state, err := os.MkdirTemp("", "bpfsh-"+name+"bench-state-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/%s: temporary state directory: %v\n", name, err)
		return 1
	}
	defer os.RemoveAll(state)
	os.Setenv("XDG_STATE_HOME", state)
	args := []string{"--pin-root", pinRoot, "-c", line}
	if jsonOut {
		args = append([]string{"-j"}, args...)
	}
	return shell.Main(args, strings.NewReader(""), os.Stdout, os.Stderr)
}
