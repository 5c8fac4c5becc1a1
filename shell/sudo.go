// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/bpfsh/bpfsh/bpf"
)

// NoSudoEnv names the environment variable that, set to 1, keeps bpfsh
// from re-running itself with sudo when it is not root.
const NoSudoEnv = "BPFSH_NO_SUDO"

// BecomeRoot re-runs this very binary as root through sudo when the
// process may not use bpf(2) (neither root nor CAP_BPF/CAP_SYS_ADMIN),
// so that `go run .` works for a user with sudo as it does in a root
// shell. It runs the binary by its absolute path: sudo's secure_path
// (Ubuntu's leaves out /usr/local/go/bin) then does not matter, and
// `go run`'s temporary binary is still there, since go run waits for
// this process (which sudo replaces) before removing it.
//
// It returns, having done nothing, for root, for help (-h, --help,
// help ...), with BPFSH_NO_SUDO=1, and when there is no sudo, in which
// case it says once on stderr what will fail. On success it never
// returns; a failed exec is reported and bpfsh goes on unprivileged.
func BecomeRoot(args []string, stderr io.Writer) {
	if os.Getenv(NoSudoEnv) == "1" || wantsHelp(args) {
		return
	}
	if caps, err := bpf.EffectiveCaps(); err != nil || bpf.HasCap(caps, bpf.CapBPF) || bpf.HasCap(caps, bpf.CapSysAdmin) {
		return
	}
	sudo, err := exec.LookPath("sudo")
	if err != nil {
		fmt.Fprintln(stderr, "bpfsh: not root, and there is no sudo to become root: loading and inspecting programs will fail; run bpfsh as root (su -c, or as root: go run .)")
		return
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "bpfsh: not root, and cannot find this binary to re-run it with sudo (%v); run bpfsh as root\n", err)
		return
	}
	fmt.Fprintf(stderr, "bpfsh: not root: re-running as root with sudo (%s=1 stays as you are)\n", NoSudoEnv)
	argv := append([]string{"sudo", "--", self}, args...)
	err = syscall.Exec(sudo, argv, os.Environ())
	fmt.Fprintf(stderr, "bpfsh: sudo: %v; going on without root\n", err)
}

// wantsHelp reports whether args only ask for help, which needs no root.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		}
	}
	return len(args) > 0 && args[0] == "help"
}
