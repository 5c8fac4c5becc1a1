// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Check is one line of doctor's report.
type Check struct {
	Check  string `json:"check"`  // what was checked, e.g. "bpffs"
	Status string `json:"status"` // StatusOK, StatusMissing or StatusWarn
	Detail string `json:"detail"` // what was found
	Fix    string `json:"fix"`    // what to do about it; "" when nothing
}

// Statuses of a Check.
const (
	StatusOK      = "ok"      // works as bpfsh needs
	StatusMissing = "missing" // bpfsh cannot do its job without the fix
	StatusWarn    = "warn"    // works, but something is degraded or optional
)

// Where doctor looks.
const (
	vmlinuxBTF         = "/sys/kernel/btf/vmlinux"
	jitSysctl          = "/proc/sys/net/core/bpf_jit_enable"
	unprivilegedSysctl = "/proc/sys/kernel/unprivileged_bpf_disabled"
)

// Doctor checks everything bpfsh needs from the machine it runs on and
// says how to fix what is missing. Like the commands that need them, it
// mounts bpffs and tracefs when they are not mounted and it may (root),
// and reports that it did.
func Doctor() []Check {
	checks := []Check{
		checkKernel(),
		checkBTF(),
		mountCheck("bpffs", BPFFSPath, unix.BPF_FS_MAGIC, "bpf", unix.Mount),
		mountCheck("tracefs", TraceFSPath, unix.TRACEFS_MAGIC, "tracefs", unix.Mount),
		checkPrivileges(),
		checkJIT(),
		checkUnprivileged(),
		checkMemlock(),
		checkTestRun(),
		checkBpftool(),
	}
	return append(checks, checkBuiltins()...)
}

func checkKernel() Check {
	rel, err := KernelRelease()
	if err != nil {
		return Check{"kernel", StatusMissing, err.Error(), "check that /proc and uname work"}
	}
	c := Check{Check: "kernel"}
	major, minor, err := parseRelease(rel)
	switch {
	case err != nil:
		c.Status, c.Detail = StatusWarn, fmt.Sprintf("Linux %s (cannot tell its version)", rel)
	case major > 5 || major == 5 && minor >= 11:
		c.Status, c.Detail = StatusOK, "Linux "+rel
	default:
		c.Status, c.Detail = StatusWarn, fmt.Sprintf("Linux %s: older than 5.11, some features (ring buffers, memcg accounting, BTF-typed values) may be missing", rel)
		c.Fix = "use Linux 5.15 or newer"
	}
	return c
}

func checkBTF() Check {
	fi, err := os.Stat(vmlinuxBTF)
	if err != nil {
		return Check{"btf", StatusMissing, vmlinuxBTF + " is missing: the kernel has no BTF", "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (CO-RE programs and kernel types need it)"}
	}
	return Check{"btf", StatusOK, fmt.Sprintf("%s (%d KiB)", vmlinuxBTF, fi.Size()/1024), ""}
}

// mountCheck checks that the file system named what is mounted at dir,
// mounting it (with mount) when it is not.
func mountCheck(what, dir string, magic int64, fstype string, mount mountFunc) Check {
	if Mounted(dir, magic) {
		return Check{what, StatusOK, "mounted at " + dir, ""}
	}
	if err := ensureMounted(dir, magic, fstype, what, mount); err != nil {
		return Check{what, StatusMissing, err.Error(), fmt.Sprintf("mount -t %s %s %s (as root)", fstype, fstype, dir)}
	}
	return Check{what, StatusOK, fmt.Sprintf("was not mounted at %s; bpfsh mounted it now", dir), ""}
}

func checkPrivileges() Check {
	caps, err := EffectiveCaps()
	if err != nil {
		return Check{"privileges", StatusMissing, err.Error(), "run bpfsh as root"}
	}
	var have, lack []string
	for _, c := range []int{CapBPF, CapPerfmon, CapNetAdmin, CapSysAdmin} {
		if HasCap(caps, c) {
			have = append(have, CapNames[c])
		} else {
			lack = append(lack, CapNames[c])
		}
	}
	who := fmt.Sprintf("uid %d", os.Geteuid())
	switch {
	case len(lack) == 0:
		return Check{"privileges", StatusOK, who + ", effective " + strings.Join(have, " "), ""}
	case !HasCap(caps, CapBPF) && !HasCap(caps, CapSysAdmin):
		return Check{"privileges", StatusMissing, who + ", lacking " + strings.Join(lack, " ") + ": cannot load or read BPF objects", "run bpfsh as root, e.g. sudo bpfsh"}
	}
	return Check{"privileges", StatusWarn, who + ", lacking " + strings.Join(lack, " ") + ": some commands will fail (attach needs CAP_NET_ADMIN, tracing CAP_PERFMON)", "run bpfsh as root, e.g. sudo bpfsh"}
}

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func checkJIT() Check {
	const fix = "sysctl -w net.core.bpf_jit_enable=1"
	v, err := readSysctl(jitSysctl)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Check{"jit", StatusWarn, "no " + jitSysctl + ": the kernel has no BPF JIT, programs are interpreted", "use a kernel built with CONFIG_BPF_JIT=y"}
	case err != nil:
		return Check{"jit", StatusWarn, err.Error(), "run bpfsh as root"}
	case v == "1":
		return Check{"jit", StatusOK, "enabled (bpf_jit_enable=1)", ""}
	case v == "2":
		return Check{"jit", StatusWarn, "enabled with debug output to the kernel log (bpf_jit_enable=2)", fix}
	}
	return Check{"jit", StatusWarn, "disabled (bpf_jit_enable=" + v + "): programs are interpreted, slower", fix}
}

func checkUnprivileged() Check {
	v, err := readSysctl(unprivilegedSysctl)
	if err != nil {
		return Check{"unprivileged bpf", StatusWarn, "cannot read " + unprivilegedSysctl + ": " + err.Error(), ""}
	}
	switch v {
	case "0":
		return Check{"unprivileged bpf", StatusWarn, "allowed (unprivileged_bpf_disabled=0): any user may load socket filters, a known attack surface", "sysctl -w kernel.unprivileged_bpf_disabled=2"}
	case "1":
		return Check{"unprivileged bpf", StatusOK, "disabled until reboot (unprivileged_bpf_disabled=1); bpfsh runs as root anyway", ""}
	}
	return Check{"unprivileged bpf", StatusOK, "disabled (unprivileged_bpf_disabled=" + v + "); bpfsh runs as root anyway", ""}
}

func checkMemlock() Check {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return Check{"memlock", StatusWarn, "getrlimit: " + err.Error(), ""}
	}
	limit := "unlimited"
	if lim.Cur != unix.RLIM_INFINITY {
		limit = fmt.Sprintf("%d KiB", lim.Cur/1024)
	}
	if kernelAtLeast(5, 11) {
		return Check{"memlock", StatusOK, "limit " + limit + "; does not matter: Linux >= 5.11 charges BPF memory to the memory cgroup", ""}
	}
	if lim.Cur == unix.RLIM_INFINITY {
		return Check{"memlock", StatusOK, "unlimited (Linux < 5.11 charges BPF memory to it)", ""}
	}
	if caps, err := EffectiveCaps(); err == nil && HasCap(caps, 24 /* CAP_SYS_RESOURCE */) {
		return Check{"memlock", StatusOK, "limit " + limit + "; bpfsh lifts it when loading (Linux < 5.11 charges BPF memory to it)", ""}
	}
	return Check{"memlock", StatusWarn, "limit " + limit + ": Linux < 5.11 charges BPF maps to it, so big maps fail with EPERM", "ulimit -l unlimited before starting bpfsh"}
}

// checkTestRun loads the smallest XDP program (return XDP_PASS) and runs it
// once with BPF_PROG_TEST_RUN, which run and expect depend on.
func checkTestRun() Check {
	const name = "test_run"
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "bpfsh_probe",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return Check{name, StatusMissing, "cannot load a probe program: permission denied", "run bpfsh as root"}
		}
		return Check{name, StatusMissing, "cannot load an XDP probe program: " + err.Error(), "use Linux 4.12 or newer with CONFIG_BPF_SYSCALL=y"}
	}
	defer prog.Close()
	ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)})
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return Check{name, StatusMissing, "BPF_PROG_TEST_RUN is not supported for XDP by this kernel", "use Linux 4.12 or newer; run and expect need it"}
	case err != nil:
		return Check{name, StatusMissing, "BPF_PROG_TEST_RUN failed: " + err.Error(), "use Linux 4.12 or newer; run and expect need it"}
	case ret != 2:
		return Check{name, StatusWarn, fmt.Sprintf("the probe returned %d, not 2 (XDP_PASS)", ret), "report this kernel's behaviour"}
	}
	return Check{name, StatusOK, "BPF_PROG_TEST_RUN works (XDP probe returned XDP_PASS)", ""}
}

// checkBpftool looks for bpftool, which bpfsh does not need but whose pins
// and batch files it shares.
func checkBpftool() Check {
	path, err := exec.LookPath("bpftool")
	if err != nil {
		for _, p := range []string{"/usr/sbin/bpftool", "/sbin/bpftool", "/usr/local/sbin/bpftool"} {
			if _, serr := os.Stat(p); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return Check{"bpftool", StatusWarn, "not installed (optional: for comparing with bpfsh)", "apt-get install bpftool"}
	}
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		return Check{"bpftool", StatusWarn, path + " does not run: " + err.Error(), "reinstall bpftool"}
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return Check{"bpftool", StatusOK, first, ""}
}
