// SPDX-License-Identifier: Apache-2.0

package cache

// cache.bpf.c is compiled with -mcpu=v3 for atomic fetch-and-add, and
// -funsigned-char because key bytes are declared char (so that BTF shows
// them as text) but must stay unsigned.
//go:generate go tool bpf2go -cc clang -target bpfel -type cache_miss_key -type cache_miss -type cache_meta Cache cache.bpf.c -- -I../include -O2 -g -Wall -mcpu=v3 -funsigned-char

// redis.bpf.c (the live Redis cache: sock_ops, sk_skb and sk_msg) is a
// separate object with its own maps, built the same way.
//go:generate go tool bpf2go -cc clang -target bpfel -type r_key -type r_entry -type r_conn -type r_name Redis redis.bpf.c -- -I../include -O2 -g -Wall -mcpu=v3 -funsigned-char
