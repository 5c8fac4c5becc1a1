#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what bpfsh's tests need, only when it is missing, from Debian's
# packages. Building and running bpfsh needs none of it.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have clang || need+=(clang)
have llvm-strip || need+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
have bpftool || [ -x /usr/sbin/bpftool ] || need+=(bpftool)
have ip || need+=(iproute2)
# kv bench compares with redis; its tests run redis-server and redis-benchmark.
have redis-server || need+=(redis-server)
have redis-benchmark || need+=(redis-tools)
# cache bench and the cache's live tests run memcached in a namespace.
[ -x /usr/bin/memcached ] || need+=(memcached)
# The proxy's tests and proxy bench run a throwaway PostgreSQL and
# PgBouncer; Debian's postgresql brings initdb, pg_ctl, psql and pgbench
# (pgbench is in postgresql-NN itself, not in postgresql-contrib).
compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || need+=(postgresql)
[ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
# The kernel matrix (scripts/kernels.sh) boots Debian's kernels under qemu
# with an initramfs around a static busybox (busybox-static, not the
# dynamically linked busybox); 6.12's modules are xz-compressed.
have qemu-system-x86_64 || need+=(qemu-system-x86)
[ "$(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null)" = installed ] || need+=(busybox-static)
have xz || need+=(xz-utils)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing: ${need[*]}; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
