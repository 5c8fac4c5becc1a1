// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// sample counts the packets it sees under key 0 of its map counts: the
// program of the lab engine's own test lesson. Rebuild from this folder:
//   clang -O2 -g -Wall -target bpf -I../../../../bpf/include -c sample.bpf.c -o sample.o

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int xdp_sample(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 one = 1, *n = bpf_map_lookup_elem(&counts, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_ANY);
	return XDP_PASS;
}
