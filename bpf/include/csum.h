// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* csum.h: the Internet checksum (RFC 1071) for programs that rewrite
 * packets and recompute it from scratch.
 *
 * Sums are kept in "memory order": 16-bit words are read as the host reads
 * them from memory, and the folded, complemented result is stored back the
 * same way, which puts it in network order on the wire whatever the host's
 * byte order (RFC 1071 section 2(B)). A field that is written in network
 * order (a length, a protocol number in the pseudo-header) is added as
 * bpf_htons(value) for the same reason.
 */
#ifndef BPFSH_CSUM_H
#define BPFSH_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* csum_fold16 folds a 64-bit running sum to 16 bits, carries added back. */
static __always_inline __u32 csum_fold16(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)sum;
}

/* csum_swab16 moves a folded partial sum to the other byte lane: the sum of
 * bytes that start at an odd offset of the datagram. */
static __always_inline __u32 csum_swab16(__u32 s)
{
	return ((s & 0xff) << 8) | (s >> 8);
}

/* csum_finish turns a running sum into the value to store: folded and
 * complemented. */
static __always_inline __u16 csum_finish(__u64 sum)
{
	return (__u16)~csum_fold16(sum);
}

/* csum_buf sums len bytes (len <= max) of buf, which must hold max
 * readable bytes, max a multiple of four and at most 512, as if they
 * started at an even offset: whole 32-bit words by bpf_csum_diff, then
 * the 1-3 bytes left as one word with the bytes past the end masked off.
 * That last read stays within max because max is a multiple of four. */
static __always_inline __u32 csum_buf(const __u8 *buf, __u32 len, const __u32 max)
{
	__u64 sum = 0;
	__u32 whole, tail, word;

	if (len > max)
		len = max;
	whole = len & ~3u;
	tail = len & 3;
	if (whole > max)
		return 0;
	if (whole) {
		__s64 r = bpf_csum_diff(0, 0, (void *)buf, whole, 0);
		if (r > 0)
			sum = (__u32)r;
	}
	if (tail && whole <= max - 4) {
		word = *(const __u32 *)(buf + whole);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		word &= (1u << (tail * 8)) - 1;
#else
		word &= ~((1u << ((4 - tail) * 8)) - 1);
#endif
		sum += word;
	}
	return csum_fold16(sum);
}

/* csum_add_at adds the folded sum s of a piece that starts at byte offset
 * off of the checksummed data. */
static __always_inline __u64 csum_add_at(__u64 sum, __u32 s, __u32 off)
{
	return sum + ((off & 1) ? csum_swab16(s) : s);
}

#endif /* BPFSH_CSUM_H */
