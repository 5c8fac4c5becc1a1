// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// engine.bpf.c is the debugger engine's own test program (engine_test.go):
// a bpf_loop callback, a bpf-to-bpf call, a map value whose fields change,
// a bpf_printk line, and a program calling a helper the emulator does not
// emulate. It is built with clang -g and kept unstripped, so that its
// DWARF describes its locals.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u32 last_len;
	__u32 mixed;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct flow_stats);
} hx_flows SEC(".maps");

struct loop_state {
	__u32 sum;
	__u32 calls;
};

// add_step is bpf_loop's callback: it sums 3*i and stops past 100.
static long add_step(__u32 i, struct loop_state *st)
{
	st->sum += 3 * i;
	st->calls++;
	return st->sum > 100;
}

// mix is a real bpf-to-bpf call (never inlined).
static __attribute__((noinline)) __u32 mix(__u32 a, __u32 b)
{
	__u32 m = (a << 5) ^ b;

	return m + 7;
}

SEC("xdp")
int hx_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct loop_state ls = {};
	struct flow_stats init = {}, *st;
	__u32 saddr, len;

	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	saddr = ip->saddr;
	len = end - data;
	bpf_loop(20, add_step, &ls, 0);
	st = bpf_map_lookup_elem(&hx_flows, &saddr);
	if (!st) {
		bpf_map_update_elem(&hx_flows, &saddr, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&hx_flows, &saddr);
		if (!st)
			return XDP_ABORTED;
	}
	st->packets++;
	st->bytes += len;
	st->last_len = len;
	st->mixed = mix(ls.sum, ls.calls);
	bpf_printk("hx_count %u packets, sum %u", st->packets, ls.sum);
	return eth->h_proto == 0x0008 ? XDP_TX : XDP_DROP;
}

// hx_unknown asks the MTU of the loopback: bpf_check_mtu is a helper the
// emulator does not emulate, so a session stops there.
SEC("xdp")
int hx_unknown(struct xdp_md *ctx)
{
	__u32 mtu = 0;
	long err = bpf_check_mtu(ctx, 1, &mtu, 0, 0);

	if (err)
		return XDP_DROP;
	return mtu > 1000 ? XDP_PASS : XDP_ABORTED;
}
