// SPDX-License-Identifier: Apache-2.0

// Package hello holds lesson 01's BPF program: hello.bpf.c and the object
// compiled from it, hello.bpf.o, committed so that learners need no clang.
// scripts/check-objects.sh runs go generate ./... and fails when the
// committed object differs from what the source compiles to.
package hello

// -fdebug-compilation-dir=. keeps the build directory out of the object's
// debug info, so the object is the same whichever checkout built it.
//go:generate clang -O2 -g -Wall -target bpf -I../../bpf/include -fdebug-compilation-dir=. -c hello.bpf.c -o hello.bpf.o
