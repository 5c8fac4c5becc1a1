// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const qemuBin = "qemu-system-x86_64"

// The guest: 2 vCPUs (run_test needs two CPUs for its on-another-CPU
// case) and 2 GiB, of which the uncompressed initramfs takes ~300 MB
// (the archive, then its unpacked copy).
const (
	guestCPUs = "2"
	guestMem  = "2048"
)

// accel is how qemu runs the guest's CPU.
type accel struct {
	Name string   // "kvm" or "tcg"
	Args []string // qemu's flags for it
}

var (
	accelKVM = accel{"kvm", []string{"-enable-kvm", "-cpu", "host"}}
	// TCG emulates; -cpu max gives the guest every feature qemu can
	// emulate (RDRAND among them, so the guest's entropy is ready at
	// once and Go's getrandom does not block). thread=single runs the
	// two vCPUs in turn on one host thread: with a thread per vCPU the
	// kernel's live code patching (jump labels, text_poke's int3) raced
	// qemu's translated code, and 6.12 guests died of an "Oops: int3" in
	// __schedule or try_to_wake_up when a trace event was enabled. One
	// host thread per guest also fits the matrix's two guests on two
	// cores.
	accelTCG = accel{"tcg", []string{"-accel", "tcg,thread=single", "-cpu", "max"}}
)

// chooseAccel returns KVM only when it actually works: /dev/kvm can exist
// and still not run a guest (nested virtualization: on this kind of
// machine -cpu host aborts on an MSR, and with that feature masked the
// guest hangs after the decompressor). So a kernel boots a tiny
// initramfs that writes to ttyS1, and must do so within the time limit.
func chooseAccel(want string, k *kernel, work string) (accel, string) {
	switch want {
	case "kvm":
		return accelKVM, "KVM (asked for)"
	case "tcg":
		return accelTCG, "TCG (asked for)"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return accelTCG, fmt.Sprintf("TCG (no usable /dev/kvm: %v)", err)
	}
	f.Close()

	dir := filepath.Join(work, "kvm-probe")
	os.MkdirAll(dir, 0o755)
	initrd := filepath.Join(dir, "initrd")
	fi, err := os.Create(initrd)
	if err != nil {
		return accelTCG, fmt.Sprintf("TCG (KVM probe: %v)", err)
	}
	c := newCpio(fi)
	c.CopyFile("bin/busybox", busyboxPath)
	c.Symlink("bin/sh", "busybox")
	c.Dir("dev")
	c.Dir("proc")
	c.File("init", 0o755, []byte("#!/bin/sh\n/bin/busybox mount -t devtmpfs d /dev\necho kvm-ok >/dev/ttyS1\n/bin/busybox poweroff -f\n"))
	err = c.Close()
	fi.Close()
	if err != nil {
		return accelTCG, fmt.Sprintf("TCG (KVM probe: %v)", err)
	}
	// Under KVM a kernel reaches init in 1-2 s; a guest that has not in 10
	// is not going to be usable.
	const limit = 10 * time.Second
	start := time.Now()
	res, err := boot(context.Background(), accelKVM, k, initrd, dir, limit)
	if err == nil && strings.Contains(string(res), "kvm-ok") {
		return accelKVM, fmt.Sprintf("KVM (a probe guest reached init in %.1fs)", time.Since(start).Seconds())
	}
	why := "it did not reach init within " + limit.String()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		why = err.Error()
	}
	return accelTCG, fmt.Sprintf("TCG (/dev/kvm is there but a KVM guest does not run: %s)", firstLine(why))
}

// kernelAppend is added to every guest's kernel command line (-append).
var kernelAppend string

// errTimeout is returned by boot when the guest did not power off in time.
var errTimeout = errors.New("the guest did not finish in time")

// boot runs kernel k with initrd until the guest powers off (or panics:
// panic=-1 reboots at once and -no-reboot turns that into qemu exiting;
// oops=panic makes a kernel oops in a test end the guest the same way,
// with the oops on the console, rather than leave a half-dead kernel to
// run the remaining tests) or limit passes. It returns what the guest
// wrote to ttyS1; ttyS0, the kernel's console, goes to dir/console.log.
func boot(ctx context.Context, a accel, k *kernel, initrd, dir string, limit time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	console := filepath.Join(dir, "console.log")
	results := filepath.Join(dir, "results.log")
	os.Remove(console)
	os.Remove(results)
	args := append([]string{
		"-nodefaults", "-display", "none", "-no-reboot",
		"-smp", guestCPUs, "-m", guestMem,
		"-kernel", k.Vmlinuz, "-initrd", initrd,
		// quiet keeps the boot log off the (slow, emulated) serial port;
		// warnings, oopses and panics still reach it.
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 oops=panic quiet " + kernelAppend),
		"-serial", "file:" + console,
		"-serial", "file:" + results,
	}, a.Args...)
	cmd := exec.CommandContext(ctx, qemuBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	out, _ := os.ReadFile(results)
	if ctx.Err() != nil {
		return out, fmt.Errorf("%w (%s): %w", errTimeout, limit, ctx.Err())
	}
	if err != nil {
		return out, fmt.Errorf("%s: %v: %s", qemuBin, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// consoleTail is the end of a guest's kernel console, for a guest that
// did not finish: the panic or the hang is there.
func consoleTail(dir string, lines int) string {
	b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	return tail(b, lines)
}

// tail is the last lines of b, without the test2json framing bytes.
func tail(b []byte, lines int) string {
	s := strings.NewReplacer("\r", "", "\x16", "").Replace(string(b))
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
