// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* proxy: the in-kernel data path of a PostgreSQL transaction-pooling
 * proxy, after Tigger (VLDB'23). PROTOCOL.md has the maps, the states,
 * the events and the counters.
 *
 * User space (the front) authenticates clients and servers and hands
 * their sockets to two sockhashes keyed by socket cookie. From then on:
 * sk_pg_client (stream verdict of client_socks) walks the client's
 * messages and redirects them out of the linked server socket, taking an
 * idle server from the idle stack when the client has none; sk_pg_server
 * (stream verdict of server_socks) redirects the server's bytes out of
 * the linked client socket and, in transaction mode, unlinks the pair
 * when the server says ReadyForQuery 'I' with nothing of the client's
 * outstanding. Whatever the programs cannot handle is passed (SK_PASS)
 * into the socket's own receive queue, where the front reads it, with an
 * event on the ring buffer saying why.
 *
 * tc_pg_walk runs the same walker over a TCP packet's payload so that
 * it can be test-run (sk_skb programs cannot be).
 */

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "parse.h"
#include "pgwalk.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PROXY_MAX_SOCKS 65536
#define PROXY_MAX_IDLE 4096
#define PROXY_IDLE_TRIES 8     /* stale idle-stack entries skipped per pop */
#define PROXY_STAT_MAX 32
#define PROXY_PG_PORT 5432
#define PROXY_BOUNCER_PORT 6432

/* Pool modes (pool_mode). */
#define MODE_TRANSACTION 1
#define MODE_SESSION 2

/* Roles. */
#define ROLE_CLIENT 1
#define ROLE_SERVER 2

/* pg_conn.flags */
#define CONN_WAITING 1 /* client: no server was idle; its bytes go to user space */
#define CONN_PASSING 2 /* every byte goes to user space (Terminate, malformed, bound) */
#define CONN_IDLE 4    /* server: on the idle stack */
#define CONN_HELD 8    /* server: unlinked with a cancel request in flight; user space releases it */

/* Event kinds (datapath.go's EventKind). */
#define EV_CLIENT_WAITING 1
#define EV_CLIENT_PASSED 2
#define EV_SERVER_IDLE 3
#define EV_SERVER_PASSED 4
#define EV_SERVER_HELD 5

/* Why an event was sent (pg_event.reason). */
#define WHY_NONE 0
#define WHY_TERMINATE 1
#define WHY_MALFORMED 2
#define WHY_BOUND 3
#define WHY_NO_PEER 4
#define WHY_REDIRECT 5
#define WHY_CANCEL 6
#define WHY_BAD_TYPE 7

/* Indices of the per-CPU counters in stats (stats.go names them). */
enum proxy_stat {
	STAT_MSGS_CLIENT = 0,     /* client message headers walked */
	STAT_MSGS_SERVER = 1,     /* server message headers walked */
	STAT_REDIRECT_CLIENT = 2, /* client chunks redirected to the server */
	STAT_REDIRECT_SERVER = 3, /* server chunks redirected to the client */
	STAT_LINK = 4,            /* links made by the kernel (idle server taken) */
	STAT_UNLINK = 5,          /* unlinks at ReadyForQuery 'I' */
	STAT_WAIT = 6,            /* clients marked WAITING (no idle server) */
	STAT_PASS_WAITING = 7,    /* client chunks passed while WAITING */
	STAT_PASS_TERMINATE = 8,  /* client chunks with Terminate 'X' passed */
	STAT_PASS_MALFORMED = 9,  /* chunks passed: malformed length or lost stream */
	STAT_PASS_BOUND = 10,     /* chunks passed: too many messages to walk */
	STAT_PASS_SERVER = 11,    /* server chunks passed: no linked client */
	STAT_PASS_UNKNOWN = 12,   /* chunks of sockets not in conns (passed) */
	STAT_REDIRECT_FAIL = 13,  /* redirects refused (peer gone): passed */
	STAT_IDLE_STALE = 14,     /* idle-stack entries skipped: no longer idle servers */
	STAT_EVENT_LOST = 15,     /* events dropped: ring buffer full */
	STAT_PASS_PASSING = 16,   /* chunks passed on a connection already passing */
	STAT_WALK_CHUNKS = 17,    /* tc_pg_walk: chunks walked */
	STAT_WALK_MALFORMED = 18, /* tc_pg_walk: chunks reported malformed */
	STAT_KEEP_OPEN = 19,      /* 'I' seen but the link kept: client mid-batch or requests outstanding */
	STAT_HELD_CANCEL = 20,    /* unlinks that held the server back: a cancel request in flight */
};

/* The pool mode, set at load time: 1 transaction, 2 session. */
volatile const __u32 pool_mode = MODE_TRANSACTION;

/* struct pg_conn is one socket's state, in conns under its cookie. */
struct pg_conn {
	__u64 peer;        /* linked peer's cookie; 0: none */
	__u32 role;        /* ROLE_CLIENT or ROLE_SERVER */
	__u32 flags;       /* CONN_* */
	__s32 outstanding; /* client: Query/Sync/FunctionCall sent and not yet answered by ReadyForQuery */
	__u32 open;        /* client: mid-message or mid-batch (last message not Q/S/F) */
	__u64 msgs;        /* message headers walked */
	__u64 bytes;       /* bytes walked */
	struct pg_walk walk;
};

/* struct pg_event is one ring-buffer record (datapath.go's Event). */
struct pg_event {
	__u32 kind;   /* EV_* */
	__u32 reason; /* WHY_* */
	__u64 sock;   /* the socket's cookie */
	__u64 peer;   /* its peer's, or 0 */
};

/* struct pg_flow is tc_pg_walk's key: one direction of a TCP flow. */
struct pg_flow {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 pad;
};

/* struct pg_flow_walk is tc_pg_walk's per-flow state and totals. */
struct pg_flow_walk {
	struct pg_walk walk;
	__u64 chunks;
	__u64 msgs;
	__u64 queries;
	__u64 syncs;
	__u64 ready;
	__u32 server; /* 1: server -> client direction */
	__u8 terminate;
	__u8 malformed;
	__u8 bound_hit;
	__u8 pad;
};

/* Keeps struct pg_event in BTF for bpf2go (no map names it). */
const struct pg_event *unused_pg_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, PROXY_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} client_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, PROXY_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} server_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * PROXY_MAX_SOCKS);
	__type(key, __u64);
	__type(value, struct pg_conn);
} conns SEC(".maps");

/* Idle servers, last in first out: the most recently used server is the
 * warmest (its caches, its backend's memory), as in Tigger. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, PROXY_MAX_IDLE);
	__type(value, __u64);
} idle SEC(".maps");

/* Servers a cancel request is on its way to (user space's entries, under
 * the server's cookie). Such a server is not put back on the idle stack at
 * unlink: reused, it would run the next client's query when the cancel
 * lands. User space releases it once the cancel is delivered. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PROXY_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u32);
} cancelling SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PROXY_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pg_flow);
	__type(value, struct pg_flow_walk);
} walks SEC(".maps");

/* The last chunk tc_pg_walk walked. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_walk_result);
} walk_last SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += n;
}

static __always_inline void emit(__u32 kind, __u32 reason, __u64 sock, __u64 peer)
{
	struct pg_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(STAT_EVENT_LOST, 1);
		return;
	}
	e->kind = kind;
	e->reason = reason;
	e->sock = sock;
	e->peer = peer;
	bpf_ringbuf_submit(e, 0);
}

/* pop_idle takes a server from the idle stack, skipping entries that are
 * no longer idle servers (removed, or taken by user space meanwhile).
 * Returns its cookie and state, or 0. */
static __always_inline __u64 pop_idle(struct pg_conn **out)
{
	for (int i = 0; i < PROXY_IDLE_TRIES; i++) {
		__u64 s = 0;
		struct pg_conn *sc;

		if (bpf_map_pop_elem(&idle, &s))
			return 0;
		sc = bpf_map_lookup_elem(&conns, &s);
		if (sc && sc->role == ROLE_SERVER && (sc->flags & CONN_IDLE) &&
		    __sync_fetch_and_and(&sc->flags, ~CONN_IDLE) & CONN_IDLE) {
			*out = sc;
			return s;
		}
		count(STAT_IDLE_STALE, 1);
	}
	return 0;
}

/* client_open: the client is mid-message or has begun a batch that no
 * Query/Sync/FunctionCall has closed yet; its server is not free. */
static __always_inline __u32 client_open(const struct pg_walk *w)
{
	if (!pg_walk_boundary(w))
		return 1;
	return !(w->last == 0 || w->last == 'Q' || w->last == 'S' || w->last == 'F');
}

/* The stream parser: every chunk is a "message" to the verdict, which
 * walks the PostgreSQL messages itself (strparser does not frame them). */
SEC("sk_skb/stream_parser")
int sk_pg_parser(struct __sk_buff *skb)
{
	return skb->len;
}

SEC("sk_skb/stream_verdict")
int sk_pg_client(struct __sk_buff *skb)
{
	struct pg_walk_result res = {};
	struct pg_conn *c, *sc = 0;
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u64 peer;
	long ret;

	c = bpf_map_lookup_elem(&conns, &cookie);
	if (!c || c->role != ROLE_CLIENT) {
		count(STAT_PASS_UNKNOWN, 1);
		return SK_PASS;
	}
	pg_walk_chunk(skb, 0, skb->len, &c->walk, &res);
	count(STAT_MSGS_CLIENT, res.msgs);
	c->msgs += res.msgs;
	c->bytes += res.bytes;
	if (res.queries + res.syncs + res.calls)
		__sync_fetch_and_add(&c->outstanding, res.queries + res.syncs + res.calls);
	c->open = client_open(&c->walk);

	if (c->flags & CONN_PASSING) {
		count(STAT_PASS_PASSING, 1);
		return SK_PASS;
	}
	/* A message type no client may send goes to user space too, which
	 * ends the client as PostgreSQL would: sent on, it would kill the
	 * pooled backend, and its FATAL could race the client's close. */
	if (res.malformed || res.bound_hit || res.terminate || res.bad_type) {
		__u32 why = res.malformed ? WHY_MALFORMED : res.bound_hit ? WHY_BOUND : res.bad_type ? WHY_BAD_TYPE : WHY_TERMINATE;

		__sync_fetch_and_or(&c->flags, CONN_PASSING);
		count(res.malformed || res.bad_type ? STAT_PASS_MALFORMED : res.bound_hit ? STAT_PASS_BOUND : STAT_PASS_TERMINATE, 1);
		emit(EV_CLIENT_PASSED, why, cookie, c->peer);
		return SK_PASS;
	}
	if (c->flags & CONN_WAITING) {
		count(STAT_PASS_WAITING, 1);
		return SK_PASS;
	}
	peer = c->peer;
	if (!peer) {
		peer = pop_idle(&sc);
		if (!peer) {
			__sync_fetch_and_or(&c->flags, CONN_WAITING);
			count(STAT_WAIT, 1);
			emit(EV_CLIENT_WAITING, WHY_NO_PEER, cookie, 0);
			return SK_PASS;
		}
		sc->peer = cookie;
		c->peer = peer;
		count(STAT_LINK, 1);
	}
	ret = bpf_sk_redirect_hash(skb, &server_socks, &peer, 0);
	if (ret != SK_PASS) {
		/* The server is gone from server_socks: user space decides. */
		__sync_fetch_and_or(&c->flags, CONN_PASSING);
		count(STAT_REDIRECT_FAIL, 1);
		emit(EV_CLIENT_PASSED, WHY_REDIRECT, cookie, peer);
		return SK_PASS;
	}
	count(STAT_REDIRECT_CLIENT, 1);
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int sk_pg_server(struct __sk_buff *skb)
{
	struct pg_walk_result res = {};
	struct pg_conn *s, *c;
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u64 peer;
	long ret;
	int unlink = 0;

	s = bpf_map_lookup_elem(&conns, &cookie);
	if (!s || s->role != ROLE_SERVER) {
		count(STAT_PASS_UNKNOWN, 1);
		return SK_PASS;
	}
	pg_walk_chunk(skb, 0, skb->len, &s->walk, &res);
	count(STAT_MSGS_SERVER, res.msgs);
	s->msgs += res.msgs;
	s->bytes += res.bytes;

	if (s->flags & CONN_PASSING) {
		count(STAT_PASS_PASSING, 1);
		return SK_PASS;
	}
	if (res.malformed || res.bound_hit) {
		__sync_fetch_and_or(&s->flags, CONN_PASSING);
		count(res.malformed ? STAT_PASS_MALFORMED : STAT_PASS_BOUND, 1);
		emit(EV_SERVER_PASSED, res.malformed ? WHY_MALFORMED : WHY_BOUND, cookie, s->peer);
		return SK_PASS;
	}
	peer = s->peer;
	if (!peer) {
		count(STAT_PASS_SERVER, 1);
		emit(EV_SERVER_PASSED, WHY_NO_PEER, cookie, 0);
		return SK_PASS;
	}
	c = bpf_map_lookup_elem(&conns, &peer);
	if (c && res.ready) {
		__s32 left = __sync_fetch_and_add(&c->outstanding, -(__s32)res.ready) - (__s32)res.ready;

		if (left < 0) {
			/* More answers than requests seen (a ReadyForQuery user
			 * space asked for itself): never go below zero. */
			__sync_fetch_and_add(&c->outstanding, -left);
			left = 0;
		}
		if (pool_mode == MODE_TRANSACTION && res.rfq == 'I' && pg_walk_boundary(&s->walk)) {
			if (left == 0 && !c->open)
				unlink = 1;
			else
				count(STAT_KEEP_OPEN, 1);
		}
	}
	ret = bpf_sk_redirect_hash(skb, &client_socks, &peer, 0);
	if (ret != SK_PASS) {
		__sync_fetch_and_or(&s->flags, CONN_PASSING);
		count(STAT_REDIRECT_FAIL, 1);
		emit(EV_SERVER_PASSED, WHY_REDIRECT, cookie, peer);
		return SK_PASS;
	}
	count(STAT_REDIRECT_SERVER, 1);
	if (unlink && c) {
		__u64 empty = 0;
		int was_empty = bpf_map_peek_elem(&idle, &empty) != 0;

		/* The compare-and-swap is a full barrier: user space, which
		 * enters cancelling and then reads the client's peer, either
		 * sees the link gone (and drops the cancel) or is seen here. */
		__sync_val_compare_and_swap(&c->peer, cookie, 0);
		s->peer = 0;
		if (bpf_map_lookup_elem(&cancelling, &cookie)) {
			__sync_fetch_and_or(&s->flags, CONN_HELD);
			count(STAT_HELD_CANCEL, 1);
			count(STAT_UNLINK, 1);
			emit(EV_SERVER_HELD, WHY_CANCEL, cookie, peer);
			return SK_PASS;
		}
		__sync_fetch_and_or(&s->flags, CONN_IDLE);
		if (bpf_map_push_elem(&idle, &cookie, 0)) {
			/* The stack is full: should not happen (it holds every
			 * server); user space gets the server back instead. */
			__sync_fetch_and_and(&s->flags, ~CONN_IDLE);
			emit(EV_SERVER_PASSED, WHY_NO_PEER, cookie, 0);
		} else if (was_empty) {
			/* Only a push onto an empty stack can matter to a waiting
			 * client (a client waits only when the stack was empty). */
			emit(EV_SERVER_IDLE, WHY_NONE, cookie, peer);
		}
		count(STAT_UNLINK, 1);
	}
	return SK_PASS;
}

/* tc_pg_walk walks the PostgreSQL messages in a TCP segment to or from
 * port 5432 or 6432, with the walker state kept per flow in walks, and
 * leaves the chunk's result in walk_last. It never changes the packet:
 * TC_ACT_OK, with skb->mark set to the messages completed (for run's
 * ctx_out), or TC_ACT_UNSPEC (-1) for a packet that is not PostgreSQL's. */
SEC("tc")
int tc_pg_walk(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct pg_walk_result res = {};
	struct pg_flow_walk *fw, fresh = {};
	struct pg_flow key = {};
	struct cursor cur;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 zero = 0, off, end;
	int server;

	cursor_init(&cur, data, data_end);
	eth = cur.pos;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP || ip->ihl < 5)
		return TC_ACT_UNSPEC;
	if (ip->frag_off & bpf_htons(0x3fff))
		return TC_ACT_UNSPEC;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > data_end || tcp->doff < 5)
		return TC_ACT_UNSPEC;
	if (tcp->dest == bpf_htons(PROXY_PG_PORT) || tcp->dest == bpf_htons(PROXY_BOUNCER_PORT))
		server = 0;
	else if (tcp->source == bpf_htons(PROXY_PG_PORT) || tcp->source == bpf_htons(PROXY_BOUNCER_PORT))
		server = 1;
	else
		return TC_ACT_UNSPEC;

	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.sport = tcp->source;
	key.dport = tcp->dest;
	fw = bpf_map_lookup_elem(&walks, &key);
	if (!fw) {
		fresh.server = server;
		fresh.walk.server = server;
		bpf_map_update_elem(&walks, &key, &fresh, BPF_NOEXIST);
		fw = bpf_map_lookup_elem(&walks, &key);
		if (!fw)
			return TC_ACT_OK;
	}
	/* The payload ends where IPv4 says, not at skb->len: short frames
	 * carry Ethernet padding. */
	off = sizeof(*eth) + ip->ihl * 4 + tcp->doff * 4;
	end = sizeof(*eth) + bpf_ntohs(ip->tot_len);
	if (end > skb->len)
		end = skb->len;
	if (off > end)
		off = end;
	pg_walk_chunk(skb, off, end, &fw->walk, &res);
	fw->chunks++;
	fw->msgs += res.msgs;
	fw->queries += res.queries;
	fw->syncs += res.syncs;
	fw->ready += res.ready;
	fw->terminate |= res.terminate;
	fw->malformed |= res.malformed;
	fw->bound_hit |= res.bound_hit;
	bpf_map_update_elem(&walk_last, &zero, &res, BPF_ANY);
	count(STAT_WALK_CHUNKS, 1);
	if (res.malformed)
		count(STAT_WALK_MALFORMED, 1);
	skb->mark = res.msgs;
	return TC_ACT_OK;
}
