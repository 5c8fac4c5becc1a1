//go:build ignore

/* cache: an in-kernel look-aside cache in front of memcached, after BMC
 * (NSDI'21). PROTOCOL.md has the wire formats, the maps and the counters.
 *
 * xdp_cache_rx (XDP, the server's ingress) answers memcached UDP
 * "get <key>\r\n" hits itself with XDP_TX and passes misses on, recording
 * each miss (client, request id, the key's generation). It invalidates
 * the key of every write command (UDP or TCP) before the server sees it.
 * tc_cache_fill (TC egress) copies memcached's "VALUE ..." replies into the
 * cache, but only when the reply answers a recorded miss whose key has not
 * been written since: a fill never resurrects a value a later write
 * invalidated.
 */

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "parse.h"
#include "csum.h"

char LICENSE[] SEC("license") = "GPL";

#define CACHE_MAX_KEY 250
#define CACHE_KEY_BYTES 252    /* CACHE_MAX_KEY rounded up to words */
#define CACHE_MAX_VALUE 1024
#define CACHE_TEXT 1536        /* room for the longest reply text (1305) */
#define CACHE_FRAME_HDR 8      /* memcached's UDP frame header */
#define CACHE_REQ_BYTES 512    /* request bytes looked at (power of two) */
#define CACHE_GENS 65536       /* generation slots (power of two) */
#define CACHE_MAX_DIGITS 10

/* Indices of the per-CPU counters in stats (PROTOCOL.md names them). */
enum cache_stat {
	CACHE_STAT_GET = 0,          /* UDP "get <key>" requests */
	CACHE_STAT_HIT = 1,          /* answered with XDP_TX */
	CACHE_STAT_MISS = 2,         /* passed on: key not cached */
	CACHE_STAT_FILL = 3,         /* VALUE replies copied into the cache */
	CACHE_STAT_FILL_STALE = 4,   /* refused: the key was written after the miss */
	CACHE_STAT_FILL_NO_MISS = 5, /* refused: no recorded miss for the reply */
	CACHE_STAT_FILL_SKIP = 6,    /* replies not cacheable (too big, multi, malformed) */
	CACHE_STAT_FILL_ERROR = 7,   /* cache map updates that failed */
	CACHE_STAT_INVALIDATE = 8,   /* write commands that invalidated a key */
	CACHE_STAT_FLUSH = 9,        /* flush_all commands */
	CACHE_STAT_PASS_OTHER = 10,  /* packets not to or from the cache's port */
	CACHE_STAT_PASS_FRAME = 11,  /* UDP requests with a bad or multi-datagram frame header */
	CACHE_STAT_PASS_CMD = 12,    /* commands the cache leaves to the server */
	CACHE_STAT_PASS_KEY = 13,    /* keys empty, over 250 bytes, or with bytes outside 0x21..0x7e */
	CACHE_STAT_PASS_ROOM = 14,   /* hits passed on: the frame could not grow to the reply */
	CACHE_STAT_MAX = 16,
};

/* Set at load time (load cache set cache_port=11311). */
volatile const __u16 cache_port = 11211;

/* Key bytes are char so that map dumps show them as text; -funsigned-char
 * (gen.go) keeps them unsigned. */
struct cache_key {
	__u32 len;
	char bytes[CACHE_KEY_BYTES];
};

/* A cached value: memcached's reply text for a get of the key, exactly as
 * the server sent it ("VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n"),
 * with its checksum so that a hit need not sum it again. */
struct cache_value {
	__u64 gen;   /* the key's generation when it was filled */
	__u32 flags; /* the client flags, from the reply */
	__u32 vlen;  /* the data's length */
	__u32 tlen;  /* the reply text's length */
	__u32 csum;  /* folded Internet checksum of text[0:tlen] */
	char text[CACHE_TEXT];
};

/* A miss, remembered until its reply leaves the server. */
struct cache_miss_key {
	__u32 addr; /* the client's IPv4 address */
	__u16 port; /* the client's UDP port */
	__u16 reqid;
};

struct cache_miss {
	__u64 gen;   /* the key's generation slot when the get passed */
	__u64 flush; /* the flush generation then */
	__u32 hash;  /* the key's hash: the reply must be for the same key */
	__u32 pad;
};

struct cache_meta {
	__u64 flush; /* flush_all commands seen */
};

struct cache_scratch {
	struct cache_key key;
	struct cache_value val;
	__u8 req[CACHE_REQ_BYTES];
	__u8 hdr[CACHE_FRAME_HDR];
	__u8 iph[60];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	/* Not preallocated: an update replaces the element and frees the old
	 * one after a grace period, so a hit reading it is never torn. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cache_key);
	__type(value, struct cache_value);
} cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CACHE_GENS);
	__type(key, __u32);
	__type(value, __u64);
} gens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct cache_miss_key);
	__type(value, struct cache_miss);
} misses SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cache_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CACHE_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cache_scratch);
} scratch SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &idx);

	if (c)
		*c += 1;
}

static __always_inline struct cache_scratch *scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline struct cache_meta *meta_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&meta, &zero);
}

/* A key byte the cache accepts: printable ASCII, no space. memcached
 * allows more; keys with other bytes are simply never cached. */
static __always_inline int key_char(__u8 c)
{
	return c > 0x20 && c < 0x7f;
}

/* gen_slot is the generation counter of keys hashing to h. Keys that
 * share a slot invalidate each other's fills: harmless, only a lost fill. */
static __always_inline __u64 *gen_slot(__u32 h)
{
	__u32 i = h & (CACHE_GENS - 1);

	return bpf_map_lookup_elem(&gens, &i);
}

/* Where a bpf_loop over key bytes reads: the request bytes (s->req) or
 * the reply text (s->val.text). The loops run as bpf_loop callbacks so
 * that the verifier checks one step, not 250 unrolled ones. */
struct key_walk {
	__u32 off;  /* where the key starts */
	__u32 len;  /* key_from: bytes to copy; key_len: bytes that may be read */
	__u32 text; /* 1: the reply text; 0: the request */
	__u32 n;    /* key_len: the key's length so far */
	__u32 h;    /* key_from: the hash so far */
	__u32 bad;  /* key_from: a byte that is not a key byte */
};

static __always_inline __u8 walk_byte(const struct cache_scratch *s, const struct key_walk *w, __u32 i)
{
	__u32 idx = w->off + i;

	if (w->text)
		return idx < CACHE_TEXT ? s->val.text[idx] : 0;
	return s->req[idx & (CACHE_REQ_BYTES - 1)];
}

static long key_len_step(__u32 i, struct key_walk *w)
{
	struct cache_scratch *s = scratch_get();
	__u8 c;

	if (!s || i >= w->len)
		return 1;
	c = walk_byte(s, w, i);
	if (c == ' ' || c == '\r' || c == '\n' || c == 0)
		return 1;
	w->n++;
	return 0;
}

/* key_len is the length of the key at off: bytes up to a space, CR, LF
 * or NUL, at most limit of them (limit - off past the end of the bytes
 * there are: the caller makes it so), and at most CACHE_MAX_KEY + 1. */
static __always_inline __u32 key_len(__u32 text, __u32 off, __u32 limit)
{
	struct key_walk w = {.off = off, .len = limit, .text = text};

	bpf_loop(CACHE_MAX_KEY + 1, key_len_step, &w, 0);
	return w.n;
}

static long key_from_step(__u32 i, struct key_walk *w)
{
	struct cache_scratch *s = scratch_get();
	__u8 c;

	if (!s || i >= w->len || i >= CACHE_KEY_BYTES)
		return 1;
	c = walk_byte(s, w, i);
	if (!key_char(c)) {
		w->bad = 1;
		return 1;
	}
	s->key.bytes[i] = c;
	w->h = (w->h ^ c) * 16777619u;
	return 0;
}

/* key_from copies the len-byte key at off into s->key (zero-padded) and
 * returns its FNV-1a hash, or 0 when a byte is not a key byte. len is at
 * most CACHE_MAX_KEY, checked by the caller. */
static __always_inline __u32 key_from(struct cache_scratch *s, __u32 text, __u32 off, __u32 len)
{
	struct key_walk w = {.off = off, .len = len, .text = text, .h = 2166136261u};

	__builtin_memset(&s->key, 0, sizeof(s->key));
	s->key.len = len;
	bpf_loop(CACHE_MAX_KEY, key_from_step, &w, 0);
	if (w.bad)
		return 0;
	return w.h ? w.h : 1;
}

/* ---- invalidation -------------------------------------------------------- */

static long flush_one(void *map, struct cache_key *k, struct cache_value *v, void *ctx)
{
	bpf_map_delete_elem(map, k);
	return 0;
}

/* invalidate bumps the key's generation, so that no fill recorded before
 * now is accepted, and then removes its cached value. The order matters:
 * a fill checks the generation after it inserts (see fill). */
static __always_inline void invalidate(struct cache_scratch *s, __u32 h)
{
	__u64 *g = gen_slot(h);

	if (g)
		__sync_fetch_and_add(g, 1);
	bpf_map_delete_elem(&cache, &s->key);
	stat_inc(CACHE_STAT_INVALIDATE);
}

static __always_inline void flush_all(void)
{
	struct cache_meta *m = meta_get();

	if (m)
		__sync_fetch_and_add(&m->flush, 1);
	bpf_for_each_map_elem(&cache, flush_one, 0, 0);
	stat_inc(CACHE_STAT_FLUSH);
}

/* word_is tells whether buf, which holds end request bytes, holds the
 * n-byte word w at off. Bytes at and past end are left over from earlier
 * requests in the per-CPU scratch, so a word running past end is no match. */
static __always_inline int word_is(const __u8 *buf, __u32 end, __u32 off, const char *w, __u32 n)
{
	if (off > end || n > end - off)
		return 0;
#pragma unroll
	for (__u32 i = 0; i < 8; i++) {
		if (i >= n)
			break;
		if (buf[(off + i) & (CACHE_REQ_BYTES - 1)] != (__u8)w[i])
			return 0;
	}
	return 1;
}

/* write_cmd is the length of the write command word at off followed by a
 * space ("set ", "delete ", ...), or 0 for anything else. */
static __always_inline __u32 write_cmd(const __u8 *buf, __u32 end, __u32 off)
{
	if (word_is(buf, end, off, "set ", 4) || word_is(buf, end, off, "add ", 4) || word_is(buf, end, off, "cas ", 4))
		return 4;
	if (word_is(buf, end, off, "incr ", 5) || word_is(buf, end, off, "decr ", 5))
		return 5;
	if (word_is(buf, end, off, "replace ", 8) || word_is(buf, end, off, "prepend ", 8))
		return 8;
	if (word_is(buf, end, off, "delete ", 7))
		return 7;
	if (word_is(buf, end, off, "append ", 7))
		return 7;
	/* Meta commands: set, delete, arithmetic. */
	if (word_is(buf, end, off, "ms ", 3) || word_is(buf, end, off, "md ", 3) || word_is(buf, end, off, "ma ", 3))
		return 3;
	return 0;
}

/* handle_write invalidates the key of a write command at off of the n
 * request bytes in s->req. It returns 1 when it was a write. */
static __always_inline int handle_write(struct cache_scratch *s, __u32 off, __u32 n)
{
	__u32 w, klen, h;

	/* flush_all: nine letters, one more than word_is compares. */
	if (word_is(s->req, n, off, "flush_al", 8) && off + 8 < n && s->req[(off + 8) & (CACHE_REQ_BYTES - 1)] == 'l') {
		flush_all();
		return 1;
	}
	w = write_cmd(s->req, n, off);
	if (!w)
		return 0;
	off += w;
	klen = key_len(0, off, off < n ? n - off : 0);
	/* A key the cache cannot hold needs no invalidation: it was never
	 * cached, and no fill of it is ever accepted. */
	if (klen == 0 || klen > CACHE_MAX_KEY) {
		stat_inc(CACHE_STAT_PASS_KEY);
		return 1;
	}
	h = key_from(s, 0, off, klen);
	if (!h) {
		stat_inc(CACHE_STAT_PASS_KEY);
		return 1;
	}
	invalidate(s, h);
	return 1;
}

/* ---- the hit reply ------------------------------------------------------- */

/* reply turns the get request (UDP payload at payoff, IPv4 header at l3off
 * of hlen bytes) into the cached reply v, in place. */
static __always_inline int reply(struct xdp_md *ctx, struct cache_scratch *s, struct cache_value *v,
				 __u32 l3off, __u32 hlen, __u32 payoff)
{
	void *data, *end;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *udp;
	__u32 tlen = v->tlen, plen, a;
	__u64 sum = 0, psum = 0;
	__u8 mac[ETH_ALEN];
	__u16 port, check;
	long delta;

	if (tlen == 0 || tlen > CACHE_TEXT || payoff > 128 || l3off > 64 || hlen > 60 || hlen < 20)
		return XDP_PASS;
	plen = CACHE_FRAME_HDR + tlen;
	delta = (long)(payoff + plen) - (long)(ctx->data_end - ctx->data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta)) {
		stat_inc(CACHE_STAT_PASS_ROOM);
		return XDP_PASS;
	}
	/* The frame header: the request id echoed, datagram 0 of 1. */
	s->hdr[2] = 0;
	s->hdr[3] = 0;
	s->hdr[4] = 0;
	s->hdr[5] = 1;
	s->hdr[6] = 0;
	s->hdr[7] = 0;
	if (bpf_xdp_store_bytes(ctx, payoff, s->hdr, CACHE_FRAME_HDR) ||
	    bpf_xdp_store_bytes(ctx, payoff + CACHE_FRAME_HDR, v->text, tlen))
		return XDP_DROP;
	sum = csum_buf(s->hdr, CACHE_FRAME_HDR, CACHE_FRAME_HDR);
	sum += v->csum; /* the text starts at an even offset */

	/* Offsets were checked above, but the compiler drops masks it knows
	 * to be no-ops and the verifier loses the bounds of spilled values:
	 * hide them from the compiler and mask them again. */
	asm volatile("" : "+r"(l3off), "+r"(hlen));
	l3off &= 0x7f;
	hlen &= 0x3f;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	iph = data + l3off;
	if ((void *)(iph + 1) > end)
		return XDP_DROP;
	a = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = a;
	psum += iph->saddr;
	psum += iph->daddr;
	iph->tot_len = bpf_htons(hlen + sizeof(*udp) + plen);
	iph->ttl = 64;
	iph->check = 0;
	/* The header with its options is summed from a copy: its length is
	 * known only at run time. */
	if (hlen < sizeof(*iph) || bpf_xdp_load_bytes(ctx, l3off, s->iph, hlen))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	iph = data + l3off;
	if ((void *)(iph + 1) > end)
		return XDP_DROP;
	iph->check = csum_finish(csum_buf(s->iph, hlen, sizeof(s->iph)));

	udp = data + l3off + hlen;
	if ((void *)(udp + 1) > end)
		return XDP_DROP;
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->len = bpf_htons(sizeof(*udp) + plen);
	udp->check = 0;
	psum += bpf_htons(IPPROTO_UDP) + udp->len;
	psum += udp->source + udp->dest + udp->len;
	psum += csum_fold16(sum);
	check = csum_finish(psum);
	udp->check = check ? check : 0xffff;
	stat_inc(CACHE_STAT_HIT);
	return XDP_TX;
}

/* ---- ingress ------------------------------------------------------------- */

/* get handles a UDP request of n bytes (frame header included) in s->req.
 * The one form answered is "get <key>\r\n", the whole datagram. */
static __always_inline int get(struct xdp_md *ctx, struct cache_scratch *s, struct iphdr *iph, struct udphdr *udp,
			       __u32 l3off, __u32 payoff, __u32 plen)
{
	struct cache_miss_key mk = {};
	struct cache_miss miss = {};
	struct cache_value *v;
	struct cache_meta *m;
	__u32 klen, h, hlen;
	__u64 *g;

	stat_inc(CACHE_STAT_GET);
	if (plen < CACHE_FRAME_HDR + 7 || plen > CACHE_FRAME_HDR + 6 + CACHE_MAX_KEY) {
		stat_inc(CACHE_STAT_PASS_KEY);
		return XDP_PASS;
	}
	if (s->req[(plen - 2) & (CACHE_REQ_BYTES - 1)] != '\r' || s->req[(plen - 1) & (CACHE_REQ_BYTES - 1)] != '\n') {
		stat_inc(CACHE_STAT_PASS_CMD);
		return XDP_PASS;
	}
	klen = plen - CACHE_FRAME_HDR - 6;
	h = key_from(s, 0, CACHE_FRAME_HDR + 4, klen);
	if (!h) {
		/* Spaces too: a multi-key get is left to the server. */
		stat_inc(CACHE_STAT_PASS_KEY);
		return XDP_PASS;
	}
	v = bpf_map_lookup_elem(&cache, &s->key);
	if (v) {
		s->hdr[0] = s->req[0];
		s->hdr[1] = s->req[1];
		hlen = iph->ihl * 4;
		return reply(ctx, s, v, l3off, hlen, payoff);
	}
	/* A miss: remember it, with the key's generation now, for the fill. */
	stat_inc(CACHE_STAT_MISS);
	g = gen_slot(h);
	m = meta_get();
	if (!g || !m)
		return XDP_PASS;
	mk.addr = iph->saddr;
	mk.port = udp->source;
	mk.reqid = (__u16)s->req[0] << 8 | s->req[1];
	miss.gen = __sync_fetch_and_add(g, 0);
	miss.flush = __sync_fetch_and_add(&m->flush, 0);
	miss.hash = h;
	bpf_map_update_elem(&misses, &mk, &miss, BPF_ANY);
	return XDP_PASS;
}

SEC("xdp")
int xdp_cache_rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct cache_scratch *s = scratch_get();
	struct iphdr *iph;
	struct cursor c;
	struct ethhdr *eth;
	__u32 l3off, payoff, plen, n;
	int proto;

	if (!s)
		return XDP_PASS;
	cursor_init(&c, data, end);
	proto = parse_eth(&c, &eth);
	l3off = cursor_off(&c);
	if (proto != ETH_P_IP) {
		stat_inc(CACHE_STAT_PASS_OTHER);
		return XDP_PASS;
	}
	proto = parse_ipv4(&c, &iph);
	if (proto < 0 || ipv4_is_fragment(iph)) {
		stat_inc(CACHE_STAT_PASS_OTHER);
		return XDP_PASS;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *udp;
		int ulen = parse_udp(&c, &udp);

		if (ulen < 0 || udp->dest != bpf_htons(cache_port) ||
		    (__u32)ulen > bpf_ntohs(iph->tot_len) - iph->ihl * 4) {
			stat_inc(CACHE_STAT_PASS_OTHER);
			return XDP_PASS;
		}
		payoff = cursor_off(&c);
		plen = ulen - sizeof(*udp);
		if (plen < CACHE_FRAME_HDR + 4) {
			stat_inc(CACHE_STAT_PASS_FRAME);
			return XDP_PASS;
		}
		n = plen < CACHE_REQ_BYTES ? plen : CACHE_REQ_BYTES;
		if (bpf_xdp_load_bytes(ctx, payoff, s->req, n))
			return XDP_PASS;
		/* Datagram 0 of 1, reserved 0: a request in one datagram. */
		if (s->req[2] || s->req[3] || s->req[4] || s->req[5] != 1 || s->req[6] || s->req[7]) {
			stat_inc(CACHE_STAT_PASS_FRAME);
			return XDP_PASS;
		}
		if (word_is(s->req, n, CACHE_FRAME_HDR, "get ", 4))
			return get(ctx, s, iph, udp, l3off, payoff, plen);
		if (!handle_write(s, CACHE_FRAME_HDR, n))
			stat_inc(CACHE_STAT_PASS_CMD);
		return XDP_PASS;
	}
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp;
		int thlen = parse_tcp(&c, &tcp);
		__u32 room;

		if (thlen < 0 || tcp->dest != bpf_htons(cache_port)) {
			stat_inc(CACHE_STAT_PASS_OTHER);
			return XDP_PASS;
		}
		room = bpf_ntohs(iph->tot_len);
		if (room <= iph->ihl * 4 + (__u32)thlen)
			return XDP_PASS;
		plen = room - iph->ihl * 4 - thlen;
		payoff = cursor_off(&c);
		n = plen < CACHE_REQ_BYTES ? plen : CACHE_REQ_BYTES;
		if (n < 4 || bpf_xdp_load_bytes(ctx, payoff, s->req, n))
			return XDP_PASS;
		if (!handle_write(s, 0, n))
			stat_inc(CACHE_STAT_PASS_CMD);
		return XDP_PASS;
	}
	stat_inc(CACHE_STAT_PASS_OTHER);
	return XDP_PASS;
}

/* ---- egress: fills ------------------------------------------------------- */

/* text_at is byte i of the reply text in s->val, 0 past its end. */
static __always_inline __u8 text_at(const struct cache_scratch *s, __u32 i, __u32 tlen)
{
	if (i >= tlen || i >= CACHE_TEXT)
		return 0;
	return s->val.text[i];
}

/* number reads a decimal number at *off of the text, up to 10 digits,
 * and moves *off past it. It returns -1 when there is none or it
 * overflows 32 bits. */
static __always_inline __s64 number(const struct cache_scratch *s, __u32 *off, __u32 tlen)
{
	__u64 v = 0;
	__u32 i, o = *off;

	for (i = 0; i < CACHE_MAX_DIGITS; i++) {
		__u8 c = text_at(s, o + i, tlen);

		if (c < '0' || c > '9')
			break;
		v = v * 10 + (c - '0');
	}
	if (i == 0 || v > 0xffffffffULL)
		return -1;
	*off = o + i;
	return v;
}

/* fill parses the reply text (tlen bytes) in s->val.text: exactly
 * "VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n", one key, no cas. */
static __always_inline int fill_parse(struct cache_scratch *s, __u32 tlen, __u32 *hash)
{
	__u32 off = 6, klen, h;
	__s64 flags, bytes;

	if (tlen < 6 + 1 + 1 + 1 + 1 + 2 + 2 + 5 || tlen > CACHE_TEXT)
		return -1;
	if (s->val.text[0] != 'V' || s->val.text[1] != 'A' || s->val.text[2] != 'L' ||
	    s->val.text[3] != 'U' || s->val.text[4] != 'E' || s->val.text[5] != ' ')
		return -1;
	klen = key_len(1, off, tlen - off);
	if (klen == 0 || klen > CACHE_MAX_KEY || text_at(s, off + klen, tlen) != ' ')
		return -1;
	h = key_from(s, 1, off, klen);
	if (!h)
		return -1;
	off += klen + 1;
	flags = number(s, &off, tlen);
	if (flags < 0 || text_at(s, off, tlen) != ' ')
		return -1;
	off++;
	bytes = number(s, &off, tlen);
	if (bytes < 0 || bytes > CACHE_MAX_VALUE)
		return -1;
	if (text_at(s, off, tlen) != '\r' || text_at(s, off + 1, tlen) != '\n')
		return -1;
	off += 2 + bytes;
	if (off + 7 != tlen)
		return -1;
	if (text_at(s, off, tlen) != '\r' || text_at(s, off + 1, tlen) != '\n' ||
	    text_at(s, off + 2, tlen) != 'E' || text_at(s, off + 3, tlen) != 'N' ||
	    text_at(s, off + 4, tlen) != 'D' || text_at(s, off + 5, tlen) != '\r' ||
	    text_at(s, off + 6, tlen) != '\n')
		return -1;
	s->val.flags = flags;
	s->val.vlen = bytes;
	s->val.tlen = tlen;
	*hash = h;
	return 0;
}

SEC("tc")
int tc_cache_fill(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct cache_scratch *s = scratch_get();
	struct cache_miss_key mk = {};
	struct cache_miss *mp, miss;
	struct cache_meta *m;
	struct iphdr *iph;
	struct udphdr *udp;
	struct ethhdr *eth;
	struct cursor c;
	__u32 payoff, plen, tlen, h;
	__u64 *g;
	int ulen;

	if (!s)
		return TC_ACT_OK;
	cursor_init(&c, data, end);
	if (parse_eth(&c, &eth) != ETH_P_IP || parse_ipv4(&c, &iph) != IPPROTO_UDP || ipv4_is_fragment(iph))
		return TC_ACT_OK;
	ulen = parse_udp(&c, &udp);
	if (ulen < 0 || udp->source != bpf_htons(cache_port))
		return TC_ACT_OK;
	payoff = cursor_off(&c);
	plen = ulen - sizeof(*udp);
	if (plen < CACHE_FRAME_HDR)
		return TC_ACT_OK;
	tlen = plen - CACHE_FRAME_HDR;
	mk.addr = iph->daddr;
	mk.port = udp->dest;
	if (bpf_skb_load_bytes(skb, payoff, s->hdr, CACHE_FRAME_HDR))
		return TC_ACT_OK;
	mk.reqid = (__u16)s->hdr[0] << 8 | s->hdr[1];
	mp = bpf_map_lookup_elem(&misses, &mk);
	if (!mp) {
		stat_inc(CACHE_STAT_FILL_NO_MISS);
		return TC_ACT_OK;
	}
	miss = *mp;
	bpf_map_delete_elem(&misses, &mk);
	if (s->hdr[2] || s->hdr[3] || s->hdr[4] || s->hdr[5] != 1 || tlen > CACHE_TEXT || tlen < 16) {
		stat_inc(CACHE_STAT_FILL_SKIP);
		return TC_ACT_OK;
	}
	if (bpf_skb_load_bytes(skb, payoff + CACHE_FRAME_HDR, s->val.text, tlen) || fill_parse(s, tlen, &h)) {
		stat_inc(CACHE_STAT_FILL_SKIP);
		return TC_ACT_OK;
	}
	g = gen_slot(h);
	m = meta_get();
	if (!g || !m || h != miss.hash)
		return TC_ACT_OK;
	/* The generation check, before and after the insert: a write that
	 * bumps the generation after the check deletes what we insert. */
	if (__sync_fetch_and_add(g, 0) != miss.gen || __sync_fetch_and_add(&m->flush, 0) != miss.flush) {
		stat_inc(CACHE_STAT_FILL_STALE);
		return TC_ACT_OK;
	}
	s->val.gen = miss.gen;
	s->val.csum = csum_fold16((__u64)csum_buf((const __u8 *)s->val.text, tlen, 512) +
				  csum_buf((const __u8 *)s->val.text + 512, tlen > 512 ? tlen - 512 : 0, 512) +
				  csum_buf((const __u8 *)s->val.text + 1024, tlen > 1024 ? tlen - 1024 : 0, 512));
	if (bpf_map_update_elem(&cache, &s->key, &s->val, BPF_ANY)) {
		stat_inc(CACHE_STAT_FILL_ERROR);
		return TC_ACT_OK;
	}
	if (__sync_fetch_and_add(g, 0) != miss.gen || __sync_fetch_and_add(&m->flush, 0) != miss.flush) {
		bpf_map_delete_elem(&cache, &s->key);
		stat_inc(CACHE_STAT_FILL_STALE);
		return TC_ACT_OK;
	}
	stat_inc(CACHE_STAT_FILL);
	return TC_ACT_OK;
}
