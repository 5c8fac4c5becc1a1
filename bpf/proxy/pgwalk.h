/* pgwalk.h: the PostgreSQL v3 message walker, shared by the sk_skb data
 * path and the test-runnable tc_pg_walk (PROTOCOL.md "The walker").
 *
 * A PostgreSQL v3 message is a 1-byte type, a 4-byte big-endian length
 * that counts itself but not the type, and length-4 bytes of body. TCP
 * cuts the stream anywhere, so the walker is fed chunks (the payload of
 * one skb, from an offset) and carries what it needs between them in a
 * struct pg_walk kept per socket: the header bytes held so far (0..4),
 * the body bytes of the current message still to come, and whether the
 * next byte is a ReadyForQuery status.
 *
 * Bytes are read with bpf_skb_load_bytes, never through packet pointers,
 * so the same code works on non-linear skbs in sk_skb and in SCHED_CLS.
 * The walk is a bpf_loop over messages (one step reads a header and
 * skips as much body as the chunk holds), so a chunk of thousands of
 * DataRow messages walks in one call; a chunk needing more than
 * PG_WALK_STEPS steps is reported as bound_hit, not guessed at.
 */
#ifndef BPFSH_PGWALK_H
#define BPFSH_PGWALK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The longest message accepted, length field included: PostgreSQL's own
 * limit for a message (MaxAllocSize, 1 GB - 1) rounded up. */
#define PG_MAX_LEN (1U << 30)
/* The most bpf_loop steps (messages begun) per chunk. */
#define PG_WALK_STEPS (1U << 17)
#define PG_HDR_LEN 5

/* pg_walk.flags */
#define PG_WALK_STATUS 1 /* the next byte is a ReadyForQuery's status */
#define PG_WALK_BROKEN 2 /* a malformed header was seen: the stream is lost */

/* struct pg_walk is the walker's state for one direction of one
 * connection, carried across chunks. */
struct pg_walk {
	__u32 remain;  /* body bytes of the current message still to come */
	__u8 held;     /* header bytes held in hdr (0..4) */
	__u8 flags;    /* PG_WALK_* */
	__u8 last;     /* type of the last message whose header completed */
	__u8 status;   /* status byte of the last ReadyForQuery */
	__u32 server;  /* 1: this is the server's side (set when the socket is added) */
	__u64 acc;     /* the header bytes held, shifted in big-endian */
};

/* struct pg_walk_result is what one chunk held. */
struct pg_walk_result {
	__u32 msgs;      /* message headers completed */
	__u32 queries;   /* client: Query 'Q' */
	__u32 syncs;     /* client: Sync 'S' */
	__u32 calls;     /* client: FunctionCall 'F' */
	__u32 ready;     /* server: ReadyForQuery 'Z' completed (status read) */
	__u32 bytes;     /* chunk length walked */
	__u8 terminate;  /* client: Terminate 'X' seen */
	__u8 rfq;        /* server: the chunk ended with a ReadyForQuery: its status */
	__u8 malformed;  /* a length < 4 or > PG_MAX_LEN (or the stream was already lost) */
	__u8 bound_hit;  /* PG_WALK_STEPS steps did not reach the end */
	__u8 bad_type;   /* client: a message type no logged-in client may send */
};

/* pg_walk_ctx is bpf_loop's context: everything lives here, by value, and
 * is copied back by pg_walk_chunk. */
struct pg_walk_ctx {
	struct __sk_buff *skb;
	__u32 off;
	__u32 end;
	__u32 server;
	__u32 done;
	struct pg_walk st;
	struct pg_walk_result res;
};

/* pg_frontend_type says whether a logged-in client may send a message of
 * this type (PostgreSQL ends the connection with FATAL "invalid frontend
 * message type" for any other). Q, S, F and X are counted by the caller. */
static __always_inline int pg_frontend_type(__u8 t)
{
	/* Comparisons, not a switch: clang may turn a switch into a table
	 * lookup, which the verifier refuses here. */
	return t == 'B' || t == 'C' || t == 'D' || t == 'E' || t == 'H' || t == 'P' ||
	       t == 'c' || t == 'd' || t == 'f';
}

/* pg_walk_header handles a completed header: counts it and checks its
 * length. Returns 1 when the walk must stop (malformed). */
static __always_inline int pg_walk_header(struct pg_walk_ctx *c, __u8 type, __u32 len)
{
	if (len < 4 || len > PG_MAX_LEN) {
		c->res.malformed = 1;
		c->st.flags |= PG_WALK_BROKEN;
		return 1;
	}
	c->res.msgs++;
	c->res.rfq = 0;
	c->st.last = type;
	c->st.remain = len - 4;
	if (c->server) {
		if (type == 'Z' && len == 5)
			c->st.flags |= PG_WALK_STATUS;
	} else if (type == 'Q') {
		c->res.queries++;
	} else if (type == 'S') {
		c->res.syncs++;
	} else if (type == 'F') {
		c->res.calls++;
	} else if (type == 'X') {
		c->res.terminate = 1;
	} else if (!pg_frontend_type(type)) {
		c->res.bad_type = 1;
	}
	return 0;
}

/* pg_walk_step is one bpf_loop iteration: finish or read a header, then
 * skip body (reading a ReadyForQuery's status byte on the way). */
static long pg_walk_step(__u64 i, void *arg)
{
	struct pg_walk_ctx *c = arg;
	__u32 avail, need, take, len;
	__u8 tmp[8] = {};
	__u8 held;

	if (c->off >= c->end) {
		c->done = 1;
		return 1;
	}
	if (c->st.remain == 0) {
		__u8 type;

		held = c->st.held;
		if (held >= PG_HDR_LEN) {
			/* Cannot happen; a state from elsewhere that says so is lost. */
			c->res.malformed = 1;
			c->st.flags |= PG_WALK_BROKEN;
			return 1;
		}
		avail = c->end - c->off;
		if (held == 0 && avail >= PG_HDR_LEN) {
			/* The common case: a whole header in the chunk. */
			if (bpf_skb_load_bytes(c->skb, c->off, tmp, PG_HDR_LEN))
				goto fail;
			c->off += PG_HDR_LEN;
			type = tmp[0];
			len = ((__u32)tmp[1] << 24) | ((__u32)tmp[2] << 16) | ((__u32)tmp[3] << 8) | tmp[4];
		} else {
			/* A header split across chunks: shift its bytes into acc. */
			__u64 acc = c->st.acc;

			need = PG_HDR_LEN - held;
			take = need < avail ? need : avail;
			for (int k = 0; k < PG_HDR_LEN; k++) {
				if (k >= take)
					break;
				if (bpf_skb_load_bytes(c->skb, c->off + k, tmp, 1))
					goto fail;
				acc = (acc << 8) | tmp[0];
			}
			c->off += take;
			if (take < need) {
				c->st.acc = acc;
				c->st.held = held + take;
				return 0;
			}
			c->st.acc = 0;
			c->st.held = 0;
			type = (acc >> 32) & 0xff;
			len = (__u32)acc;
		}
		if (pg_walk_header(c, type, len))
			return 1;
	}
	if (c->st.flags & PG_WALK_STATUS) {
		if (c->off >= c->end)
			return 0;
		if (bpf_skb_load_bytes(c->skb, c->off, tmp, 1))
			goto fail;
		c->st.flags &= ~PG_WALK_STATUS;
		c->st.status = tmp[0];
		c->res.rfq = tmp[0];
		c->res.ready++;
		c->st.remain--;
		c->off++;
	}
	avail = c->end - c->off;
	take = c->st.remain < avail ? c->st.remain : avail;
	c->st.remain -= take;
	c->off += take;
	return 0;
fail:
	/* The chunk is shorter than skb->len said: nothing sane to do. */
	c->res.malformed = 1;
	c->st.flags |= PG_WALK_BROKEN;
	return 1;
}

/* pg_walk_chunk walks skb's bytes [off, end) with state st (updated in
 * place) and fills res. st->server says which direction: client
 * messages are counted by type, server ReadyForQuery statuses are read.
 *
 * It is a global function, verified once on its own: inlined into a
 * caller whose frame holds packet pointers (tc_pg_walk), the bpf_loop
 * callback's states multiply past what the verifier will explore. */
__noinline int pg_walk_chunk(struct __sk_buff *skb, __u32 off, __u32 end,
			     struct pg_walk *st, struct pg_walk_result *res)
{
	struct pg_walk_ctx c = {};

	if (!skb || !st || !res)
		return -1;
	c.skb = skb;
	c.off = off;
	c.end = end;
	c.server = st->server;
	c.st = *st;
	if (c.end > off)
		c.res.bytes = c.end - off;
	if (c.st.flags & PG_WALK_BROKEN) {
		c.res.malformed = 1;
	} else {
		bpf_loop(PG_WALK_STEPS, pg_walk_step, &c, 0);
		if (!c.done && !c.res.malformed && c.off < c.end)
			c.res.bound_hit = 1;
	}
	*st = c.st;
	*res = c.res;
	return 0;
}

/* pg_walk_boundary: the walker stands between two messages. */
static __always_inline int pg_walk_boundary(const struct pg_walk *st)
{
	return st->remain == 0 && st->held == 0 && !(st->flags & (PG_WALK_STATUS | PG_WALK_BROKEN));
}

#endif
