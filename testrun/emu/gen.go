// SPDX-License-Identifier: Apache-2.0

package emu

// testdata/engine.bpf.c is the engine tests' own program, compiled with
// -g and not stripped, so that its DWARF is there to test locals with.
// -fdebug-compilation-dir=. keeps the build directory out of the object.
//go:generate clang -O2 -g -Wall -target bpf -mcpu=v3 -I../../bpf/include -fdebug-compilation-dir=. -c testdata/engine.bpf.c -o testdata/engine.bpf.o
