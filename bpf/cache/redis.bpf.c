// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* redis: Redis GETs answered in the kernel, live, over real TCP, on
 * upstream kernels. PROTOCOL.md ("Redis, live") has the design; in short:
 *
 * redis_sockops (sock_ops, on the cgroup v2 root or redis-server's own
 * cgroup) puts every connection that redis-server accepts on redis_port
 * into the sockhash redis_socks, and
 * gives it a record in redis_conns.
 *
 * redis_verdict (sk_skb/stream_verdict, without a stream parser: see
 * "the client's stream") frames the client's bytes into RESP commands
 * itself, carrying its place across skbs, and looks at each command before
 * redis-server does: a GET alone in its skb whose key is cached, on a
 * connection with nothing outstanding inside redis-server, is rewritten
 * into the reply and redirected out of the same socket (the kernel's TCP
 * numbers the bytes); every writing command invalidates its key (or
 * everything) first; everything else passes untouched.
 *
 * redis_replies (sk_msg) sees every reply redis-server writes on those
 * sockets: it counts replies (so the verdict knows when nothing is
 * outstanding), fills the cache from the bulk reply to a GET that missed
 * when the key's generation has not moved since, and invalidates again
 * when a write is acknowledged.
 *
 * Cache entries are copied by hits without a lock, so they follow
 * seqlock.h: a fill rewrites an entry in place between an odd and an
 * even sequence word (a number from redis_meta[2], never reused), or
 * inserts a new one odd and then publishes it; nothing replaces or
 * deletes an entry, since the map would hand the freed element to the
 * next fill on that CPU while a hit may still be copying it. A hit keeps
 * its copy only when the word was even and is unchanged, the entry's own
 * copy of its key is the key asked for, and its generation and epoch are
 * the current ones; on any doubt the GET is a miss and goes on to
 * redis-server (PROTOCOL.md, "How a hit is validated").
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "seqlock.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define TCP_CLOSE 7

#define R_MAX_KEY 64           /* longest key cached */
#define R_MAX_VALUE 1024       /* longest value cached */
#define R_REPLY (R_MAX_VALUE + 16) /* "$1024\r\n" + value + "\r\n" fits */
#define R_NAME 16              /* command names looked up (longer: unknown) */
#define R_GENS 65536           /* generation slots (power of two) */
#define R_RING 16              /* outstanding commands remembered per connection */
#define R_HWIN 16              /* reply header bytes read per step */
#define R_WALK (1U << 23)      /* most steps per skb or message (bpf_loop's own limit) */
#define R_DIRTY 8              /* keys written on a desynced connection, remembered */
#define R_NOWHERE 0xffffffffu  /* rh_start: the header began in an earlier message */
#define R_TTL_BIT (1ULL << 63) /* in a generation: the key may carry a TTL */

/* Command classes, the values of redis_cmds (filled from user space;
 * a name missing from it is R_C_UNKNOWN). */
enum {
	R_C_UNKNOWN = 0,   /* may write anything, may set TTLs */
	R_C_GET = 1,       /* GET key */
	R_C_READ = 2,      /* writes nothing */
	R_C_WRITE1 = 3,    /* writes its first argument only, no TTL */
	R_C_WRITE1_TTL = 4,/* writes its first argument, may give it a TTL */
	R_C_SET = 5,       /* SET: WRITE1, WRITE1_TTL with options */
	R_C_DEL = 6,       /* DEL/UNLINK: WRITE1 with one key, GLOBAL with more */
	R_C_GLOBAL = 7,    /* writes other keys, sets no TTL */
	R_C_TAINT = 8,     /* replies stop being countable: SUBSCRIBE, MONITOR, ... */
	R_C_SELECT = 9,    /* SELECT db */
	R_C_MULTI = 10,    /* MULTI: commands are queued, GETs not answered */
	R_C_EXEC = 11,     /* EXEC: GLOBAL, and the transaction ends */
	R_C_DISCARD = 12,  /* DISCARD: READ, and the transaction ends */
	R_C_AUTH = 13,     /* AUTH, HELLO: READ, and hits wait for a GET redis-server answers */
	R_C_CLIENT = 14,   /* CLIENT: READ, but CLIENT REPLY is TAINT */
};

/* Kinds of the commands outstanding on a connection (struct r_slot). */
enum {
	R_S_NONE = 0,
	R_S_GETMISS = 1,   /* fill from the reply if the key has not moved */
	R_S_WRITE = 2,     /* bump the key's generation at the reply */
	R_S_GLOBAL = 3,    /* bump the epoch at the reply */
};

/* Counters (per-CPU; PROTOCOL.md). */
enum {
	R_ST_HIT = 0,
	R_ST_MISS,
	R_ST_FILL,
	R_ST_INVAL,        /* per-key invalidations */
	R_ST_FLUSH,        /* epoch bumps (everything invalidated) */
	R_ST_PASS,         /* commands passed that are neither GET nor writes */
	R_ST_TAINT,        /* connections given up on (pass-through from then) */
	R_ST_CONN,         /* connections added */
	R_ST_GET_BUSY,     /* GET hits passed: a command was outstanding */
	R_ST_FILL_STALE,   /* fills refused: the key moved */
	R_ST_REPLY,        /* replies counted */
	R_ST_DESYNC,       /* connections whose replies stopped being counted */
	R_ST_HIT_RACE,     /* hits given up: the entry changed under the copy */
	R_ST_FILL_RACE,    /* fills given up: another fill held the entry */
	R_ST_MAX,
};

volatile const __u16 redis_port = 6379;

/* redis_trace (cache attach --redis trace) makes the programs say what
 * they do, one bpf_printk line per hit, miss, fill and invalidation, for
 * 'trace' to show. It is a constant of the frozen .rodata: when it is 0
 * the verifier drops these branches, and nothing is printed or checked.
 * A key is printed up to its first NUL byte (a 64-byte key, which has
 * none, up to the next one after it). */
volatile const __u8 redis_trace = 0;

#define rtrace(fmt, ...)                                   \
	do {                                                   \
		if (redis_trace)                                   \
			bpf_printk("redis " fmt, ##__VA_ARGS__);       \
	} while (0)

struct r_sockkey {
	__u32 ip[4];       /* remote address (IPv4 in ip[0]) */
	__u32 rport;       /* remote port as the contexts give it */
	__u32 lport;       /* local port, host order */
};

struct r_key {
	__u32 len;
	char k[R_MAX_KEY];
};

struct r_slot {
	__u64 seq;         /* the command's number on its connection */
	__u64 gen;         /* GETMISS: the key's generation when it missed */
	__u64 epoch;       /* GETMISS: the epoch when it missed */
	__u32 kind;
	__u32 hash;
	struct r_key key;
};

struct r_name {
	char n[R_NAME];
};

/* A key written by a command whose reply the ring does not hold: its
 * generation moves at every reply numbered below until (flush_until is
 * the same for commands that may write any key), and, on a desynced
 * connection, whose replies are not numbered, at every message while
 * until > replied. A slot whose until <= replied is free. The verdict
 * fills slots (and redis_replies, once, when it desyncs the connection);
 * the hash is written before until, and redis_replies only reads them. */
struct r_dirty {
	__u64 until;
	__u32 hash;
	__u32 pad;
};

/* A hit on its way out: the request's skb is redirected as it is (its
 * length must not change: the kernel advances the socket's copied_seq by
 * the redirected skb's length), and redis_replies turns it into the
 * reply as the socket sends it. */
struct r_hitkey {
	struct r_sockkey sk;
	__u64 seq;
};

struct r_hit {
	__u32 reqlen;      /* bytes of the request, as the skb redirected */
	__u32 len;         /* bytes of reply */
	char reply[R_REPLY];
};

struct r_cmd {
	__u32 argc;
	__u32 namelen;
	struct r_name name;
	struct r_key key;  /* the first argument, when at most R_MAX_KEY long */
};

struct r_conn {
	__u64 passed;      /* commands passed to redis-server */
	__u64 replied;     /* replies redis-server wrote */
	__u64 flush_until; /* bump the epoch at every reply before this one */
	__u32 tainted;     /* requests cannot be framed: pass-through, fills stop */
	__u32 rdesync;     /* replies cannot be matched to commands: no hits */
	__u32 in_multi;    /* inside MULTI: redis-server queues, answers +QUEUED */
	__u32 proven;      /* redis-server has answered a GET here: hits allowed */
	__u32 nodb0;       /* SELECT of another db: no hits, no fills */
	__u64 hit_head;    /* the oldest answered hit the sockhash has yet to send */
	__u64 hit_tail;    /* the next hit's number */
	__u32 hit_off;     /* bytes of the oldest hit's request already sent */
	__u32 pad2;
	__u32 need;        /* elements left in the reply being read (0: at a reply) */
	__u32 skip;        /* bytes of a blob still to skip */
	/* The reply stream (reply_step): the walk through a message, and a
	 * header line carried across messages. */
	__u32 roff;        /* the walk's next byte in the message */
	__u32 rsize;       /* the message's size */
	__u32 rerr;        /* the walk met what it cannot follow */
	__u32 rh_n;        /* bytes of the header line read (0: at a header) */
	__u32 rh_t;        /* its type byte */
	__u32 rh_neg;      /* its number is negative (a null) */
	__u32 rh_dig;      /* its number has a digit */
	__u32 rh_num;      /* its type is followed by a length or a count */
	__u32 rh_cr;       /* its "\r" was read */
	__u32 rh_start;    /* its offset in this message (R_NOWHERE: an earlier one) */
	__u64 rh_v;        /* its number so far */
	/* Writes whose replies cannot be told apart from the others: passed
	 * with more outstanding than the ring holds, or on a desynced
	 * connection (struct r_dirty). */
	struct r_dirty dirty[R_DIRTY];
	/* The request stream (req_step). */
	__u32 rq_st;       /* R_Q_* */
	__u32 rq_hn;       /* bytes of the header line read (100: its "\r") */
	__u32 rq_hv;       /* the header line's number so far */
	__u32 rq_argi;     /* the argument being read */
	__u32 rq_plen;     /* its length */
	__u32 rq_skip;     /* its bytes (and "\r\n") still to come */
	__u32 rq_start;    /* offset of the command's "*" in this skb */
	__u32 rq_first;    /* the command is the first of this skb, which began at it */
	__u32 rq_off;      /* the walk's next byte in the skb */
	__u32 rq_res;      /* how the walk ended (R_W_*) */
	struct r_cmd cmd;  /* the command being read */
	struct r_slot ring[R_RING];
};

/* A cached reply. seq follows seqlock.h: even once published, odd while
 * a fill writes it. key is the entry's own key, for hits to check. */
struct r_entry {
	__u64 seq;
	__u64 gen;
	__u64 epoch;
	struct r_key key;
	__u32 len;         /* bytes of reply */
	char reply[R_REPLY];
};


struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct r_sockkey);
	__type(value, __u64);
} redis_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct r_sockkey);
	__type(value, struct r_conn);
} redis_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct r_key);
	__type(value, struct r_entry);
} redis_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, R_GENS);
	__type(key, __u32);
	__type(value, __u64);
} redis_gens SEC(".maps");

/* redis_meta[0]: the epoch; [1]: non-zero once a command that may have
 * given any key a TTL passed (no fills from then on); [2]: the last
 * number an entry was published with (seqlock.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} redis_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct r_name);
	__type(value, __u32);
} redis_cmds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} redis_stats SEC(".maps");

/* Zeroes: a fresh connection record, and a fresh cache entry. */
struct r_zero {
	struct r_conn conn;
	struct r_entry entry;
	struct r_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct r_zero);
} redis_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct r_hitkey);
	__type(value, struct r_hit);
} redis_hits SEC(".maps");

/* Per-CPU scratch for the verdict and the fill. */
struct r_scratch {
	struct r_entry entry;
	struct r_hit hit;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct r_scratch);
} redis_scratch SEC(".maps");

static __always_inline void stat(__u32 idx)
{
	counter_inc(&redis_stats, idx);
}

static __always_inline __u64 *meta(__u32 idx)
{
	return bpf_map_lookup_elem(&redis_meta, &idx);
}

static __always_inline void flush_all(void)
{
	__u64 *e = meta(0);

	if (e)
		__sync_fetch_and_add(e, 1);
	stat(R_ST_FLUSH);
}

static __always_inline void no_more_fills(void)
{
	__u64 *f = meta(1);

	if (f)
		*f = 1;
}

static __always_inline __u64 *gen_of(__u32 hash)
{
	__u32 idx = hash & (R_GENS - 1);

	return bpf_map_lookup_elem(&redis_gens, &idx);
}

static __always_inline void bump(__u32 hash, int ttl)
{
	__u64 *g = gen_of(hash);

	if (!g)
		return;
	__sync_fetch_and_add(g, 1);
	if (ttl)
		__sync_fetch_and_or(g, R_TTL_BIT);
}

static __always_inline __u32 key_hash(const struct r_key *k)
{
	__u32 h = 2166136261u;
	__u32 n = k->len;

	for (int i = 0; i < R_MAX_KEY; i++) {
		if (i >= n)
			break;
		h ^= (__u8)k->k[i];
		h *= 16777619u;
	}
	return h;
}

/* ---- sock_ops: admit redis-server's accepted connections ---- */

SEC("sockops")
int redis_sockops(struct bpf_sock_ops *skops)
{
	struct r_sockkey sk = {};
	struct r_zero *z;
	__u32 zero = 0;

	if (skops->local_port != redis_port)
		return 1;
	sk.rport = skops->remote_port;
	sk.lport = skops->local_port;
	if (skops->family == AF_INET) {
		sk.ip[0] = skops->remote_ip4;
	} else {
		sk.ip[0] = skops->remote_ip6[0];
		sk.ip[1] = skops->remote_ip6[1];
		sk.ip[2] = skops->remote_ip6[2];
		sk.ip[3] = skops->remote_ip6[3];
	}
	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		z = bpf_map_lookup_elem(&redis_zero, &zero);
		if (!z)
			return 1;
		/* The record first: the parser drops into pass-through for a
		 * socket without one. */
		if (bpf_map_update_elem(&redis_conns, &sk, &z->conn, BPF_ANY))
			return 1;
		if (bpf_sock_hash_update(skops, &redis_socks, &sk, BPF_ANY)) {
			bpf_map_delete_elem(&redis_conns, &sk);
			return 1;
		}
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
		stat(R_ST_CONN);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		/* A (new) redis-server listens: whatever is cached came from
		 * the last one, whose data may be gone. */
		flush_all();
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == TCP_CLOSE) {
			struct r_conn *c = bpf_map_lookup_elem(&redis_conns, &sk);

			if (c) {
				/* Hits the socket never sent. */
				struct r_hitkey hk = {};
				__u64 head = c->hit_head, tail = c->hit_tail;

				__builtin_memcpy(&hk.sk, &sk, sizeof(sk));
				for (int i = 0; i < 8; i++) {
					if (head + i >= tail)
						break;
					hk.seq = head + i;
					bpf_map_delete_elem(&redis_hits, &hk);
				}
			}
			bpf_map_delete_elem(&redis_conns, &sk);
		}
		break;
	}
	return 1;
}

/* ---- the client's stream ---- */

/* inline_ping says whether buf (n bytes of it read) starts with the inline
 * command PING, in any case, ended by "\r\n" or "\n" as redis-server
 * accepts. */
static __always_inline int inline_ping(const __u8 *buf, __u32 n)
{
	if (n < 5 || (buf[0] | 0x20) != 'p' || (buf[1] | 0x20) != 'i' || (buf[2] | 0x20) != 'n' || (buf[3] | 0x20) != 'g')
		return 0;
	if (buf[4] == '\n')
		return 1;
	return n >= 6 && buf[4] == '\r' && buf[5] == '\n';
}

/* Why no sk_skb/stream_parser: with one, the sockhash's backlog sends a
 * redirected skb by the parser's bookkeeping (offset, full_len of the
 * request), not by its length after bpf_skb_change_tail: a reply of
 * another length than its request breaks the socket (EPIPE). Without one,
 * the verdict sees each skb as TCP queued it and frames the stream
 * itself, carrying its place across skbs in the connection's record. */

static __always_inline void skb_sockkey(struct __sk_buff *skb, struct r_sockkey *sk)
{
	sk->rport = skb->remote_port;
	sk->lport = skb->local_port;
	if (skb->family == AF_INET) {
		sk->ip[0] = skb->remote_ip4;
	} else {
		sk->ip[0] = skb->remote_ip6[0];
		sk->ip[1] = skb->remote_ip6[1];
		sk->ip[2] = skb->remote_ip6[2];
		sk->ip[3] = skb->remote_ip6[3];
	}
}

static __always_inline struct r_conn *conn_of(struct __sk_buff *skb)
{
	struct r_sockkey sk = {};

	skb_sockkey(skb, &sk);
	return bpf_map_lookup_elem(&redis_conns, &sk);
}

static __always_inline void upper(struct r_name *nm)
{
#pragma unroll
	for (int i = 0; i < R_NAME; i++) {
		char b = nm->n[i];

		if (b >= 'a' && b <= 'z')
			nm->n[i] = b - 32;
	}
}

/* ring_push remembers what the reply to command number c->passed does. */
static __always_inline int ring_push(struct r_conn *c, __u32 kind, __u32 hash, __u64 gen, __u64 epoch)
{
	__u64 seq = c->passed;
	struct r_slot *s;

	if (seq - c->replied >= R_RING)
		return -1;
	s = &c->ring[seq & (R_RING - 1)];
	s->seq = seq;
	s->kind = kind;
	s->hash = hash;
	s->gen = gen;
	s->epoch = epoch;
	if (kind == R_S_GETMISS)
		__builtin_memcpy(&s->key, &c->cmd.key, sizeof(s->key));
	return 0;
}

/* dirty_add remembers that the key of hash must move at every reply
 * before number until (struct r_dirty); with no slot free, everything
 * must (flush_until). */
static __always_inline void dirty_add(struct r_conn *c, __u32 hash, __u64 until)
{
	__u64 replied = c->replied;
	__u32 free = R_DIRTY;

	for (__u32 i = 0; i < R_DIRTY; i++) {
		struct r_dirty *d = &c->dirty[i];

		if (d->until > replied && d->hash == hash) {
			if (d->until < until)
				d->until = until;
			return;
		}
		if (free == R_DIRTY && d->until <= replied)
			free = i;
	}
	if (free >= R_DIRTY) {
		if (c->flush_until < until)
			c->flush_until = until;
		return;
	}
	c->dirty[free].hash = hash;
	asm volatile("" ::: "memory");
	c->dirty[free].until = until;
}

/* dirty_bump moves the keys that must move at reply number seq. */
static __always_inline void dirty_bump(struct r_conn *c, __u64 seq)
{
	for (int i = 0; i < R_DIRTY; i++) {
		struct r_dirty *d = &c->dirty[i];

		if (seq < d->until)
			bump(d->hash, 0);
	}
	if (seq < c->flush_until)
		flush_all();
}

/* pass_write passes a command that writes: the key's generation (or the
 * epoch) moves now, before redis-server sees it, and again when its reply
 * leaves. */
static __always_inline void pass_write(struct r_conn *c, int global, __u32 hash, int ttl)
{
	if (global) {
		flush_all();
		if (ttl)
			no_more_fills();
		rtrace("flush: a command that may write any key; everything cached is invalid");
	} else {
		bump(hash, ttl);
		stat(R_ST_INVAL);
		rtrace("invalidate: %s is written; redis-server has not seen the write yet", c->cmd.key.k);
	}
	if (c->rdesync || ring_push(c, global ? R_S_GLOBAL : R_S_WRITE, hash, 0, 0)) {
		/* Too many outstanding to remember this one in the ring, or
		 * replies not counted: the key (or everything) moves again at
		 * every reply until its own. */
		if (!global)
			dirty_add(c, hash, c->passed + 1);
		else if (c->flush_until < c->passed + 1)
			c->flush_until = c->passed + 1;
	}
	c->passed++;
}

static __always_inline void taint(struct r_conn *c)
{
	if (!c->tainted)
		stat(R_ST_TAINT);
	c->tainted = 1;
	flush_all();
	no_more_fills();
}

/* desync gives up counting a connection's replies (pub/sub, MONITOR,
 * RESP3 pushes, replies the walk cannot follow): its requests are still
 * framed and invalidate as ever, but it gets no hits and no fills (the
 * danger is its own: an answer out of order). The other connections keep
 * their cache: what a reply on it can still do to them is acknowledge a
 * write, so the writes outstanding now, and those passed from now on, are
 * remembered, and at every message redis-server writes on it their keys'
 * generations move again (desync_msg), as reply_done would have moved
 * them at their own replies. */
static __always_inline void desync(struct r_conn *c)
{
	__u64 seq;

	if (c->rdesync)
		return;
	stat(R_ST_DESYNC);
	rtrace("desync: this connection's replies are not counted from now on; it gets no hits");
	c->rdesync = 1;
	for (int i = 0; i < R_RING; i++) {
		struct r_slot *s;

		seq = c->replied + i;
		if (seq >= c->passed)
			break;
		s = &c->ring[seq & (R_RING - 1)];
		if (s->seq != seq)
			continue;
		if (s->kind == R_S_WRITE)
			dirty_add(c, s->hash, seq + 1);
		else if (s->kind == R_S_GLOBAL && c->flush_until < seq + 1)
			c->flush_until = seq + 1;
	}
}

/* desync_msg is what a message redis-server writes on a desynced
 * connection does: it may hold the reply to any write remembered there
 * (replied stopped at the desync, so they stay remembered). */
static __always_inline void desync_msg(struct r_conn *c)
{
	dirty_bump(c, c->replied);
}

/* cmd_class is the class of the command just read (R_C_*). */
static __always_inline __u32 cmd_class(struct r_conn *c)
{
	struct r_name nm;
	__u32 *cls;

	__builtin_memcpy(&nm, &c->cmd.name, sizeof(nm));
	upper(&nm);
	if (c->cmd.namelen < 1 || c->cmd.namelen > R_NAME)
		return R_C_UNKNOWN;
	cls = bpf_map_lookup_elem(&redis_cmds, &nm);
	return cls ? *cls : R_C_UNKNOWN;
}

/* client_reply says whether the CLIENT subcommand k is REPLY. */
static __always_inline int client_reply(const struct r_key *k)
{
	return k->len == 5 && (k->k[0] | 0x20) == 'r' && (k->k[1] | 0x20) == 'e' &&
	       (k->k[2] | 0x20) == 'p' && (k->k[3] | 0x20) == 'l' && (k->k[4] | 0x20) == 'y';
}

/* cmd_done acts on the command just read, which passes to redis-server:
 * it invalidates what the command may write and remembers what its reply
 * does. hit_ok says a GET may be answered: it returns 1 then, when the
 * key is cached and nothing is outstanding, and the verdict answers. */
__noinline int cmd_done(struct __sk_buff *skb, int hit_ok)
{
	struct r_conn *c = conn_of(skb);
	__u32 cls, hash = 0, argc;
	__u64 *g, *ep, gen, epoch;
	struct r_entry *e;
	int haskey;

	if (!c)
		return 0;
	argc = c->cmd.argc;
	haskey = argc >= 2 && c->cmd.key.len <= R_MAX_KEY;
	if (haskey)
		hash = key_hash(&c->cmd.key);
	cls = cmd_class(c);
	switch (cls) {
	case R_C_GET:
		if (argc == 2)
			break;
		/* A GET redis-server refuses (inside MULTI too, which goes on). */
		goto read;
	case R_C_CLIENT:
		/* CLIENT REPLY OFF or SKIP leaves commands without replies:
		 * they cannot be counted. Every other CLIENT subcommand has one
		 * reply (and RESP3 tracking's pushes desync at the push). */
		if (!haskey || client_reply(&c->cmd.key))
			goto uncounted;
		goto read;
	case R_C_AUTH:
		c->proven = 0;
		goto read;
	case R_C_MULTI:
	case R_C_DISCARD:
		c->in_multi = cls == R_C_MULTI;
		/* fall through */
	case R_C_READ:
	read:
		ring_push(c, R_S_NONE, 0, 0, 0);
		c->passed++;
		stat(R_ST_PASS);
		return 0;
	case R_C_EXEC:
		c->in_multi = 0;
		pass_write(c, 1, 0, 0);
		return 0;
	case R_C_SELECT:
		/* Only db 0 is cached: another db's GETs neither hit nor
		 * fill (its writes still invalidate the same names). */
		c->nodb0 = !(haskey && c->cmd.key.len == 1 && c->cmd.key.k[0] == '0');
		ring_push(c, R_S_NONE, 0, 0, 0);
		c->passed++;
		stat(R_ST_PASS);
		return 0;
	case R_C_DEL:
		pass_write(c, !haskey || argc != 2, hash, 0);
		return 0;
	case R_C_WRITE1:
		pass_write(c, !haskey, hash, 0);
		return 0;
	case R_C_SET:
		pass_write(c, !haskey, hash, argc > 3);
		return 0;
	case R_C_WRITE1_TTL:
		pass_write(c, !haskey, hash, 1);
		return 0;
	case R_C_GLOBAL:
		pass_write(c, 1, 0, 0);
		return 0;
	case R_C_TAINT:
	uncounted:
		desync(c);
		c->passed++;
		return 0;
	default:
		pass_write(c, 1, 0, 1);
		return 0;
	}

	/* GET key */
	if (!haskey || c->nodb0) {
		stat(R_ST_MISS);
		ring_push(c, R_S_NONE, 0, 0, 0);
		c->passed++;
		return 0;
	}
	g = gen_of(hash);
	ep = meta(0);
	if (!g || !ep) {
		ring_push(c, R_S_NONE, 0, 0, 0);
		c->passed++;
		return 0;
	}
	gen = *g;
	epoch = *ep;
	if (hit_ok && !c->rdesync && !c->in_multi && c->proven) {
		e = bpf_map_lookup_elem(&redis_cache, &c->cmd.key);
		if (e && e->gen == gen && e->epoch == epoch) {
			if (c->passed == c->replied)
				return 1;
			/* A hit must not overtake a reply still to come. */
			stat(R_ST_GET_BUSY);
		}
	}
	stat(R_ST_MISS);
	rtrace("miss: GET %s goes on to redis-server", c->cmd.key.k);
	ring_push(c, R_S_GETMISS, hash, gen, epoch);
	c->passed++;
	return 0;
}

/* capture copies the bytes of an argument of plen bytes (the command's
 * name, or the key) that lie at off of skb, n of them, the first being
 * byte p of the argument, into dst (max bytes). The whole argument in one
 * skb is one load; one split across skbs goes byte by byte. Bounds are
 * kept in forms Linux 6.1's verifier follows: constant destination
 * offsets, or a masked index of a single byte. */
static __always_inline void capture(struct __sk_buff *skb, __u32 off, __u32 n, __u32 p,
				    __u32 plen, __u8 *dst, const __u32 max)
{
	__u32 m, j;

	if (p >= plen || p >= max)
		return;
	m = plen - p;
	if (m > n)
		m = n;
	if (p == 0 && m == plen) {
		/* The size is masked behind a barrier so that clang cannot
		 * fold the mask away, and its range is plain to every
		 * verifier (6.1's loses a compare clang applies to a copy). */
		__u64 sz = m - 1;

		if (m < 1 || m > max)
			return;
		asm volatile("" : "+r"(sz));
		bpf_skb_load_bytes(skb, off, dst, (sz & (max - 1)) + 1);
		return;
	}
	for (j = 0; j < max; j++) {
		__u8 b;

		if (j >= m)
			break;
		if (bpf_skb_load_bytes(skb, off + j, &b, 1))
			break;
		dst[(p + j) & (max - 1)] = b;
	}
}

/* Request states (struct r_conn's rq_st). */
enum {
	R_Q_CMD = 0,       /* at a command: "*<argc>\r\n" comes */
	R_Q_HDR = 1,       /* at an argument: "$<len>\r\n" comes */
	R_Q_PAY = 2,       /* inside an argument's bytes (and its "\r\n") */
};

/* req_step reads the client's stream at off of skb: one header line (or
 * the part of it in this skb) or one argument's bytes (or the part in this
 * skb). It returns the offset after what it read, or -1 when the stream
 * is no RESP it frames (the connection passes through from then on).
 * A command completed by this step is acted on (cmd_done), except the
 * one that starts the skb at its offset 0 and ends it: that one is left
 * to the verdict, which may answer it, and the return value is then
 * skb->len | 1 << 30. */
__noinline int req_step(struct __sk_buff *skb, __u32 off)
{
	struct r_conn *c = conn_of(skb);
	__u32 len = skb->len, n, i, p;
	__u8 buf[16] = {};

	if (!c || off >= len || len > (1 << 29))
		return -1;
	if (c->rq_st == R_Q_PAY) {
		n = len - off;
		if (n > c->rq_skip)
			n = c->rq_skip;
		/* Bytes of the payload already read, before this step. */
		p = c->rq_plen + 2 - c->rq_skip;
		if (c->rq_argi == 0 && c->rq_plen <= R_NAME)
			capture(skb, off, n, p, c->rq_plen, (__u8 *)c->cmd.name.n, R_NAME);
		else if (c->rq_argi == 1 && c->rq_plen <= R_MAX_KEY)
			capture(skb, off, n, p, c->rq_plen, (__u8 *)c->cmd.key.k, R_MAX_KEY);
		c->rq_skip -= n;
		off += n;
		if (c->rq_skip)
			return off;
		c->rq_argi++;
		if (c->rq_argi < c->cmd.argc) {
			c->rq_st = R_Q_HDR;
			return off;
		}
		c->rq_st = R_Q_CMD;
		if (c->rq_start == 0 && off == len && c->rq_first)
			return (int)(len | (1u << 30));
		c->rq_first = 0;
		cmd_done(skb, 0);
		return off;
	}

	/* A header line, perhaps continued from the last skb. */
	n = len - off;
	if (n > 16)
		n = 16;
	if (n < 1)
		return -1;
	{
		__u64 sz = n - 1;	/* masked behind a barrier, as in capture */

		asm volatile("" : "+r"(sz));
		if (bpf_skb_load_bytes(skb, off, buf, (sz & 15) + 1))
			return -1;
	}
	if (c->rq_st == R_Q_CMD && c->rq_hn == 0 && inline_ping(buf, n)) {
		/* The one inline command understood: health checks send
		 * "PING\r\n" (HAProxy's tcp-check, scripts), and giving up on
		 * their connections would stop every fill. It writes nothing
		 * and has one reply. */
		ring_push(c, R_S_NONE, 0, 0, 0);
		c->passed++;
		c->rq_first = 0;
		stat(R_ST_PASS);
		return off + (buf[4] == '\r' ? 6 : 5);
	}
	for (i = 0; i < 16; i++) {
		__u8 b = buf[i];

		if (i >= n)
			return off + n;
		if (c->rq_hn == 0) {
			if (b != (c->rq_st == R_Q_CMD ? '*' : '$'))
				return -1;
			if (c->rq_st == R_Q_CMD) {
				c->rq_start = off + i;
			}
			c->rq_hv = 0;
			c->rq_hn = 1;
			continue;
		}
		if (b == '\r') {
			if (c->rq_hn < 2)
				return -1;
			c->rq_hn = 100;
			continue;
		}
		if (b == '\n') {
			if (c->rq_hn != 100)
				return -1;
			c->rq_hn = 0;
			if (c->rq_st == R_Q_CMD) {
				if (c->rq_hv < 1 || c->rq_hv > (1 << 20))
					return -1;
				__builtin_memset(&c->cmd, 0, sizeof(c->cmd));
				c->cmd.argc = c->rq_hv;
				c->rq_argi = 0;
				c->rq_st = R_Q_HDR;
			} else {
				if (c->rq_hv > (1 << 29))
					return -1;
				c->rq_plen = c->rq_hv;
				c->rq_skip = c->rq_hv + 2;
				c->rq_st = R_Q_PAY;
				if (c->rq_argi == 0)
					c->cmd.namelen = c->rq_hv;
				else if (c->rq_argi == 1)
					c->cmd.key.len = c->rq_hv;
			}
			return off + i + 1;
		}
		if (b < '0' || b > '9' || c->rq_hn >= 11)
			return -1;
		c->rq_hv = c->rq_hv * 10 + (b - '0');
		c->rq_hn++;
	}
	return off + 16;
}

/* answer queues the reply to the GET in skb for redis_replies, which
 * writes it over the request as the socket sends it. */
static __always_inline int answer(struct __sk_buff *skb, struct r_conn *c)
{
	struct r_hitkey hk = {};
	struct r_scratch *sc;
	struct r_entry *e;
	__u64 seq, gen, epoch, *g, *ep;
	__u32 zero = 0, len;

	if (c->hit_tail - c->hit_head >= 8)
		return -1;
	e = bpf_map_lookup_elem(&redis_cache, &c->cmd.key);
	sc = bpf_map_lookup_elem(&redis_scratch, &zero);
	g = gen_of(key_hash(&c->cmd.key));
	ep = meta(0);
	if (!e || !sc || !g || !ep)
		return -1;
	/* seqlock.h: the copy counts only if the entry was published and
	 * stayed so throughout, and is this key's; the element may have been
	 * rewritten, or (were it ever freed) reused for another key. */
	seq = seq_begin(&e->seq);
	if (seq & 1)
		goto race;
	gen = e->gen;
	epoch = e->epoch;
	len = e->len;
	if (bpf_probe_read_kernel(sc->hit.reply, sizeof(sc->hit.reply), e->reply))
		return -1;
	if (!words_eq(&e->key, &c->cmd.key, sizeof(struct r_key) / 4) || seq_retry(&e->seq, seq))
		goto race;
	/* Whole, and this key's: it must also be of the key's generation and
	 * the epoch as they are now (a write since cmd_done looked hides it). */
	if (gen != *(volatile __u64 *)g || epoch != *(volatile __u64 *)ep || len < 5 || len > R_REPLY)
		return -1;
	sc->hit.len = len;
	sc->hit.reqlen = skb->len;
	skb_sockkey(skb, &hk.sk);
	hk.seq = c->hit_tail;
	if (bpf_map_update_elem(&redis_hits, &hk, &sc->hit, BPF_ANY))
		return -1;
	c->hit_tail++;
	return 0;
race:
	stat(R_ST_HIT_RACE);
	rtrace("hit refused: the entry of %s changed while it was read; a miss", c->cmd.key.k);
	return -1;
}

/* How the walk through an skb ended (struct r_conn's rq_res). */
enum {
	R_W_ON = 0,        /* at the skb's end (or still walking) */
	R_W_ALONE = 1,     /* at one whole command alone in the skb: the verdict's */
	R_W_ERR = 2,       /* at bytes that are no RESP it frames */
};

/* req_walk1 takes one step of the walk through skb, whose cursor is in
 * the connection's record: 0 to go on, 1 when the walk is over. */
__noinline int req_walk1(struct __sk_buff *skb)
{
	struct r_conn *c = conn_of(skb);
	__u32 off;
	int r;

	if (!c)
		return 1;
	off = c->rq_off;
	if (off >= skb->len)
		return 1;
	r = req_step(skb, off);
	c = conn_of(skb);
	if (!c)
		return 1;
	if (r < 0 || (__u32)r <= off) {
		c->rq_res = R_W_ERR;
		return 1;
	}
	if (r & (1 << 30)) {
		c->rq_res = R_W_ALONE;
		return 1;
	}
	c->rq_off = r;
	return 0;
}

/* req_walk is bpf_loop's context: a pointer that never changes (as the
 * replies' walk, reply_walk). */
struct req_walk {
	struct __sk_buff *skb;
};

static long req_walk_step(__u64 i, void *ctx)
{
	struct req_walk *w = ctx;

	return req_walk1(w->skb) ? 1 : 0;
}

SEC("sk_skb/stream_verdict")
int redis_verdict(struct __sk_buff *skb)
{
	struct req_walk w = {};
	struct r_sockkey sk = {};
	struct r_conn *c;
	__u32 len = skb->len;

	skb_sockkey(skb, &sk);
	c = bpf_map_lookup_elem(&redis_conns, &sk);
	if (!c)
		return SK_PASS;
	if (c->tainted) {
		/* Unframed bytes may write anything. */
		flush_all();
		no_more_fills();
		return SK_PASS;
	}
	/* rq_first: this skb starts at a command (nothing carried over). */
	c->rq_first = c->rq_st == R_Q_CMD && c->rq_hn == 0;
	c->rq_start = 1;
	c->rq_off = 0;
	c->rq_res = R_W_ON;
	w.skb = skb;
	bpf_loop(len < R_WALK ? len + 1 : R_WALK, req_walk_step, &w, 0);
	c = bpf_map_lookup_elem(&redis_conns, &sk);
	if (!c)
		return SK_PASS;
	if (c->rq_res == R_W_ALONE) {
		/* One whole command, alone in this skb. */
		if (cmd_done(skb, 1) != 1)
			return SK_PASS;
		if (answer(skb, c) == 0) {
			stat(R_ST_HIT);
			rtrace("hit: GET %s answered from the cache; redis-server never sees it", c->cmd.key.k);
			return bpf_sk_redirect_hash(skb, &redis_socks, &sk, 0);
		}
		/* The entry went, or no room: a miss. */
		cmd_done(skb, 0);
		return SK_PASS;
	}
	if (c->rq_res == R_W_ERR || c->rq_off < len)
		taint(c);
	return SK_PASS;
}

/* ---- redis-server's replies ---- */

static __always_inline void msg_sockkey(struct sk_msg_md *msg, struct r_sockkey *sk)
{
	sk->rport = msg->remote_port;
	sk->lport = msg->local_port;
	if (msg->family == AF_INET) {
		sk->ip[0] = msg->remote_ip4;
	} else {
		sk->ip[0] = msg->remote_ip6[0];
		sk->ip[1] = msg->remote_ip6[1];
		sk->ip[2] = msg->remote_ip6[2];
		sk->ip[3] = msg->remote_ip6[3];
	}
}

/* fill copies the bulk reply of tot bytes at off into the cache under the
 * key of slot s, when the key has not moved since it missed. */
static __always_inline void fill(struct sk_msg_md *msg, struct r_slot *s, __u32 off, __u32 tot)
{
	struct r_scratch *sc;
	__u64 *g, *ep, *nf, *ctr, cur;
	struct r_entry *e;
	__u32 zero = 0;
	long err;
	void *d;

	if (tot > R_REPLY || tot < 5)
		return;
	nf = meta(1);
	if (!nf || *nf)
		return;
	sc = bpf_map_lookup_elem(&redis_scratch, &zero);
	g = gen_of(s->hash);
	ep = meta(0);
	ctr = meta(2);
	if (!sc || !g || !ep || !ctr)
		return;
	if (*g != s->gen || *ep != s->epoch || (s->gen & R_TTL_BIT)) {
		stat(R_ST_FILL_STALE);
		rtrace("fill refused: %s was written after its GET missed", s->key.k);
		return;
	}
	if (bpf_msg_pull_data(msg, off, off + tot, 0))
		return;
	d = (void *)(long)msg->data;
	if (d + tot > (void *)(long)msg->data_end)
		return;
	e = bpf_map_lookup_elem(&redis_cache, &s->key);
	if (e) {
		/* Rewritten in place, held odd (seqlock.h): replaced, the old
		 * element would go to the next fill on this CPU under a hit
		 * still copying it. A fill that finds the entry held gives up:
		 * the other one fills it. */
		cur = seq_begin(&e->seq);
		if ((cur & 1) || __sync_val_compare_and_swap(&e->seq, cur, cur | 1) != cur)
			goto race;
		if (!words_eq(&e->key, &s->key, sizeof(struct r_key) / 4)) {
			/* Not this key's (it cannot be while nothing deletes
			 * entries): left as it was. */
			seq_set(&e->seq, cur);
			goto race;
		}
		e->gen = s->gen;
		e->epoch = s->epoch;
		e->len = tot;
		if (bpf_probe_read_kernel(e->reply, tot, d))
			e->len = 0;	/* published, but never a hit (len < 5) */
	} else {
		sc->entry.seq = 1;	/* odd: not published yet */
		sc->entry.gen = s->gen;
		sc->entry.epoch = s->epoch;
		__builtin_memcpy(&sc->entry.key, &s->key, sizeof(s->key));
		sc->entry.len = tot;
		if (bpf_probe_read_kernel(sc->entry.reply, tot, d))
			return;
		err = bpf_map_update_elem(&redis_cache, &s->key, &sc->entry, BPF_NOEXIST);
		if (err == -17)	/* -EEXIST: another fill of the key inserted first */
			goto race;
		if (err)	/* the map is full */
			return;
		/* Nobody takes an odd entry: this is the one just inserted. */
		e = bpf_map_lookup_elem(&redis_cache, &s->key);
		if (!e)
			return;
	}
	seq_set(&e->seq, 2 * __sync_add_and_fetch(ctr, 1));
	stat(R_ST_FILL);
	rtrace("fill: %s cached from redis-server's reply (%u bytes)", s->key.k, tot);
	return;
race:
	stat(R_ST_FILL_RACE);
	rtrace("fill given up: another fill of %s holds its entry", s->key.k);
}

/* reply_done applies what the reply to the oldest outstanding command
 * does, and counts it. */
static __always_inline void reply_done(struct r_conn *c)
{
	__u64 seq = c->replied;
	struct r_slot *s = &c->ring[seq & (R_RING - 1)];

	if (s->seq == seq) {
		if (s->kind == R_S_WRITE)
			bump(s->hash, 0);
		else if (s->kind == R_S_GLOBAL)
			flush_all();
	}
	dirty_bump(c, seq);
	c->replied = seq + 1;
	stat(R_ST_REPLY);
}

/* The reply stream is walked one step at a time: a step skips a blob's
 * bytes (or those of it in this message), or reads up to R_HWIN bytes of
 * a header line ("$5\r\n", "*3\r\n", "+OK\r\n", ...). A header line may be
 * split across messages anywhere, and is carried across them in the
 * connection's record (rh_*), as a blob's rest is (skip). Aggregates nest
 * to any depth with one counter: need is the number of elements still to
 * come in the reply being read, nested ones included (an aggregate's
 * header is one of them and adds its own elements). The walk's cursor
 * lives in the record too, so that bpf_loop's context on the stack is a
 * pointer that never changes (bpf/proxy/pgwalk.h tells why that matters
 * to the verifiers of 6.7 and later). */

/* reply_hdr acts on the header line just read: type t, number v (neg:
 * it was negative), hl bytes long when it began in this message at
 * start (start is R_NOWHERE otherwise). It returns 0, or -1 when the
 * stream cannot be followed. */
static __always_inline int reply_hdr(struct sk_msg_md *msg, struct r_conn *c, __u32 t, __u64 v,
				     __u32 neg, __u32 start, __u32 hl, __u32 size)
{
	__u32 at_reply = c->need == 0;

	if (at_reply)
		c->need = 1;
	switch (t) {
	case '+': case '-': case ':': case '_': case ',': case '#': case '(':
		c->need--;
		break;
	case '$': case '=': case '!':
		c->need--;
		if (at_reply && t == '$') {
			struct r_slot *s = &c->ring[c->replied & (R_RING - 1)];

			if (s->seq == c->replied && s->kind == R_S_GETMISS) {
				/* redis-server answered this connection a GET
				 * (not -NOAUTH, -NOPERM): it may read keys. */
				c->proven = 1;
				if (!neg && v <= R_MAX_VALUE && start != R_NOWHERE &&
				    hl <= 32 && start + hl + v + 2 <= size)
					fill(msg, s, start, hl + (__u32)v + 2);
			}
		}
		if (neg)	/* null */
			break;
		if (v > 0x7fffffff)
			return -1;
		c->need++;	/* the blob is the element's rest */
		c->skip = (__u32)v + 2;
		break;
	case '*': case '~': case '%':
		c->need--;
		if (neg)
			break;
		if (v > 0xffffff || c->need > (1U << 30))
			return -1;
		c->need += t == '%' ? 2 * (__u32)v : (__u32)v;
		break;
	default:
		return -1;
	}
	if (c->need == 0 && c->skip == 0)
		reply_done(c);
	return 0;
}

/* reply_step takes one step of the walk through msg (the cursor is in
 * the connection's record). It returns 0 to go on, 1 when the walk is
 * over: at the message's end, or (rerr) at what it cannot follow. */
__noinline int reply_step(struct sk_msg_md *msg)
{
	struct r_sockkey sk = {};
	struct r_conn *c;
	__u32 off, size, n, j;
	__u8 *d, *de;

	msg_sockkey(msg, &sk);
	c = bpf_map_lookup_elem(&redis_conns, &sk);
	if (!c)
		return 1;
	off = c->roff;
	size = c->rsize;
	if (off >= size)
		return 1;
	if (size > (1U << 30)) {
		c->rerr = 1;
		return 1;
	}
	if (c->skip) {
		n = size - off;
		if (n > c->skip)
			n = c->skip;
		c->skip -= n;
		c->roff = off + n;
		if (c->skip == 0) {
			if (c->need > 0)
				c->need--;
			if (c->need == 0)
				reply_done(c);
		}
		return 0;
	}
	n = size - off;
	if (n > R_HWIN)
		n = R_HWIN;
	if (bpf_msg_pull_data(msg, off, off + n, 0)) {
		c->rerr = 1;
		return 1;
	}
	d = (__u8 *)(long)msg->data;
	de = (__u8 *)(long)msg->data_end;
	for (j = 0; j < R_HWIN; j++) {
		__u8 b;

		if (j >= n || d + j + 1 > de)
			break;
		b = d[j];
		if (c->rh_n == 0) {
			switch (b) {
			case '+': case '-': case ':': case '_': case ',': case '#': case '(':
				c->rh_num = 0;
				break;
			case '$': case '=': case '!': case '*': case '~': case '%':
				c->rh_num = 1;
				break;
			default:	/* '>' pushes, '|' attributes, not RESP */
				c->rerr = 1;
				return 1;
			}
			c->rh_t = b;
			c->rh_n = 1;
			c->rh_v = 0;
			c->rh_neg = 0;
			c->rh_dig = 0;
			c->rh_cr = 0;
			c->rh_start = off + j;
			continue;
		}
		if (c->rh_cr) {
			__u32 start = c->rh_start, hl = 0;

			if (b != '\n') {
				c->rerr = 1;
				return 1;
			}
			c->rh_n = 0;
			c->roff = off + j + 1;
			if (start != R_NOWHERE)
				hl = off + j + 1 - start;
			if (reply_hdr(msg, c, c->rh_t, c->rh_v, c->rh_neg, start, hl, size)) {
				c->rerr = 1;
				return 1;
			}
			return 0;
		}
		if (b == '\r') {
			if (c->rh_num && !c->rh_dig) {
				c->rerr = 1;
				return 1;
			}
			c->rh_cr = 1;
			continue;
		}
		if (b == '\n') {
			c->rerr = 1;
			return 1;
		}
		if (c->rh_n < (1U << 30))
			c->rh_n++;
		if (!c->rh_num)
			continue;	/* a line: only its end matters */
		if (c->rh_n == 2 && b == '-') {
			c->rh_neg = 1;
			continue;
		}
		if (b < '0' || b > '9' || c->rh_v > (1ULL << 40)) {
			c->rerr = 1;
			return 1;
		}
		c->rh_v = c->rh_v * 10 + (b - '0');
		c->rh_dig = 1;
	}
	if (j == 0) {
		c->rerr = 1;
		return 1;
	}
	c->roff = off + j;
	return 0;
}

/* reply_walk is bpf_loop's context: a pointer that never changes. */
struct reply_walk {
	struct sk_msg_md *msg;
};

static long reply_walk_step(__u64 i, void *ctx)
{
	struct reply_walk *w = ctx;

	/* A global function's result is any int to the verifier. */
	return reply_step(w->msg) ? 1 : 0;
}

/* hit_out turns the message the sockhash sends for the oldest answered
 * hit (the request's bytes, as redirected, whole or in pieces) into its
 * reply. */
__noinline int hit_out(struct sk_msg_md *msg)
{
	struct r_hitkey hk = {};
	struct r_hit *h;
	struct r_conn *c;
	__u32 l, r, i, done;
	__u8 *d, *de;

	msg_sockkey(msg, &hk.sk);
	c = bpf_map_lookup_elem(&redis_conns, &hk.sk);
	if (!c)
		return -1;
	hk.seq = c->hit_head;
	h = bpf_map_lookup_elem(&redis_hits, &hk);
	if (!h)
		return -1;
	l = msg->size;
	r = h->len;
	done = c->hit_off;
	if (l < 1 || done + l > h->reqlen || r < 1 || r > R_REPLY)
		return -1;
	if (done > 0) {
		/* The backlog sends the request's bytes in pieces (one per
		 * page fragment): the first became the whole reply, the
		 * others vanish. */
		if (bpf_msg_pop_data(msg, 0, l, 0))
			return -1;
	} else {
		if (r > l) {
			if (bpf_msg_push_data(msg, 0, r - l, 0))
				return -1;
		} else if (r < l) {
			if (bpf_msg_pop_data(msg, 0, l - r, 0))
				return -1;
		}
		if (bpf_msg_pull_data(msg, 0, r, 0))
			return -1;
		d = (__u8 *)(long)msg->data;
		de = (__u8 *)(long)msg->data_end;
		for (i = 0; i < R_REPLY; i++) {
			if (i >= r)
				break;
			if (d + i + 1 > de)
				return -1;
			d[i] = h->reply[i];
		}
	}
	if (done + l < h->reqlen) {
		c->hit_off = done + l;
		return 1;
	}
	c->hit_off = 0;
	bpf_map_delete_elem(&redis_hits, &hk);
	c->hit_head++;
	return 1;
}

SEC("sk_msg")
int redis_replies(struct sk_msg_md *msg)
{
	struct reply_walk w = {};
	struct r_sockkey sk = {};
	struct r_conn *c;
	__u32 size = msg->size;
	int r;

	msg_sockkey(msg, &sk);
	c = bpf_map_lookup_elem(&redis_conns, &sk);
	if (!c)
		return SK_PASS;
	if (c->hit_head != c->hit_tail) {
		/* The sockhash sends an answered hit. It was answered with
		 * nothing outstanding, and what the client sent after it
		 * reaches redis-server only once it is sent: this message
		 * is the hit's. (First: a connection given up on since may
		 * still have hits to send.) */
		r = hit_out(msg);
		if (r < 0) {
			/* Better a broken connection than a wrong answer. */
			c = bpf_map_lookup_elem(&redis_conns, &sk);
			if (c)
				desync(c);
			return SK_DROP;
		}
		return SK_PASS;
	}
	if (c->tainted) {
		/* Unframed requests may have written anything, and any of
		 * these bytes may acknowledge it. */
		flush_all();
		return SK_PASS;
	}
	if (c->rdesync) {
		desync_msg(c);
		return SK_PASS;
	}
	c->roff = 0;
	c->rsize = size;
	c->rerr = 0;
	if (c->rh_n)	/* a header line continues */
		c->rh_start = R_NOWHERE;
	w.msg = msg;
	bpf_loop(size < R_WALK ? size + 1 : R_WALK, reply_walk_step, &w, 0);
	c = bpf_map_lookup_elem(&redis_conns, &sk);
	if (c && (c->rerr || c->roff < size)) {
		desync(c);
		/* The rest of this message may acknowledge a write too. */
		desync_msg(c);
	}
	return SK_PASS;
}
