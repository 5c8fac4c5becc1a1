// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// KernelRelease is the running kernel's release string, as uname -r prints it.
func KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// KernelVersion is the major and minor number of the running kernel
// ("6.18.44-fc" -> 6, 18).
func KernelVersion() (major, minor int, err error) {
	rel, err := KernelRelease()
	if err != nil {
		return 0, 0, err
	}
	return parseRelease(rel)
}

func parseRelease(rel string) (major, minor int, err error) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("kernel release %q is not MAJOR.MINOR...", rel)
	}
	major, err1 := strconv.Atoi(parts[0])
	// The minor number may run into a suffix: "6.1rc2", "5.4-generic".
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	minor, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("kernel release %q is not MAJOR.MINOR...", rel)
	}
	return major, minor, nil
}

// kernelAtLeast reports whether the running kernel is major.minor or newer;
// false when the version cannot be read.
func kernelAtLeast(major, minor int) bool {
	ma, mi, err := KernelVersion()
	return err == nil && (ma > major || ma == major && mi >= minor)
}

// Capabilities bpfsh cares about (bit numbers from linux/capability.h).
const (
	CapNetAdmin = 12
	CapSysAdmin = 21
	CapPerfmon  = 38
	CapBPF      = 39
)

// CapNames names the capabilities above for messages.
var CapNames = map[int]string{
	CapNetAdmin: "CAP_NET_ADMIN",
	CapSysAdmin: "CAP_SYS_ADMIN",
	CapPerfmon:  "CAP_PERFMON",
	CapBPF:      "CAP_BPF",
}

// EffectiveCaps is this process's effective capability set (CapEff in
// /proc/self/status) as a bit mask.
func EffectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("read capabilities: CapEff %q: %w", v, err)
			}
			return caps, nil
		}
	}
	return 0, fmt.Errorf("read capabilities: no CapEff line in /proc/self/status")
}

// HasCap reports whether the effective set caps holds capability c.
func HasCap(caps uint64, c int) bool { return caps&(1<<c) != 0 }

// CheckPrivilege says, in one line, why this process cannot load BPF
// objects, or returns nil when it can: root, or CAP_BPF or CAP_SYS_ADMIN.
// Checking first turns the kernel's bare EPERM, which could mean many
// things, into advice.
func CheckPrivilege(what string) error {
	caps, err := EffectiveCaps()
	if err != nil {
		return err
	}
	if HasCap(caps, CapBPF) || HasCap(caps, CapSysAdmin) {
		return nil
	}
	return fmt.Errorf("%s needs root (or CAP_BPF and CAP_SYS_ADMIN) to use bpf(2) and bpffs; run bpfsh as root, e.g. sudo bpfsh", what)
}
