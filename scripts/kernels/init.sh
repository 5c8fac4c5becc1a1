#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# /init of a kernel-matrix guest (scripts/kernels). It runs as pid 1 from
# the initramfs, sets up what 'make test' finds on a normal host (bpffs,
# tracefs, cgroup v2, /run/netns, loopback up, the network modules), runs
# each test binary from its package directory as 'go test' would, and
# powers off.
#
# The results go to the second serial port, ttyS1, which the host captures
# to a file of its own: the kernel writes its messages to ttyS0 only, so
# nothing can land in the middle of a test's output. Lines starting with
# "@@matrix " frame each package; the host splits on them.

export PATH=/bin HOME=/root TMPDIR=/tmp LANG=C.UTF-8
# Tests that need what a guest lacks (servers to compare with, bpftool,
# the go command) skip on this, saying they run on the host kernel only.
export BPFSH_GUEST=1
# shell's pty tests run this bpfsh instead of building one with go build.
export BPFSH_BIN=/bin/bpfsh

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
. /matrix/config
# The repository sits at its host path; a checkout under /tmp or /run must
# not be hidden by a mount (the initramfs itself is writable anyway).
case "$REPO/" in /tmp/*) ;; *) mount -t tmpfs tmpfs /tmp ;; esac
case "$REPO/" in /run/*) ;; *) mount -t tmpfs tmpfs /run ;; esac
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup

out=/dev/ttyS1
# Raw: no \n -> \r\n on the way out, no echo of anything coming back.
stty -F $out raw -echo 2>/dev/null
say() { printf '\n@@matrix %s\n' "$*" >$out; }

say kernel "$(uname -r)"

# Debian builds veth, the tc classifiers and the like as modules; the host
# resolved their dependencies and decompressed them (/matrix/modules lists
# them in load order).
while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "$mod" 2>>/tmp/insmod.err || say insmod-failed "$mod $(tail -1 /tmp/insmod.err)"
done </matrix/modules
ip link set lo up

# Each line: import path, directory under the repository, binary, timeout.
# The packages run one after the other, as 'go test -p 1' would: their
# output shares one port.
while read -r pkg dir bin timeout; do
	say start "$pkg"
	cd "$REPO/$dir" || { say exit "$pkg" 1; continue; }
	start=$(cut -d' ' -f1 /proc/uptime)
	# The flags go test gives a test binary it runs for -json.
	"/tests/$bin" -test.v=test2json -test.paniconexit0 -test.count=1 \
		-test.timeout="$timeout" ${TESTFLAGS:+"$TESTFLAGS"} >$out 2>&1 </dev/null
	rc=$?
	say exit "$pkg" "$rc" "$start" "$(cut -d' ' -f1 /proc/uptime)"
done </matrix/packages

say done
sync
poweroff -f
