// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

// hello is the first lesson's program: an XDP program that says hello for
// every packet with bpf_printk and counts packets per IP protocol in a
// hash map. It lets every packet pass.
//
// Rebuild: go generate ./tutorials/01-hello (see gen.go), which runs
//   clang -O2 -g -Wall -target bpf -I../../bpf/include -c hello.bpf.c -o hello.bpf.o
// (bpf/include supplies the asm/ headers that linux/bpf.h wants, so no
// per-architecture include directory is needed)

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// counts maps an IP protocol number (6 TCP, 17 UDP, 1 ICMP; 0 for a
// frame that is not IPv4) to the number of packets seen with it.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int xdp_hello(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 proto = 0;

	// The verifier insists: every read from the packet must be checked
	// against data_end first.
	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) <= data_end)
			proto = ip->protocol;
	}

	bpf_printk("hello: %d bytes, ip proto %d", (int)(data_end - data), proto);

	__u64 *n = bpf_map_lookup_elem(&counts, &proto);
	if (n) {
		__sync_fetch_and_add(n, 1);
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&counts, &proto, &one, BPF_NOEXIST);
	}
	return XDP_PASS;
}
