// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
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
#include "maps.h"
#include "xdp_reply.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CACHE_MAX_KEY 250
#define CACHE_KEY_BYTES 252    /* CACHE_MAX_KEY rounded up to words */
#define CACHE_MAX_VALUE 1024
#define CACHE_TEXT 1536        /* room for the longest reply text (1305) */
#define CACHE_FRAME_HDR 8      /* memcached's UDP frame header */
#define CACHE_REQ_BYTES 512    /* request bytes looked at (power of two) */
#define CACHE_GENS 65536       /* generation slots (power of two) */
#define CACHE_MAX_DIGITS 10
#define CACHE_GET_KEYS 8       /* keys of a multi-key get answered */
#define CACHE_MAX_LINES 16     /* lines of a request looked at for writes */
#define CACHE_PENDING 4        /* unacknowledged writes remembered per connection */
#define CACHE_REPLY_MAX 3072   /* longest multi-key reply text built */
#define RESP_MAX_ARGS 16       /* RESP array elements walked */
#define RESP_MAX_VALUE_TEXT (1 + 4 + 2 + CACHE_MAX_VALUE + 2) /* "$1024\r\n<data>\r\n" */

/* Tags of the connection kinds in struct cache_conn. */
#define CONN_MC_TCP 6
#define CONN_MC_UDP 17
#define CONN_RESP 82

/* The Internet checksum of "END\r\n" when it starts at an even offset,
 * in memory order (csum.h). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CSUM_END_EVEN 0x5b93
#else
#define CSUM_END_EVEN 0x935b
#endif

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
	CACHE_STAT_GET_MULTI = 15,   /* gets of more than one key (also counted in get) */
	CACHE_STAT_PASS_MANY = 16,   /* gets of more than 8 keys, or over 512 bytes */
	CACHE_STAT_ACK = 17,         /* replies that invalidated their connection's written keys again */
	CACHE_STAT_ACK_FLUSH = 18,   /* replies that flushed: a flush_all or too many writes were pending */
	CACHE_STAT_DROP_RACE = 19,   /* multi-key hits dropped: an entry changed while the reply was built */
	CACHE_STAT_RESP_GET = 20,    /* RESP GET requests */
	CACHE_STAT_RESP_HIT = 21,    /* RESP GETs answered with XDP_TX */
	CACHE_STAT_RESP_MISS = 22,   /* RESP GETs of a key not cached (passed) */
	CACHE_STAT_RESP_FILL = 23,   /* RESP bulk replies copied into resp_cache */
	CACHE_STAT_RESP_FILL_STALE = 24, /* RESP fills refused: a write after the miss */
	CACHE_STAT_RESP_FILL_SKIP = 25,  /* RESP replies to a miss that are not one cacheable bulk string */
	CACHE_STAT_RESP_INVALIDATE = 26, /* RESP write commands that invalidated a key */
	CACHE_STAT_RESP_FLUSH = 27,  /* RESP commands that flushed resp_cache */
	CACHE_STAT_RESP_PASS = 28,   /* RESP segments left alone (reads, continuations, malformed) */
	CACHE_STAT_MAX = 32,
};

/* Set at load time (load cache set cache_port=11311). */
volatile const __u16 cache_port = 11211;

/* Redis's port, for xdp_cache_resp and tc_cache_resp_fill (test-run and
 * labs only: PROTOCOL.md "Redis RESP"). */
volatile const __u16 redis_port = 6379;

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

/* A client connection: TCP by address and port, a memcached UDP request
 * by address, port and request id; kind tells memcached TCP, memcached
 * UDP and RESP apart. */
struct cache_conn {
	__u32 addr;  /* the client's IPv4 address (network order) */
	__u16 port;  /* the client's port (network order) */
	__u16 reqid; /* the UDP request id (host order); 0 for TCP */
	__u32 kind;  /* CONN_MC_TCP, CONN_MC_UDP or CONN_RESP */
};

/* The writes of a connection whose acknowledgement has not left the
 * server yet: their keys are invalidated again when it does. n is
 * claimed with compare-and-swap (PROTOCOL.md "Invalidation at the
 * acknowledgement"). */
struct cache_pending {
	__u32 n;     /* keys held in key[0..n) */
	__u32 flush; /* 1: flush everything at the next reply */
	__u32 hash[CACHE_PENDING];
	struct cache_key key[CACHE_PENDING];
};

/* A RESP GET that missed, by client connection: the reply carries no key,
 * so the miss holds it. */
struct resp_miss {
	__u64 gen;
	__u64 flush;
	__u32 hash;
	__u32 pad;
	struct cache_key key;
};

/* Where a multi-key get's keys are in the request, and their entries'
 * text lengths at the first look. */
struct get_keys {
	__u16 off[CACHE_GET_KEYS];
	__u16 len[CACHE_GET_KEYS];
	__u16 tlen[CACHE_GET_KEYS];
};

struct cache_scratch {
	struct cache_key key;
	struct cache_value val;
	__u8 req[CACHE_REQ_BYTES];
	__u8 hdr[CACHE_FRAME_HDR];
	__u8 iph[60];
	struct get_keys gk;
	struct cache_pending pend;
	struct resp_miss rm;
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

/* Unacknowledged writes by client connection (struct cache_conn). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct cache_conn);
	__type(value, struct cache_pending);
} pending SEC(".maps");

/* The RESP cache: like cache, the text is Redis's bulk reply. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cache_key);
	__type(value, struct cache_value);
} resp_cache SEC(".maps");

/* RESP GETs that missed, by client connection (kind CONN_RESP). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct cache_conn);
	__type(value, struct resp_miss);
} resp_misses SEC(".maps");

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
	counter_inc(&stats, idx);
}

static __always_inline struct cache_scratch *scratch_get(void)
{
	return map_only(&scratch);
}

static __always_inline struct cache_meta *meta_get(void)
{
	return map_only(&meta);
}

/* A key byte the cache accepts: printable ASCII, no space. memcached
 * allows more; keys with other bytes are simply never cached. */
static __always_inline int key_char(__u8 c)
{
	return c > 0x20 && c < 0x7f;
}

/* req_at is request byte i, its index masked where the verifier sees it. */
static __always_inline __u8 req_at(const struct cache_scratch *s, __u32 i)
{
	return s->req[masked(i, CACHE_REQ_BYTES - 1)];
}

/* gen_slot is the generation counter of keys hashing to h. Keys that
 * share a slot invalidate each other's fills: harmless, only a lost fill. */
static __always_inline __u64 *gen_slot(__u32 h)
{
	__u32 i = h & (CACHE_GENS - 1);

	return bpf_map_lookup_elem(&gens, &i);
}

/* gen_read reads what a fill must later find unchanged: the generation of
 * keys hashing to h and the flush generation. It returns -1 when the maps
 * cannot be read. */
static __always_inline int gen_read(__u32 h, __u64 *gen, __u64 *flush)
{
	struct cache_meta *m = meta_get();
	__u64 *g = gen_slot(h);

	if (!g || !m)
		return -1;
	*gen = __sync_fetch_and_add(g, 0);
	*flush = __sync_fetch_and_add(&m->flush, 0);
	return 0;
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
 * now is accepted, and then removes its cached value (from resp_cache for
 * RESP). The order matters: a fill checks the generation after it inserts
 * (see fill). */
static __always_inline void invalidate_key(const struct cache_key *k, __u32 h, int resp)
{
	__u64 *g = gen_slot(h);

	if (g)
		__sync_fetch_and_add(g, 1);
	if (resp)
		bpf_map_delete_elem(&resp_cache, k);
	else
		bpf_map_delete_elem(&cache, k);
}

static __always_inline void invalidate(struct cache_scratch *s, __u32 h)
{
	invalidate_key(&s->key, h, 0);
	stat_inc(CACHE_STAT_INVALIDATE);
}

/* flush_all bumps the flush generation, then empties the cache (or
 * resp_cache). */
static __always_inline void flush_all(int resp)
{
	struct cache_meta *m = meta_get();

	if (m)
		__sync_fetch_and_add(&m->flush, 1);
	if (resp)
		bpf_for_each_map_elem(&resp_cache, flush_one, 0, 0);
	else
		bpf_for_each_map_elem(&cache, flush_one, 0, 0);
}

/* ---- invalidation at the acknowledgement ---------------------------------
 *
 * A write is invalidated when it comes in, but a get on another connection
 * that memcached ran before the write can still send the old value after
 * it. So the key is remembered for the write's connection (pending) and
 * invalidated again when the next reply to that connection leaves the
 * server: a fill of the old value before that reply is deleted by it, one
 * after it is refused by the generation it bumps. */

/* pending_add remembers the key in s->key (hash h) for conn; flush asks
 * the next reply to flush everything instead (flush_all, or no room). */
static __always_inline void pending_add(struct cache_scratch *s, struct cache_conn *conn, __u32 h, int flush)
{
	struct cache_pending *p = bpf_map_lookup_elem(&pending, conn);
	__u32 n;

	if (!p) {
		/* Only key[0..n) is ever read: the rest may hold old bytes. */
		s->pend.n = 0;
		s->pend.flush = 0;
		if (flush) {
			s->pend.flush = 1;
		} else {
			s->pend.n = 1;
			s->pend.hash[0] = h;
			__builtin_memcpy(&s->pend.key[0], &s->key, sizeof(s->key));
		}
		if (!bpf_map_update_elem(&pending, conn, &s->pend, BPF_NOEXIST))
			return;
		p = bpf_map_lookup_elem(&pending, conn);
		if (!p)
			return;
	}
	if (flush) {
		p->flush = 1;
		return;
	}
	/* Write the key into the first free place, then claim it by moving
	 * n past it; a reply that emptied the list meanwhile makes the claim
	 * fail, and the second try starts again at 0. */
#pragma unroll
	for (int try = 0; try < 2; try++) {
		n = __sync_fetch_and_add(&p->n, 0);
		if (n >= CACHE_PENDING) {
			p->flush = 1;
			return;
		}
		__builtin_memcpy(&p->key[n & (CACHE_PENDING - 1)], &s->key, sizeof(s->key));
		p->hash[n & (CACHE_PENDING - 1)] = h;
		if (__sync_val_compare_and_swap(&p->n, n, n + 1) == n)
			return;
	}
	p->flush = 1;
}

/* ack runs when a reply to conn leaves the server: every key the
 * connection wrote since the last reply is invalidated again. It returns
 * 1 when there was something to do. */
static __always_inline int ack(struct cache_conn *conn, int resp)
{
	struct cache_pending *p = bpf_map_lookup_elem(&pending, conn);
	__u32 n;

	if (!p)
		return 0;
	if (p->flush) {
		p->flush = 0;
		/* Whatever is listed goes with the flush. */
		n = __sync_fetch_and_add(&p->n, 0);
		__sync_val_compare_and_swap(&p->n, n, 0);
		flush_all(resp);
		stat_inc(CACHE_STAT_ACK_FLUSH);
		return 1;
	}
	n = __sync_fetch_and_add(&p->n, 0);
	if (n == 0)
		return 0;
	for (__u32 i = 0; i < CACHE_PENDING; i++) {
		if (i < n)
			invalidate_key(&p->key[i], p->hash[i], resp);
	}
	/* Keys a write added meanwhile stay for the next reply. */
	__sync_val_compare_and_swap(&p->n, n, 0);
	stat_inc(CACHE_STAT_ACK);
	return 1;
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
static __always_inline int handle_write(struct cache_scratch *s, __u32 off, __u32 n, struct cache_conn *conn)
{
	__u32 w, klen, h;

	/* flush_all: nine letters, one more than word_is compares. */
	if (word_is(s->req, n, off, "flush_al", 8) && off + 8 < n && s->req[(off + 8) & (CACHE_REQ_BYTES - 1)] == 'l') {
		flush_all(0);
		stat_inc(CACHE_STAT_FLUSH);
		pending_add(s, conn, 0, 1);
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
	pending_add(s, conn, h, 0);
	return 1;
}

/* ---- the hit reply ------------------------------------------------------- */

/* reply_grow makes the frame end plen bytes after payoff. */
static __always_inline int reply_grow(struct xdp_md *ctx, __u32 payoff, __u32 plen)
{
	long delta = (long)(payoff + plen) - (long)(ctx->data_end - ctx->data);

	if (delta && bpf_xdp_adjust_tail(ctx, delta)) {
		stat_inc(CACHE_STAT_PASS_ROOM);
		return -1;
	}
	return 0;
}

/* reply_finish turns the get request (UDP payload at payoff, IPv4 header
 * at l3off of hlen bytes), whose frame now ends plen bytes after payoff
 * and holds the reply text after the frame header, into the reply:
 * frame header (request id in s->hdr[0..1]), addresses, ports, lengths,
 * checksums. textsum is the folded sum of the text. */
static __always_inline int reply_finish(struct xdp_md *ctx, struct cache_scratch *s, __u32 l3off, __u32 hlen,
					__u32 payoff, __u32 plen, __u32 textsum)
{
	__u64 sum = 0, psum = 0;

	/* The frame header: the request id echoed, datagram 0 of 1. */
	s->hdr[2] = 0;
	s->hdr[3] = 0;
	s->hdr[4] = 0;
	s->hdr[5] = 1;
	s->hdr[6] = 0;
	s->hdr[7] = 0;
	if (bpf_xdp_store_bytes(ctx, payoff, s->hdr, CACHE_FRAME_HDR))
		return XDP_DROP;
	sum = csum_buf(s->hdr, CACHE_FRAME_HDR, CACHE_FRAME_HDR);
	sum += textsum; /* the text starts at an even offset */

	if (reply_eth(ctx) || reply_ipv4(ctx, l3off, hlen, sizeof(struct udphdr) + plen, 64, s->iph, &psum) ||
	    reply_udp(ctx, l3off + hlen, plen, psum + csum_fold16(sum)))
		return XDP_DROP;
	stat_inc(CACHE_STAT_HIT);
	return XDP_TX;
}

/* reply answers a single-key get with the cached reply v, in place. */
static __always_inline int reply(struct xdp_md *ctx, struct cache_scratch *s, struct cache_value *v,
				 __u32 l3off, __u32 hlen, __u32 payoff)
{
	__u32 tlen = v->tlen;

	if (!in_range(&tlen, 1, CACHE_TEXT) || payoff > 128 || !in_range(&l3off, 0, 64) || !in_range(&hlen, 20, 60))
		return XDP_PASS;
	if (reply_grow(ctx, payoff, CACHE_FRAME_HDR + tlen))
		return XDP_PASS;
	if (bpf_xdp_store_bytes(ctx, payoff + CACHE_FRAME_HDR, v->text, tlen))
		return XDP_DROP;
	return reply_finish(ctx, s, l3off, hlen, payoff, CACHE_FRAME_HDR + tlen, v->csum);
}

/* ---- multi-key gets -------------------------------------------------------
 *
 * "get k1 k2 ... kn\r\n", n <= CACHE_GET_KEYS, the whole datagram in
 * s->req: answered only when every key hits, with each entry's text
 * without its "END\r\n", then one "END\r\n". Two passes: the first finds
 * the keys and looks them up (all must hit, and the reply must fit), the
 * second, after the frame has grown, looks them up again and writes their
 * text; an entry whose length changed in between (a write and a fill on
 * another CPU) drops the request (the client asks again). */

struct get_walk {
	__u32 off;    /* the next key's first byte in s->req */
	__u32 end;    /* where "\r\n" ends the keys */
	__u32 nkeys;  /* keys that hit so far */
	__u32 total;  /* reply text bytes so far, "END\r\n" not included */
	__u64 sum;    /* their checksum, unfolded */
	__u32 status; /* GET_* */
	__u32 single; /* the miss was of the only key */
	__u32 h;      /* the missed key's hash */
};

enum { GET_OK, GET_MISS, GET_BAD, GET_MANY };

/* part_sum is the folded sum of the first tlen - 5 bytes of a text of
 * tlen bytes whose folded sum is csum: the text less "END\r\n". */
static __always_inline __u32 part_sum(__u32 csum, __u32 tlen)
{
	__u32 end = ((tlen - 5) & 1) ? csum_swab16(CSUM_END_EVEN) : CSUM_END_EVEN;

	return csum_fold16((__u64)csum + (0xffff ^ end));
}

/* cache_get_key reads key i of a multi-key get and looks it up. It is a
 * global function, verified once, not once per key. It returns 1 when
 * the walk is over (w->status says why, or every key was read). */
__attribute__((noinline)) int cache_get_key(struct get_walk *w, __u32 i)
{
	struct cache_scratch *s = scratch_get();
	struct cache_value *v;
	__u32 klen, next, h, tl, part;

	if (!s || !w || w->off >= w->end)
		return 1;
	if (i >= CACHE_GET_KEYS) {
		w->status = GET_MANY;
		return 1;
	}
	klen = key_len(0, w->off, w->end - w->off);
	next = w->off + klen;
	/* One space between keys, none before the "\r\n". */
	if (klen == 0 || klen > CACHE_MAX_KEY || next > w->end ||
	    (next < w->end && (req_at(s, next) != ' ' || next + 1 >= w->end))) {
		w->status = GET_BAD;
		return 1;
	}
	h = key_from(s, 0, w->off, klen);
	if (!h) {
		w->status = GET_BAD;
		return 1;
	}
	v = bpf_map_lookup_elem(&cache, &s->key);
	if (!v) {
		w->status = GET_MISS;
		w->single = i == 0 && next == w->end;
		w->h = h;
		return 1;
	}
	tl = v->tlen;
	if (tl < 16 || tl > CACHE_TEXT) {
		w->status = GET_BAD;
		return 1;
	}
	part = tl - 5;
	w->sum = csum_add_at(w->sum, part_sum(v->csum, tl), w->total);
	s->gk.off[i & (CACHE_GET_KEYS - 1)] = w->off;
	s->gk.len[i & (CACHE_GET_KEYS - 1)] = klen;
	s->gk.tlen[i & (CACHE_GET_KEYS - 1)] = tl;
	w->total += part;
	w->nkeys++;
	w->off = next + 1;
	return 0;
}

struct put_walk {
	__u32 nkeys;
	__u32 at;  /* where the next text goes in the frame */
	__u32 bad;
};

/* cache_put_key writes key i's text into the reply (a global function,
 * like cache_get_key). It returns 1 when the walk is over. */
__attribute__((noinline)) int cache_put_key(struct xdp_md *ctx, struct put_walk *w, __u32 i)
{
	struct cache_scratch *s = scratch_get();
	struct cache_value *v;
	__u32 j = i & (CACHE_GET_KEYS - 1), part;

	if (!s || !w || i >= w->nkeys)
		return 1;
	if (!key_from(s, 0, s->gk.off[j], s->gk.len[j] > CACHE_MAX_KEY ? CACHE_MAX_KEY : s->gk.len[j])) {
		w->bad = 1;
		return 1;
	}
	v = bpf_map_lookup_elem(&cache, &s->key);
	if (!v || v->tlen != s->gk.tlen[j]) {
		w->bad = 1;
		return 1;
	}
	part = v->tlen - 5; /* a text of 16 to CACHE_TEXT bytes */
	if (!in_range(&part, 16 - 5, CACHE_TEXT - 5) || bpf_xdp_store_bytes(ctx, w->at, v->text, part)) {
		w->bad = 1;
		return 1;
	}
	w->at += part;
	return 0;
}

/* multi_reply writes the reply to a multi-key get whose keys all hit
 * (first pass in w) into the frame. */
static __always_inline int multi_reply(struct xdp_md *ctx, struct cache_scratch *s, struct get_walk *w,
				       __u32 l3off, __u32 hlen, __u32 payoff)
{
	struct put_walk p = {.nkeys = w->nkeys, .at = payoff + CACHE_FRAME_HDR};
	__u32 tlen = w->total + 5;
	__u64 sum;

	if (tlen > CACHE_REPLY_MAX || payoff > 128 || !in_range(&l3off, 0, 64) || !in_range(&hlen, 20, 60)) {
		stat_inc(CACHE_STAT_PASS_ROOM);
		return XDP_PASS;
	}
	if (reply_grow(ctx, payoff, CACHE_FRAME_HDR + tlen))
		return XDP_PASS;
	for (__u32 i = 0; i < CACHE_GET_KEYS; i++)
		if (cache_put_key(ctx, &p, i))
			break;
	if (p.bad || p.at != payoff + CACHE_FRAME_HDR + w->total) {
		stat_inc(CACHE_STAT_DROP_RACE);
		return XDP_DROP;
	}
	s->iph[0] = 'E';
	s->iph[1] = 'N';
	s->iph[2] = 'D';
	s->iph[3] = '\r';
	s->iph[4] = '\n';
	if (bpf_xdp_store_bytes(ctx, p.at, s->iph, 5))
		return XDP_DROP;
	sum = csum_add_at(w->sum, CSUM_END_EVEN, w->total);
	return reply_finish(ctx, s, l3off, hlen, payoff, CACHE_FRAME_HDR + tlen, csum_fold16(sum));
}

/* ---- ingress ------------------------------------------------------------- */

/* record_miss remembers a get of the key in s->key (hash h) that passed,
 * with the key's generation now, for the fill. */
static __always_inline void record_miss(struct iphdr *iph, struct udphdr *udp, __u16 reqid, __u32 h)
{
	struct cache_miss_key mk = {};
	struct cache_miss miss = {};

	if (gen_read(h, &miss.gen, &miss.flush))
		return;
	mk.addr = iph->saddr;
	mk.port = udp->source;
	mk.reqid = reqid;
	miss.hash = h;
	bpf_map_update_elem(&misses, &mk, &miss, BPF_ANY);
}

/* get handles a UDP request of n bytes (frame header included) in s->req:
 * "get <key>\r\n", or "get k1 k2 ... kn\r\n" (multi-key), the whole
 * datagram. */
static __always_inline int get(struct xdp_md *ctx, struct cache_scratch *s, struct iphdr *iph, struct udphdr *udp,
			       __u32 l3off, __u32 payoff, __u32 plen)
{
	struct get_walk w = {};
	struct cache_value *v;
	__u16 reqid = (__u16)s->req[0] << 8 | s->req[1];
	__u32 h = 0;

	stat_inc(CACHE_STAT_GET);
	if (plen < CACHE_FRAME_HDR + 7) {
		stat_inc(CACHE_STAT_PASS_KEY);
		return XDP_PASS;
	}
	if (plen > CACHE_REQ_BYTES) {
		stat_inc(CACHE_STAT_PASS_MANY);
		return XDP_PASS;
	}
	if (req_at(s, plen - 2) != '\r' || req_at(s, plen - 1) != '\n') {
		stat_inc(CACHE_STAT_PASS_CMD);
		return XDP_PASS;
	}
	/* One key: the fast path. A space in it makes key_from fail, and the
	 * request is read again as a multi-key get. */
	if (plen <= CACHE_FRAME_HDR + 6 + CACHE_MAX_KEY)
		h = key_from(s, 0, CACHE_FRAME_HDR + 4, plen - CACHE_FRAME_HDR - 6);
	if (h) {
		v = bpf_map_lookup_elem(&cache, &s->key);
		if (v) {
			s->hdr[0] = s->req[0];
			s->hdr[1] = s->req[1];
			return reply(ctx, s, v, l3off, iph->ihl * 4, payoff);
		}
		stat_inc(CACHE_STAT_MISS);
		record_miss(iph, udp, reqid, h);
		return XDP_PASS;
	}

	w.off = CACHE_FRAME_HDR + 4;
	w.end = plen - 2;
	for (__u32 i = 0; i <= CACHE_GET_KEYS; i++)
		if (cache_get_key(&w, i))
			break;
	if (w.nkeys > 0 || w.status == GET_MANY || (w.status == GET_MISS && !w.single))
		stat_inc(CACHE_STAT_GET_MULTI);
	switch (w.status) {
	case GET_MISS:
		stat_inc(CACHE_STAT_MISS);
		/* A multi-key get records no miss: its reply (several VALUEs)
		 * fills nothing. */
		if (w.single)
			record_miss(iph, udp, reqid, w.h);
		return XDP_PASS;
	case GET_MANY:
		stat_inc(CACHE_STAT_PASS_MANY);
		return XDP_PASS;
	case GET_OK:
		if (w.nkeys > 0 && w.off > w.end)
			break;
		/* fall through: no key, or the loop ended early */
	default:
		stat_inc(CACHE_STAT_PASS_KEY);
		return XDP_PASS;
	}
	s->hdr[0] = s->req[0];
	s->hdr[1] = s->req[1];
	return multi_reply(ctx, s, &w, l3off, iph->ihl * 4, payoff);
}

/* ---- several commands in one segment -------------------------------------- */

struct line_walk {
	struct cache_conn conn;
	__u32 off;    /* the line's first byte in s->req */
	__u32 n;      /* request bytes in s->req */
	__u32 writes; /* write commands seen */
};

struct nl_walk {
	__u32 off;
	__u32 n;
	__u32 found;
};

static long nl_step(__u32 i, struct nl_walk *w)
{
	struct cache_scratch *s = scratch_get();
	__u32 at = w->off + i;

	if (!s || at >= w->n)
		return 1;
	if (req_at(s, at) == '\n') {
		w->found = at + 1;
		return 1;
	}
	return 0;
}

/* cache_write_line invalidates the key of the write command that starts
 * the line at w->off, if it is one, and moves w->off to the next line. A
 * global function: verified once. It returns 1 at the last line. */
__attribute__((noinline)) int cache_write_line(struct line_walk *w)
{
	struct cache_scratch *s = scratch_get();
	struct nl_walk nl = {};
	struct cache_conn conn;

	if (!s || !w || w->off >= w->n)
		return 1;
	/* A copy on the stack: it is a map key, and the 6.1 verifier takes
	 * none in a global function's argument ("R2 type=mem expected=fp,
	 * pkt, pkt_meta, map_key, map_value"). */
	conn = w->conn;
	nl.off = w->off;
	nl.n = w->n;
	if (handle_write(s, w->off, w->n, &conn))
		w->writes++;
	bpf_loop(CACHE_REQ_BYTES, nl_step, &nl, 0);
	if (!nl.found)
		return 1;
	w->off = nl.found;
	return 0;
}

/* writes invalidates the key of every write command that starts a line in
 * the n request bytes in s->req from off: pipelined commands, and lines
 * of a value that look like one (harmless: one more invalidation). */
static __always_inline void writes(struct cache_conn *conn, __u32 off, __u32 n, int count)
{
	struct line_walk w = {.conn = *conn, .off = off, .n = n};

	for (__u32 i = 0; i < CACHE_MAX_LINES; i++)
		if (cache_write_line(&w))
			break;
	if (!w.writes && count)
		stat_inc(CACHE_STAT_PASS_CMD);
}

SEC("xdp")
int xdp_cache_rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct cache_scratch *s = scratch_get();
	struct cache_conn conn = {};
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
		if (!in_range(&n, CACHE_FRAME_HDR + 4, CACHE_REQ_BYTES) || bpf_xdp_load_bytes(ctx, payoff, s->req, n))
			return XDP_PASS;
		/* Datagram 0 of 1, reserved 0: a request in one datagram. */
		if (s->req[2] || s->req[3] || s->req[4] || s->req[5] != 1 || s->req[6] || s->req[7]) {
			stat_inc(CACHE_STAT_PASS_FRAME);
			return XDP_PASS;
		}
		conn.addr = iph->saddr;
		conn.port = udp->source;
		conn.reqid = (__u16)s->req[0] << 8 | s->req[1];
		conn.kind = CONN_MC_UDP;
		if (word_is(s->req, n, CACHE_FRAME_HDR, "get ", 4)) {
			int ret = get(ctx, s, iph, udp, l3off, payoff, plen);

			/* A get that passes may have writes after it. */
			if (ret != XDP_PASS)
				return ret;
			writes(&conn, CACHE_FRAME_HDR, n, 0);
			return XDP_PASS;
		}
		writes(&conn, CACHE_FRAME_HDR, n, 1);
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
		if (!in_range(&n, 4, CACHE_REQ_BYTES) || bpf_xdp_load_bytes(ctx, payoff, s->req, n))
			return XDP_PASS;
		conn.addr = iph->saddr;
		conn.port = tcp->source;
		conn.kind = CONN_MC_TCP;
		writes(&conn, 0, n, 1);
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

/* crlf_at tells whether the text has "\r\n" at off. */
static __always_inline int crlf_at(const struct cache_scratch *s, __u32 off, __u32 tlen)
{
	return text_at(s, off, tlen) == '\r' && text_at(s, off + 1, tlen) == '\n';
}

/* data_block reads "<bytes>\r\n" at *off of the text, the length of a
 * value of at most CACHE_MAX_VALUE bytes, and moves *off past it and the
 * bytes of data that follow (memcached's VALUE line and RESP's bulk
 * string say it alike). It returns bytes, or -1 when malformed. */
static __always_inline __s64 data_block(const struct cache_scratch *s, __u32 *off, __u32 tlen)
{
	__s64 bytes = number(s, off, tlen);

	if (bytes < 0 || bytes > CACHE_MAX_VALUE || !crlf_at(s, *off, tlen))
		return -1;
	*off += 2 + bytes;
	return bytes;
}

/* clear_text zeroes the scratch value's text. 1.5 KB is too much for an
 * inlined memset, and the barrier keeps clang from turning the loop back
 * into one. */
static __always_inline void clear_text(struct cache_scratch *s)
{
	__u64 *w = (__u64 *)s->val.text;

	for (__u32 i = 0; i < sizeof(s->val.text) / 8; i++) {
		w[i] = 0;
		asm volatile("" ::: "memory");
	}
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
	bytes = data_block(s, &off, tlen);
	if (bytes < 0 || off + 7 != tlen)
		return -1;
	if (!crlf_at(s, off, tlen) || text_at(s, off + 2, tlen) != 'E' || text_at(s, off + 3, tlen) != 'N' ||
	    text_at(s, off + 4, tlen) != 'D' || !crlf_at(s, off + 5, tlen))
		return -1;
	s->val.flags = flags;
	s->val.vlen = bytes;
	s->val.tlen = tlen;
	*hash = h;
	return 0;
}

/* gen_same is true when the generations g and m hold are still gen and
 * flush, as gen_read read them at the miss. */
static __always_inline int gen_same(__u64 *g, struct cache_meta *m, __u64 gen, __u64 flush)
{
	return __sync_fetch_and_add(g, 0) == gen && __sync_fetch_and_add(&m->flush, 0) == flush;
}

/* fill_insert puts s->key -> s->val, its text tlen bytes (fill_parse or
 * resp_fill_parse checked it), into map (cache or resp_cache), unless the
 * key (hash h) was written or everything flushed since the miss read gen
 * and flush. The generations are checked before and after the insert: a
 * write that bumps one after the first check deletes what is inserted, or
 * the second check does. stale and filled are the counters to count in. */
static __always_inline void fill_insert(void *map, struct cache_scratch *s, __u32 h, __u64 gen, __u64 flush,
					__u32 tlen, __u32 stale, __u32 filled)
{
	struct cache_meta *m = meta_get();
	__u64 *g = gen_slot(h);

	if (!g || !m)
		return;
	if (!gen_same(g, m, gen, flush)) {
		stat_inc(stale);
		return;
	}
	s->val.gen = gen;
	/* The caller checked tlen <= CACHE_TEXT; the mask tells the verifier,
	 * which then walks fewer paths through csum_buf. */
	tlen = masked(tlen, 2047);
	s->val.csum = csum_fold16((__u64)csum_buf((const __u8 *)s->val.text, tlen, 512) +
				  csum_buf((const __u8 *)s->val.text + 512, tlen > 512 ? tlen - 512 : 0, 512) +
				  csum_buf((const __u8 *)s->val.text + 1024, tlen > 1024 ? tlen - 1024 : 0, 512));
	if (bpf_map_update_elem(map, &s->key, &s->val, BPF_ANY)) {
		stat_inc(CACHE_STAT_FILL_ERROR);
		return;
	}
	if (!gen_same(g, m, gen, flush)) {
		bpf_map_delete_elem(map, &s->key);
		stat_inc(stale);
		return;
	}
	stat_inc(filled);
}

SEC("tc")
int tc_cache_fill(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct cache_scratch *s = scratch_get();
	struct cache_miss_key mk = {};
	struct cache_conn conn = {};
	struct cache_miss *mp, miss;
	struct iphdr *iph;
	struct udphdr *udp;
	struct ethhdr *eth;
	struct cursor c;
	__u32 payoff, plen, tlen, h;
	int ulen, proto;

	if (!s)
		return TC_ACT_OK;
	cursor_init(&c, data, end);
	if (parse_eth(&c, &eth) != ETH_P_IP)
		return TC_ACT_OK;
	/* Replies leave with their payload in page fragments (always for
	 * TCP): parse the headers only, read the payload with load_bytes. */
	proto = parse_ipv4_head(&c, &iph);
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp;

		/* Any segment with data to the client is a reply: the
		 * connection's writes are acknowledged (or about to be). */
		if (parse_tcp(&c, &tcp) < 0 || tcp->source != bpf_htons(cache_port) ||
		    bpf_ntohs(iph->tot_len) <= iph->ihl * 4 + tcp->doff * 4)
			return TC_ACT_OK;
		conn.addr = iph->daddr;
		conn.port = tcp->dest;
		conn.kind = CONN_MC_TCP;
		ack(&conn, 0);
		return TC_ACT_OK;
	}
	if (proto != IPPROTO_UDP || ipv4_is_fragment(iph))
		return TC_ACT_OK;
	ulen = parse_udp_head(&c, &udp);
	if (ulen < 0 || udp->source != bpf_htons(cache_port) || (__u32)ulen > bpf_ntohs(iph->tot_len) - iph->ihl * 4)
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
	conn.addr = mk.addr;
	conn.port = mk.port;
	conn.reqid = mk.reqid;
	conn.kind = CONN_MC_UDP;
	if (ack(&conn, 0))
		bpf_map_delete_elem(&pending, &conn);
	mp = bpf_map_lookup_elem(&misses, &mk);
	if (!mp) {
		stat_inc(CACHE_STAT_FILL_NO_MISS);
		return TC_ACT_OK;
	}
	miss = *mp;
	bpf_map_delete_elem(&misses, &mk);
	if (s->hdr[2] || s->hdr[3] || s->hdr[4] || s->hdr[5] != 1 || !in_range(&tlen, 16, CACHE_TEXT)) {
		stat_inc(CACHE_STAT_FILL_SKIP);
		return TC_ACT_OK;
	}
	/* The entry is stored whole: clear the text, or bytes of an earlier,
	 * longer reply (another key's) would ride along past tlen. */
	clear_text(s);
	if (bpf_skb_load_bytes(skb, payoff + CACHE_FRAME_HDR, s->val.text, tlen) || fill_parse(s, tlen, &h)) {
		stat_inc(CACHE_STAT_FILL_SKIP);
		return TC_ACT_OK;
	}
	if (h == miss.hash)
		fill_insert(&cache, s, h, miss.gen, miss.flush, tlen, CACHE_STAT_FILL_STALE, CACHE_STAT_FILL);
	return TC_ACT_OK;
}

/* ---- Redis RESP (test-run and labs only) -----------------------------------
 *
 * xdp_cache_resp answers "*2\r\n$3\r\nGET\r\n$<n>\r\n<key>\r\n" (the whole
 * TCP payload, the command in any case) from resp_cache with a TCP reply
 * built in place, and invalidates the key of write commands. A live
 * server's socket never learns of the bytes XDP answered for it, so its
 * sequence numbers go wrong: PROTOCOL.md "Redis RESP" says why this path
 * is refused on a live interface. tc_cache_resp_fill fills resp_cache
 * from Redis's bulk reply to a GET that missed on the same connection. */

/* A walk over the bulk strings of a RESP array in s->req. */
struct resp_walk {
	__u32 off;   /* the next element's '$' */
	__u32 n;     /* request bytes in s->req */
	__u32 plen;  /* the segment's payload length */
	__u32 nargs; /* elements in the array */
	__u32 bad;   /* an element is malformed or its header is past n */
	__u32 a0off, a0len, a1off, a1len;
};

/* resp_number reads "<digits>\r\n" at *off of s->req (n bytes), at most
 * 10 digits, and moves *off past it; -1 when malformed. */
static __always_inline __s64 resp_number(const struct cache_scratch *s, __u32 *off, __u32 n)
{
	__u64 v = 0;
	__u32 i, o = *off;

	for (i = 0; i < CACHE_MAX_DIGITS; i++) {
		__u8 c;

		if (o + i >= n)
			return -1;
		c = req_at(s, o + i);
		if (c < '0' || c > '9')
			break;
		v = v * 10 + (c - '0');
	}
	if (i == 0 || v > 0x7fffffffULL || o + i + 1 >= n || req_at(s, o + i) != '\r' || req_at(s, o + i + 1) != '\n')
		return -1;
	*off = o + i + 2;
	return v;
}

/* cache_resp_arg reads element i of the array: "$<len>\r\n<bytes>\r\n".
 * A global function, verified once. It returns 1 when the walk is over. */
__attribute__((noinline)) int cache_resp_arg(struct resp_walk *w, __u32 i)
{
	struct cache_scratch *s = scratch_get();
	__u32 off, at;
	__s64 len;

	if (!s || !w || i >= w->nargs)
		return 1;
	off = w->off;
	if (off >= w->n || req_at(s, off) != '$') {
		w->bad = 1;
		return 1;
	}
	off++;
	len = resp_number(s, &off, w->n);
	if (len < 0 || off + len + 2 > w->plen) {
		w->bad = 1;
		return 1;
	}
	at = off + len;
	/* The "\r\n" after the bytes, when it is in the bytes looked at. */
	if (at + 1 < w->n && (req_at(s, at) != '\r' || req_at(s, at + 1) != '\n')) {
		w->bad = 1;
		return 1;
	}
	if (i == 0) {
		w->a0off = off;
		w->a0len = len;
	} else if (i == 1) {
		w->a1off = off;
		w->a1len = len;
	}
	w->off = at + 2;
	return 0;
}

/* Commands are compared as two 64-bit words of up to 16 upper-case
 * letters, byte i at bits 8*(i%8): no string constant reaches the object
 * (it would become a .rodata.str map), and a compare is two instructions. */
#define CH(s, i) ((__u64)(sizeof(s) - 1 > (i) ? (__u8)(s)[sizeof(s) - 1 > (i) ? (i) : 0] : 0) << (8 * ((i) % 8)))
#define PACK_LO(s) (CH(s, 0) | CH(s, 1) | CH(s, 2) | CH(s, 3) | CH(s, 4) | CH(s, 5) | CH(s, 6) | CH(s, 7))
#define PACK_HI(s) (CH(s, 8) | CH(s, 9) | CH(s, 10) | CH(s, 11) | CH(s, 12) | CH(s, 13) | CH(s, 14) | CH(s, 15))

struct resp_cmd {
	__u64 lo, hi;
	__u32 len;
};

/* cache_resp_cmd reads the command name, len bytes (1 to 16) at off of
 * s->req, into c, upper-cased. A global function, verified once on its
 * own: inlined, the branches of its 16 steps multiplied the states the
 * verifier walked through in xdp_cache_resp (52,000 instructions on 6.18,
 * 580,000 on 6.1), because the comparisons of cmd_is make every byte
 * precise. */
__attribute__((noinline)) int cache_resp_cmd(struct resp_cmd *c, __u32 off, __u32 len)
{
	struct cache_scratch *s = scratch_get();

	if (!s || !c)
		return 0;
	c->lo = 0;
	c->hi = 0;
	c->len = len;
#pragma unroll
	for (__u32 i = 0; i < 16; i++) {
		__u64 ch = i < len ? req_at(s, off + i) : 0;

		if (ch >= 'a' && ch <= 'z')
			ch -= 32;
		if (i < 8)
			c->lo |= ch << (8 * i);
		else
			c->hi |= ch << (8 * (i - 8));
	}
	return 0;
}

#define cmd_is(c, s) ((c)->len == sizeof(s) - 1 && (c)->lo == PACK_LO(s) && (c)->hi == PACK_HI(s))

/* resp_write_cmd: commands that change the value of their first argument
 * (a key), as the RESP cache invalidates them. */
static __always_inline int resp_write_cmd(const struct resp_cmd *c)
{
	return cmd_is(c, "SET") || cmd_is(c, "DEL") || cmd_is(c, "UNLINK") ||
	       cmd_is(c, "SETNX") || cmd_is(c, "SETEX") || cmd_is(c, "PSETEX") ||
	       cmd_is(c, "GETSET") || cmd_is(c, "GETDEL") || cmd_is(c, "GETEX") ||
	       cmd_is(c, "APPEND") || cmd_is(c, "SETRANGE") || cmd_is(c, "INCR") ||
	       cmd_is(c, "DECR") || cmd_is(c, "INCRBY") || cmd_is(c, "DECRBY") ||
	       cmd_is(c, "INCRBYFLOAT") || cmd_is(c, "EXPIRE") || cmd_is(c, "PEXPIRE") ||
	       cmd_is(c, "EXPIREAT") || cmd_is(c, "PEXPIREAT") || cmd_is(c, "PERSIST");
}

/* resp_read_cmd: commands that change nothing the cache holds. */
static __always_inline int resp_read_cmd(const struct resp_cmd *c)
{
	return cmd_is(c, "GET") || cmd_is(c, "MGET") || cmd_is(c, "EXISTS") ||
	       cmd_is(c, "TTL") || cmd_is(c, "PTTL") || cmd_is(c, "STRLEN") ||
	       cmd_is(c, "TYPE") || cmd_is(c, "GETRANGE") || cmd_is(c, "PING") ||
	       cmd_is(c, "ECHO") || cmd_is(c, "INFO") || cmd_is(c, "DBSIZE") ||
	       cmd_is(c, "HELLO") || cmd_is(c, "AUTH") || cmd_is(c, "CLIENT") ||
	       cmd_is(c, "COMMAND") || cmd_is(c, "KEYS") || cmd_is(c, "SCAN");
}

/* resp_flush empties resp_cache now and again when the reply leaves. */
static __always_inline void resp_flush(struct cache_scratch *s, struct cache_conn *conn)
{
	flush_all(1);
	stat_inc(CACHE_STAT_RESP_FLUSH);
	pending_add(s, conn, 0, 1);
}

/* resp_reply turns the GET request into the TCP reply carrying v's text:
 * request at l3off (IPv4 header of hlen bytes), its payload plen bytes. */
static __always_inline int resp_reply(struct xdp_md *ctx, struct cache_scratch *s, struct cache_value *v,
				      __u32 l3off, __u32 hlen, __u32 plen)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct tcphdr *tcp;
	__u32 tlen = v->tlen, seq, ackn;
	__u64 psum = 0;
	__s64 hsum;
	__u16 port;
	long delta;

	if (!in_range(&tlen, 1, CACHE_TEXT) || !in_range(&l3off, 0, 64) || !in_range(&hlen, 20, 60))
		return XDP_PASS;
	tcp = data + l3off + hlen;
	if ((void *)(tcp + 1) > end)
		return XDP_PASS;
	seq = bpf_ntohl(tcp->seq);
	ackn = tcp->ack_seq;
	delta = (long)(l3off + hlen + sizeof(*tcp) + tlen) - (long)(end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta)) {
		stat_inc(CACHE_STAT_PASS_ROOM);
		return XDP_PASS;
	}
	if (bpf_xdp_store_bytes(ctx, l3off + hlen + sizeof(*tcp), v->text, tlen))
		return XDP_DROP;
	if (reply_eth(ctx) || reply_ipv4(ctx, l3off, hlen, sizeof(*tcp) + tlen, 64, s->iph, &psum))
		return XDP_DROP;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	tcp = data + l3off + hlen;
	if ((void *)(tcp + 1) > end)
		return XDP_DROP;
	port = tcp->source;
	tcp->source = tcp->dest;
	tcp->dest = port;
	/* The reply's bytes start where the client's acknowledgement says
	 * the server's stream is, and acknowledge the whole request. */
	tcp->seq = ackn;
	tcp->ack_seq = bpf_htonl(seq + plen);
	((__u8 *)tcp)[12] = 5 << 4;     /* data offset 5 words: no options */
	((__u8 *)tcp)[13] = 0x08 | 0x10; /* PSH|ACK */
	tcp->urg_ptr = 0;
	tcp->check = 0;
	hsum = bpf_csum_diff(0, 0, (__be32 *)tcp, sizeof(*tcp), 0);
	if (hsum < 0)
		return XDP_DROP;
	psum += bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*tcp) + tlen);
	psum += csum_fold16(hsum);
	psum += v->csum; /* the text starts 20 bytes into the segment: even */
	tcp->check = csum_finish(psum);
	stat_inc(CACHE_STAT_RESP_HIT);
	return XDP_TX;
}

/* resp_get handles "GET <key>" (the key element at w->a1off, s->req). */
static __always_inline int resp_get(struct xdp_md *ctx, struct cache_scratch *s, struct resp_walk *w,
				    struct cache_conn *conn, __u32 l3off, __u32 hlen, __u32 plen, int outstanding)
{
	struct cache_value *v;
	__u32 h;

	stat_inc(CACHE_STAT_RESP_GET);
	if (w->a1len == 0 || w->a1len > CACHE_MAX_KEY) {
		stat_inc(CACHE_STAT_PASS_KEY);
		return XDP_PASS;
	}
	h = key_from(s, 0, w->a1off, w->a1len);
	if (!h) {
		stat_inc(CACHE_STAT_PASS_KEY);
		return XDP_PASS;
	}
	v = bpf_map_lookup_elem(&resp_cache, &s->key);
	if (v)
		return resp_reply(ctx, s, v, l3off, hlen, plen);
	stat_inc(CACHE_STAT_RESP_MISS);
	/* One outstanding GET per connection: with two, which reply answers
	 * which is not known here, so neither fills. */
	if (outstanding)
		return XDP_PASS;
	if (gen_read(h, &s->rm.gen, &s->rm.flush))
		return XDP_PASS;
	s->rm.hash = h;
	s->rm.pad = 0;
	__builtin_memcpy(&s->rm.key, &s->key, sizeof(s->key));
	bpf_map_update_elem(&resp_misses, conn, &s->rm, BPF_ANY);
	return XDP_PASS;
}

SEC("xdp")
int xdp_cache_resp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct cache_scratch *s = scratch_get();
	struct cache_conn conn = {};
	struct resp_walk w = {};
	struct resp_cmd cmd = {};
	struct iphdr *iph;
	struct tcphdr *tcp;
	struct ethhdr *eth;
	struct cursor c;
	__u32 l3off, payoff, plen, n, hlen, room, len;
	int thlen, outstanding;
	__s64 nargs;

	if (!s)
		return XDP_PASS;
	cursor_init(&c, data, end);
	if (parse_eth(&c, &eth) != ETH_P_IP) {
		stat_inc(CACHE_STAT_PASS_OTHER);
		return XDP_PASS;
	}
	l3off = cursor_off(&c);
	if (parse_ipv4(&c, &iph) != IPPROTO_TCP || ipv4_is_fragment(iph)) {
		stat_inc(CACHE_STAT_PASS_OTHER);
		return XDP_PASS;
	}
	thlen = parse_tcp(&c, &tcp);
	if (thlen < 0 || tcp->dest != bpf_htons(redis_port)) {
		stat_inc(CACHE_STAT_PASS_OTHER);
		return XDP_PASS;
	}
	hlen = iph->ihl * 4;
	room = bpf_ntohs(iph->tot_len);
	if (room <= hlen + (__u32)thlen)
		return XDP_PASS; /* no data: a bare ACK, SYN or FIN */
	plen = room - hlen - thlen;
	payoff = cursor_off(&c);
	n = plen < CACHE_REQ_BYTES ? plen : CACHE_REQ_BYTES;
	if (!in_range(&n, 1, CACHE_REQ_BYTES) || bpf_xdp_load_bytes(ctx, payoff, s->req, n)) {
		stat_inc(CACHE_STAT_RESP_PASS);
		return XDP_PASS;
	}
	conn.addr = iph->saddr;
	conn.port = tcp->source;
	conn.kind = CONN_RESP;
	/* Any request ends the outstanding GET's claim to the next reply. */
	outstanding = bpf_map_delete_elem(&resp_misses, &conn) == 0;
	if (s->req[0] != '*') {
		/* Not an array: the rest of a command begun in an earlier
		 * segment (inline commands are not supported). */
		stat_inc(CACHE_STAT_RESP_PASS);
		return XDP_PASS;
	}
	w.off = 1;
	nargs = resp_number(s, &w.off, n);
	if (nargs < 1 || nargs > RESP_MAX_ARGS) {
		resp_flush(s, &conn);
		return XDP_PASS;
	}
	w.n = n;
	w.plen = plen;
	w.nargs = nargs;
	for (__u32 i = 0; i < RESP_MAX_ARGS; i++)
		if (cache_resp_arg(&w, i))
			break;
	len = w.a0len;
	if (w.bad || len == 0 || len > 16 || w.a0off >= n) {
		resp_flush(s, &conn);
		return XDP_PASS;
	}
	cache_resp_cmd(&cmd, w.a0off, len);
	/* Exactly one command in the segment: a pipelined one after it is
	 * not read, so the segment flushes unless it is only that command. */
	if (w.off != plen) {
		resp_flush(s, &conn);
		return XDP_PASS;
	}
	if (cmd_is(&cmd, "GET") && nargs == 2)
		return resp_get(ctx, s, &w, &conn, l3off, hlen, plen, outstanding);
	if (cmd_is(&cmd, "FLUSHALL") || cmd_is(&cmd, "FLUSHDB") ||
	    ((cmd_is(&cmd, "DEL") || cmd_is(&cmd, "UNLINK")) && nargs > 2)) {
		resp_flush(s, &conn);
		return XDP_PASS;
	}
	if (resp_write_cmd(&cmd) && nargs >= 2) {
		__u32 h = 0;

		if (w.a1len > 0 && w.a1len <= CACHE_MAX_KEY)
			h = key_from(s, 0, w.a1off, w.a1len);
		/* A key the cache cannot hold was never cached. */
		if (h) {
			invalidate_key(&s->key, h, 1);
			pending_add(s, &conn, h, 0);
			stat_inc(CACHE_STAT_RESP_INVALIDATE);
		}
		return XDP_PASS;
	}
	if (resp_read_cmd(&cmd)) {
		stat_inc(CACHE_STAT_RESP_PASS);
		return XDP_PASS;
	}
	/* Any other command may change a key (MSET, RENAME, EVAL, ...). */
	resp_flush(s, &conn);
	return XDP_PASS;
}

/* resp_fill_parse checks the reply text (tlen bytes) in s->val.text:
 * exactly "$<bytes>\r\n<data>\r\n", bytes at most CACHE_MAX_VALUE. */
static __always_inline int resp_fill_parse(struct cache_scratch *s, __u32 tlen)
{
	__u32 off = 1;
	__s64 bytes;

	if (tlen < 5 || tlen > RESP_MAX_VALUE_TEXT || s->val.text[0] != '$')
		return -1;
	bytes = data_block(s, &off, tlen);
	if (bytes < 0 || off + 2 != tlen || !crlf_at(s, off, tlen))
		return -1;
	s->val.flags = 0;
	s->val.vlen = bytes;
	s->val.tlen = tlen;
	return 0;
}

SEC("tc")
int tc_cache_resp_fill(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct cache_scratch *s = scratch_get();
	struct cache_conn conn = {};
	struct resp_miss *mp;
	struct iphdr *iph;
	struct tcphdr *tcp;
	struct ethhdr *eth;
	struct cursor c;
	__u32 payoff, plen, room;
	int thlen;

	if (!s)
		return TC_ACT_OK;
	cursor_init(&c, data, end);
	if (parse_eth(&c, &eth) != ETH_P_IP || parse_ipv4_head(&c, &iph) != IPPROTO_TCP || ipv4_is_fragment(iph))
		return TC_ACT_OK;
	thlen = parse_tcp(&c, &tcp);
	if (thlen < 0 || tcp->source != bpf_htons(redis_port))
		return TC_ACT_OK;
	room = bpf_ntohs(iph->tot_len);
	if (room <= iph->ihl * 4 + (__u32)thlen)
		return TC_ACT_OK;
	plen = room - iph->ihl * 4 - thlen;
	payoff = cursor_off(&c);
	conn.addr = iph->daddr;
	conn.port = tcp->dest;
	conn.kind = CONN_RESP;
	ack(&conn, 1);
	mp = bpf_map_lookup_elem(&resp_misses, &conn);
	if (!mp)
		return TC_ACT_OK;
	s->rm = *mp;
	bpf_map_delete_elem(&resp_misses, &conn);
	clear_text(s); /* as in tc_cache_fill */
	if (!in_range(&plen, 5, RESP_MAX_VALUE_TEXT) ||
	    bpf_skb_load_bytes(skb, payoff, s->val.text, plen) || resp_fill_parse(s, plen)) {
		stat_inc(CACHE_STAT_RESP_FILL_SKIP);
		return TC_ACT_OK;
	}
	__builtin_memcpy(&s->key, &s->rm.key, sizeof(s->key));
	fill_insert(&resp_cache, s, s->rm.hash, s->rm.gen, s->rm.flush, plen, CACHE_STAT_RESP_FILL_STALE,
		    CACHE_STAT_RESP_FILL);
	return TC_ACT_OK;
}
