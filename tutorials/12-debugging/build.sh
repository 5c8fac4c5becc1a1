#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Rebuilds lesson 12's objects from their C sources; 'go generate' runs it
# in this folder (see gen.go), and scripts/check-objects.sh checks that the
# committed objects are what it builds. Debian's clang and llvm-strip, as
# for bpfsh's own programs: -fdebug-prefix-map and llvm-strip -g keep the
# bytes independent of where the repository is checked out (BTF, with the
# source lines, stays).
set -e
for prog in pong pong_fixed; do
	clang -O2 -g -Wall -target bpf -I../../bpf/include \
		-fdebug-prefix-map="$(pwd)"=. -c "$prog.bpf.c" -o "$prog.o"
	llvm-strip -g "$prog.o"
done
