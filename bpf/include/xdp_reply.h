// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xdp_reply.h: turning a request frame around into its reply in place,
 * for XDP programs that answer with XDP_TX (cache, kv).
 *
 * Each helper re-derives its packet pointers from ctx, so it may follow a
 * helper that resized or rewrote the frame (bpf_xdp_adjust_tail,
 * bpf_xdp_store_bytes). Offsets are the caller's to bound: the verifier
 * must know them to be small. Checksums are summed in memory order
 * (csum.h); psum, the pseudo-header's running sum, is handed from the IP
 * helper to the transport's. Each returns 0, or -1 when the frame is
 * shorter than the headers (the caller drops it).
 */
#ifndef BPFSH_XDP_REPLY_H
#define BPFSH_XDP_REPLY_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "csum.h"
#include "parse.h"

/* The longest IPv4 header, options included: the size of the copy
 * reply_ipv4 sums. */
#define IPV4_HDR_MAX 60

/* reply_eth swaps the frame's Ethernet addresses. */
static __always_inline int reply_eth(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 mac[ETH_ALEN];

	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return 0;
}

/* reply_ipv4 turns the IPv4 header at l3off (hlen bytes with its options)
 * around: addresses swapped, total length for l4len bytes after the
 * header, TTL set to ttl unless ttl is negative, and the header checksum
 * recomputed. The header is summed from copy (IPV4_HDR_MAX bytes, not on
 * the stack) because its length is known only at run time. The swapped
 * addresses are added to *psum, for the transport's pseudo-header. */
static __always_inline int reply_ipv4(struct xdp_md *ctx, __u32 l3off, __u32 hlen, __u32 l4len, int ttl,
				      __u8 *copy, __u64 *psum)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + l3off;
	__u32 a;

	if ((void *)(iph + 1) > end)
		return -1;
	a = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = a;
	*psum += iph->saddr;
	*psum += iph->daddr;
	iph->tot_len = bpf_htons(hlen + l4len);
	if (ttl >= 0)
		iph->ttl = ttl;
	iph->check = 0;
	if (!in_range(&hlen, sizeof(*iph), IPV4_HDR_MAX) || bpf_xdp_load_bytes(ctx, l3off, copy, hlen))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	iph = data + l3off;
	if ((void *)(iph + 1) > end)
		return -1;
	iph->check = csum_finish(csum_buf(copy, hlen, IPV4_HDR_MAX));
	return 0;
}

/* reply_udp turns the UDP header at l4off around for a payload of plen
 * bytes: ports swapped, length set, and the checksum over the
 * pseudo-header (psum holds its addresses, from reply_ipv4 or the IPv6
 * equivalent, plus the payload's sum), the header and the payload. */
static __always_inline int reply_udp(struct xdp_md *ctx, __u32 l4off, __u32 plen, __u64 psum)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *udp = data + l4off;
	__u16 port, check;

	if ((void *)(udp + 1) > end)
		return -1;
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->len = bpf_htons(sizeof(*udp) + plen);
	udp->check = 0;
	psum += bpf_htons(IPPROTO_UDP) + udp->len;
	psum += udp->source + udp->dest + udp->len;
	check = csum_finish(psum);
	udp->check = check ? check : 0xffff; /* 0 would mean "no checksum" */
	return 0;
}

#endif /* BPFSH_XDP_REPLY_H */
