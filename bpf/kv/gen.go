// SPDX-License-Identifier: Apache-2.0

package kv

// kv.bpf.c is compiled with -mcpu=v3 for atomic fetch-and-add and
// compare-and-swap, -fno-builtin-log because the log map is named after a C
// library function, and -funsigned-char because key and value bytes are
// declared char (so that BTF shows them as text) but must stay unsigned.
//go:generate go tool bpf2go -cc clang -target bpfel -type kv_log_record Kv kv.bpf.c -- -I../include -O2 -g -Wall -mcpu=v3 -fno-builtin-log -funsigned-char
