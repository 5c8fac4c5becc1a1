#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite: dependencies, mounts, object check, vet, the tests
# against the real kernel (as root), and bounded fuzzing. Prints the plain
# summary line 'N passed, N failed, N skipped' and the reason of every skip.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "the tests load programs into the kernel: run this as root (there is no sudo here)" >&2
		exit 1
	fi
	echo "the tests load programs into the kernel: re-running as root" >&2
	# Through env, not --preserve-env: sudo's secure_path (Ubuntu's leaves
	# out /usr/local/go/bin) would replace a preserved PATH.
	vars=(PATH="$PATH")
	for v in GOPATH GOCACHE GOMODCACHE GOFLAGS FUZZTIME; do
		if [ -n "${!v:-}" ]; then vars+=("$v=${!v}"); fi
	done
	exec sudo env "${vars[@]}" "$PWD/scripts/test.sh" "$@"
fi

scripts/deps.sh
scripts/mounts.sh
scripts/check-objects.sh

echo "== go vet"
go vet ./...
gofmt_out=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$gofmt_out" ]; then
	echo "gofmt would change: $gofmt_out" >&2
	exit 1
fi

echo "== go test (real kernel)"
go build -o /dev/null ./scripts/testsum
status=0
go test -count=1 -json -timeout 15m ./... | go run ./scripts/testsum || status=$?

echo "== fuzzing (${FUZZTIME:=15s} per target)"
for target in $(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/^func //' | sort -u); do
	pkg=$(dirname "$(grep -rlE "^func ${target}\(" --include='*_test.go' . | head -1)")
	echo "-- $target ($pkg)"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/bpfsh-fuzz.log 2>&1 || {
		cat /tmp/bpfsh-fuzz.log
		echo "fuzzing $target found a failure (the input is saved under $pkg/testdata/fuzz/$target)" >&2
		status=1
	}
done
exit $status
