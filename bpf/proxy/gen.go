// SPDX-License-Identifier: Apache-2.0

package proxy

// proxy.bpf.c is compiled with -mcpu=v3 for atomic fetch-and-add,
// fetch-and-or and compare-and-swap on the per-socket state.
//go:generate go tool bpf2go -cc clang -target bpfel -type pg_conn -type pg_event -type pg_walk -type pg_walk_result -type pg_flow -type pg_flow_walk Proxy proxy.bpf.c -- -I../include -O2 -g -Wall -mcpu=v3
