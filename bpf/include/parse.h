// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* parse.h: bounds-checked header parsing for bpfsh's packet programs.
 *
 * Every helper takes a cursor (where the next header starts and where the
 * packet ends), checks that the whole header lies before data_end before
 * touching a byte of it, and advances the cursor past it. On a short or
 * malformed header a helper returns a negative value and leaves the cursor
 * alone, so a caller can give up with XDP_PASS or TC_ACT_OK and let the
 * stack deal with the packet.
 *
 * The helpers are always inlined: the verifier then sees each bounds check
 * on the very register it guards. Offsets are kept too (cur.pos - cur.start)
 * because a pointer into the packet does not survive a helper that resizes
 * it (bpf_xdp_adjust_tail, bpf_skb_change_tail): re-derive pointers from
 * the saved offsets afterwards and check them again.
 */
#ifndef BPFSH_PARSE_H
#define BPFSH_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* An 802.1Q or 802.1ad tag, as it follows the Ethernet addresses. */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/* How many stacked VLAN tags parse_eth walks through (QinQ is two). */
#define PARSE_MAX_VLANS 2

/* be16_len converts a big-endian 16-bit length to host order so that
 * every verifier knows it is at most 0xffff. bpf_ntohs compiles to a byte
 * swap (BPF_END), and the verifiers of Linux 6.1 and 6.12 forget a
 * register's range across one: adding the result to a packet pointer is
 * then refused ("makes pkt pointer be out of bounds"). The mask is in asm
 * because clang knows it changes nothing and would drop it. */
static __always_inline __u32 be16_len(__be16 v)
{
	__u32 x = bpf_ntohs(v);

	asm volatile("%[x] &= 0xffff" : [x] "+r"(x));
	return x;
}

/* A cursor over a packet: start is where the frame begins (ctx->data),
 * pos where the next header begins, end is data_end. */
struct cursor {
	void *start;
	void *pos;
	void *end;
};

static __always_inline void cursor_init(struct cursor *c, void *data, void *data_end)
{
	c->start = data;
	c->pos = data;
	c->end = data_end;
}

/* cursor_off is how far pos is into the frame. */
static __always_inline __u32 cursor_off(const struct cursor *c)
{
	return (__u32)(c->pos - c->start);
}

/* in_range says whether lo <= *x <= hi (constants), and leaves *x in the
 * register the test was made on, so that the verifier knows those bounds
 * wherever *x is used next: as a helper's size argument or an offset
 * added to a pointer. Written in C, the same test is lost on the older
 * verifiers three ways:
 *  - clang folds "x < lo || x > hi" into one unsigned test of x - lo
 *    (or x - (hi + 1)) made on a copy; the verifiers of Linux 6.1 and
 *    6.12 learn nothing about x from it, and a helper then sees a size
 *    of 0..4G ("R4 invalid zero-sized read: u64=[0,4294967295]" on 6.12);
 *  - clang turns "x < 1" into "x == 0", and the 6.1 verifier learns no
 *    lower bound from "x != 0": a size that may be 0 is refused ("invalid
 *    access to map value, ... size=0", "R3 min value is outside of the
 *    allowed memory range");
 *  - a test made on a 32-bit copy of x (w2 = w1) tells the 6.1 verifier
 *    nothing about x itself: its 32-bit move drops the link.
 * So both tests are made here in asm, in 32 bits, on the register that
 * holds *x afterwards. The 32-bit move first makes the verifier know the
 * upper half is zero (after a byte swap it may not, nor after cursor_off,
 * a pointer difference that no verifier knows anything about), so the
 * 64-bit bounds follow from the 32-bit ones: otherwise a helper is refused
 * ("R4 min value is negative", 6.12) and so is adding *x to a packet
 * pointer ("math between pkt pointer and register with unbounded min
 * value is not allowed", every kernel). */
static __always_inline int in_range(__u32 *x, const __u32 lo, const __u32 hi)
{
	__u32 v = *x;

	asm goto("%[v] = %[v]\n\t"
		 "if %[v] < %[lo] goto %l[out]\n\t"
		 "if %[v] > %[hi] goto %l[out]"
		 : [v] "+w"(v)
		 : [lo] "i"(lo), [hi] "i"(hi)
		 :
		 : out);
	*x = v;
	return 1;
out:
	return 0;
}

/* masked is x & mask, made where the verifier sees it: clang drops a mask
 * it can prove changes nothing (the caller's checks told it so), and the
 * verifier may not know what clang knew. It suits an index or a length
 * known to fit, in a loop clang must unroll (clang 14 unrolls no loop
 * that holds in_range's asm goto), or where one path is cheaper to verify
 * than in_range's two. */
static __always_inline __u32 masked(__u32 x, const __u32 mask)
{
	asm volatile("%[x] &= %[m]" : [x] "+w"(x) : [m] "i"(mask));
	return x;
}

/* parse_eth reads the Ethernet header and up to PARSE_MAX_VLANS VLAN tags.
 * It returns the EtherType of what follows (host order) and sets *eth; a
 * negative value means the frame is too short. */
static __always_inline int parse_eth(struct cursor *c, struct ethhdr **eth)
{
	struct ethhdr *h = c->pos;
	void *pos;
	__u16 proto;

	if ((void *)(h + 1) > c->end)
		return -1;
	pos = h + 1;
	proto = bpf_ntohs(h->h_proto);
#pragma unroll
	for (int i = 0; i < PARSE_MAX_VLANS; i++) {
		struct vlan_hdr *v = pos;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(v + 1) > c->end)
			return -1;
		proto = bpf_ntohs(v->h_vlan_encapsulated_proto);
		pos = v + 1;
	}
	*eth = h;
	c->pos = pos;
	return proto;
}

/* parse_ipv4 reads an IPv4 header with its options. It returns the
 * protocol of the payload and sets *iph; negative when the header is
 * short, not version 4, has an IHL under 5, or its total length is shorter
 * than the header or runs past the end of the frame. Fragments are
 * returned like any packet: check ipv4_is_fragment when the payload
 * matters. */
static __always_inline int parse_ipv4(struct cursor *c, struct iphdr **iph)
{
	struct iphdr *h = c->pos;
	__u32 hlen, tot;

	if ((void *)(h + 1) > c->end)
		return -1;
	if (h->version != 4 || h->ihl < 5)
		return -1;
	hlen = h->ihl * 4;
	if (c->pos + hlen > c->end)
		return -1;
	tot = be16_len(h->tot_len);
	if (tot < hlen || c->pos + tot > c->end)
		return -1;
	*iph = h;
	c->pos += hlen;
	return h->protocol;
}

/* parse_ipv4_head is parse_ipv4 for programs that read the payload with
 * bpf_skb_load_bytes (TC): only the header must be in the linear data.
 * A local socket's TCP segment, or a large UDP datagram, leaves the host
 * with its payload in page fragments past data_end, which parse_ipv4
 * would refuse. */
static __always_inline int parse_ipv4_head(struct cursor *c, struct iphdr **iph)
{
	struct iphdr *h = c->pos;
	__u32 hlen;

	if ((void *)(h + 1) > c->end)
		return -1;
	if (h->version != 4 || h->ihl < 5)
		return -1;
	hlen = h->ihl * 4;
	if (c->pos + hlen > c->end || be16_len(h->tot_len) < hlen)
		return -1;
	*iph = h;
	c->pos += hlen;
	return h->protocol;
}

/* ipv4_is_fragment is true for any fragment of a datagram (more fragments
 * set or a non-zero offset): its payload is not the whole datagram. */
static __always_inline int ipv4_is_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(0x3fff)) != 0;
}

/* parse_ipv6 reads the fixed IPv6 header. It returns the next header
 * (extension headers are not walked: a caller that wants UDP or TCP sees
 * anything else as not its own) and sets *ip6h; negative when short, not
 * version 6, or the payload length runs past the end of the frame. */
static __always_inline int parse_ipv6(struct cursor *c, struct ipv6hdr **ip6h)
{
	struct ipv6hdr *h = c->pos;

	if ((void *)(h + 1) > c->end)
		return -1;
	if (h->version != 6)
		return -1;
	if ((void *)(h + 1) + be16_len(h->payload_len) > c->end)
		return -1;
	*ip6h = h;
	c->pos = h + 1;
	return h->nexthdr;
}

/* parse_udp reads a UDP header. It returns the datagram's length from the
 * header (8 or more, header included) and sets *udph; negative when the
 * header is short, its length is under 8, or the datagram runs past the
 * end of the frame. The caller checks the length against the IP header's. */
static __always_inline int parse_udp(struct cursor *c, struct udphdr **udph)
{
	struct udphdr *h = c->pos;
	__u32 len;

	if ((void *)(h + 1) > c->end)
		return -1;
	len = be16_len(h->len);
	if (len < sizeof(*h) || c->pos + len > c->end)
		return -1;
	*udph = h;
	c->pos = h + 1;
	return len;
}

/* parse_udp_head is parse_udp for payloads read with bpf_skb_load_bytes
 * (see parse_ipv4_head): the datagram may run past data_end. */
static __always_inline int parse_udp_head(struct cursor *c, struct udphdr **udph)
{
	struct udphdr *h = c->pos;
	__u32 len;

	if ((void *)(h + 1) > c->end)
		return -1;
	len = be16_len(h->len);
	if (len < sizeof(*h))
		return -1;
	*udph = h;
	c->pos = h + 1;
	return len;
}

/* parse_tcp reads a TCP header with its options. It returns the header's
 * length in bytes and sets *tcph; negative when short or the data offset
 * is under 5 words. */
static __always_inline int parse_tcp(struct cursor *c, struct tcphdr **tcph)
{
	struct tcphdr *h = c->pos;
	__u32 hlen;

	if ((void *)(h + 1) > c->end)
		return -1;
	hlen = h->doff * 4;
	if (hlen < sizeof(*h) || c->pos + hlen > c->end)
		return -1;
	*tcph = h;
	c->pos += hlen;
	return hlen;
}

#endif /* BPFSH_PARSE_H */
