#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rebuilds every BPF object from its C source with go generate and fails
# when the result differs from what is committed: the embedded objects must
# be exactly what their sources compile to.
set -euo pipefail
cd "$(dirname "$0")/.."
go generate ./...
changed=$(git status --porcelain -- '*.o' '*_bpfel.go' '*_bpfeb.go')
if [ -n "$changed" ]; then
	echo "committed BPF objects differ from their sources:" >&2
	echo "$changed" >&2
	echo "run 'go generate ./...' with Debian's clang ($(clang --version | head -1)) and commit the result" >&2
	exit 1
fi
echo "BPF objects match their sources"
