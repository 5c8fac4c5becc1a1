// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

// pong answers UDP "ping" datagrams to port 7777 with "pong", in XDP, the
// way bpfsh's kv and cache programs answer their requests: the request
// becomes the reply in place (addresses and ports swapped, payload
// rewritten, checksum updated) and goes back out with XDP_TX.
//
// Lesson 12: this copy has a bug. Find it with run, trace and map diffs.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// The port pong listens on (load pong.o set pong_port=N for another).
volatile const __u16 pong_port = 7777;

enum { STAT_SEEN, STAT_PONG, STAT_PASS, STAT_MAX };

// stats: 0 datagrams to the port, 1 pongs sent, 2 datagrams passed.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// replies: pongs sent, by the UDP port they were sent to (host order).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u64);
} replies SEC(".maps");

static void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &i);

	if (v)
		__sync_fetch_and_add(v, 1);
}

// csum_replace2 updates an Internet checksum for a 16-bit word that
// changed from old to new (RFC 1624: HC' = ~(~HC + ~m + m')).
static __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_pong(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	unsigned char *p, mac[ETH_ALEN];
	__u16 client, port;
	__be32 addr;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(pong_port))
		return XDP_PASS;
	count(STAT_SEEN);

	p = (void *)(udp + 1);
	if ((void *)(p + 4) > end || udp->len != bpf_htons(sizeof(*udp) + 4) ||
	    p[0] != 'p' || p[1] != 'i' || p[2] != 'n' || p[3] != 'g') {
		count(STAT_PASS);
		return XDP_PASS;
	}
	client = bpf_ntohs(udp->source);

	// The reply goes back where the request came from. Swapping two
	// 16-bit words of a checksummed header leaves its checksum as it was.
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	addr = ip->daddr;
	ip->daddr = ip->saddr;
	ip->saddr = addr;
	udp->source = udp->dest;
	udp->dest = udp->source;

	// "ping" -> "pong": only the word "pi" -> "po" changes.
	p[1] = 'o';
	if (udp->check)
		udp->check = bpf_htons(csum_replace2(bpf_ntohs(udp->check), 0x7069, 0x706f));

	port = bpf_ntohs(udp->dest);
	bpf_printk("xdp_pong: ping from port %u, pong to port %u", client, port);
	__u64 one = 1, *n = bpf_map_lookup_elem(&replies, &port);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&replies, &port, &one, BPF_NOEXIST);
	count(STAT_PONG);
	return XDP_TX;
}
