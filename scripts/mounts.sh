#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mounts bpffs and tracefs when they are not, as bpfsh itself would.
set -euo pipefail
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
