#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The kernel matrix (make test-kernels): bpfsh's tests inside each Debian
# kernel listed in scripts/kernels.list, booted under qemu, one after the
# other; a summary per kernel like 'make test' prints, then a table. Exits 1
# if a test failed or a guest did not finish on any kernel. The host's own
# kernel is not booted again: 'make test' covers it.
#
# The work is in Go (scripts/kernels): fetching and unpacking the kernels,
# building the static test binaries and the initramfs, booting, and turning
# the guests' output into test2json for scripts/testsum.
#
# Arguments go to it, e.g.  -only 6.1.0-57-amd64  -pkgs ./bpf,./shell
# -run TestLoad  -keep  (go run ./scripts/kernels -h lists them).
# BPFSH_KERNEL_CACHE: where the kernel packages are kept
# (default /var/cache/bpfsh/kernels as root, else ~/.cache/bpfsh/kernels).
# BPFSH_QEMU_ACCEL: kvm or tcg, to skip the probe for a working KVM.
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu, busybox-static and xz come from Debian like the rest of the test
# dependencies; root is needed only when something is missing.
scripts/deps.sh
exec go run ./scripts/kernels "$@"
