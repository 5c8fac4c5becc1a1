// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
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

/* Why the walk's state lives in a per-CPU map and not on the stack.
 *
 * Linux 6.1 verifies a bpf_loop callback once, as if it ran one time.
 * Since 6.7 ("verify callbacks as if they are called unknown number of
 * times") the verifier walks the callback again and again, returning to
 * the bpf_loop call after each pass, until the state it finds there is
 * one it has seen (every scalar within a range seen before). Unlike for
 * open-coded iterators, it does not widen scalars between passes. So
 * every value the callback keeps on the stack (a cursor, a counter, a
 * byte of a header) makes a new state per value it takes, and the states
 * multiply: with the walker's state in a context struct on the stack,
 * 6.12 processed 138k-166k instructions per program and 6.18 gave up at
 * 1M (sk_pg_client, 159k peak states) or hit a verifier bug in precision
 * backtracking through the callback ("callback unexpected regs", EFAULT:
 * tc_pg_walk).
 *
 * A load from a map value is an unknown scalar to the verifier and a
 * store to one is not tracked at all. So the cursor, the carried state and
 * the counts live in a struct pg_walk_slot, a per-CPU array element, and
 * bpf_loop's context on the stack holds only two pointers that never
 * change (the skb and the slot): the state at the bpf_loop call is the
 * same after every pass, and the callback is walked about once on every
 * kernel. */

/* struct pg_walk_slot is one walk under way: the carried state, the
 * chunk's counts and the cursor. */
struct pg_walk_slot {
	struct pg_walk st;
	struct pg_walk_result res;
	__u32 off;  /* next byte of the chunk */
	__u32 end;  /* the chunk's end */
	__u32 done; /* the walk reached end */
	__u32 pad;
};

/* struct pg_walk_loop is bpf_loop's context: two pointers, no values. */
struct pg_walk_loop {
	struct __sk_buff *skb;
	struct pg_walk_slot *w;
};

/* How many walks one CPU can have under way at once (pg_walk_claim). */
#define PG_WALK_SLOTS 8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PG_WALK_SLOTS);
	__type(key, __u32);
	__type(value, struct pg_walk_slot);
} walk_slots SEC(".maps");

/* Bit s set: this CPU's walk_slots[s] is in use. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} walk_busy SEC(".maps");

/* pg_walk_claim takes a free slot of this CPU's walk_slots (its index),
 * or returns -1 when all are in use.
 *
 * A slot cannot be one per program, because one program can be under way
 * twice on one CPU: strparser runs a verdict from its work queue (kstrp,
 * process context, the socket locked, bottom halves enabled, only
 * migration disabled) whenever the socket was owned by user space when
 * its data arrived, and the softirq of another socket's segment can
 * interrupt that run and run the same verdict for that socket. A
 * preemptible kernel can also preempt a test-run of tc_pg_walk (which
 * only disables migration) with another. A nesting depth would not do
 * either: a preempted walk may end after one that started later, so the
 * walks on a CPU are not always last in, first out.
 *
 * So a walk claims a slot with an atomic test-and-set of its bit (the
 * program stays on this CPU; the atomic makes the claim safe against an
 * interruption or preemption between the read and the write) and clears
 * the bit when it has copied its results out: no other walk can take the
 * slot while its bit is set, whatever runs in between. Eight slots are
 * more walks than can be under way on one CPU (one in kstrp, one in a
 * softirq, a test-run or two); if all were taken, the chunk is reported
 * malformed, as for any chunk that cannot be walked. */
static __always_inline int pg_walk_claim(__u32 *busy)
{
	for (int s = 0; s < PG_WALK_SLOTS; s++) {
		if (!(__sync_fetch_and_or(busy, 1U << s) & (1U << s)))
			return s;
	}
	return -1;
}

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

/* pg_walk_broken marks the stream lost: the chunk is malformed and every
 * later one will be too. Returns 1, bpf_loop's "stop". */
static __always_inline long pg_walk_broken(struct pg_walk_slot *w)
{
	w->res.malformed = 1;
	w->st.flags |= PG_WALK_BROKEN;
	return 1;
}

/* pg_walk_header handles a completed header: counts it and checks its
 * length. Returns 1 when the walk must stop (malformed). */
static __always_inline int pg_walk_header(struct pg_walk_slot *w, __u8 type, __u32 len)
{
	if (len < 4 || len > PG_MAX_LEN)
		return pg_walk_broken(w);
	w->res.msgs++;
	w->res.rfq = 0;
	w->st.last = type;
	w->st.remain = len - 4;
	if (w->st.server) {
		if (type == 'Z' && len == 5)
			w->st.flags |= PG_WALK_STATUS;
	} else if (type == 'Q') {
		w->res.queries++;
	} else if (type == 'S') {
		w->res.syncs++;
	} else if (type == 'F') {
		w->res.calls++;
	} else if (type == 'X') {
		w->res.terminate = 1;
	} else if (!pg_frontend_type(type)) {
		w->res.bad_type = 1;
	}
	return 0;
}

/* pg_walk_step is one bpf_loop iteration: finish or read a header, then
 * skip body (reading a ReadyForQuery's status byte on the way). Every
 * value it keeps from one step to the next is in the slot (see above). */
static long pg_walk_step(__u64 i, void *arg)
{
	struct pg_walk_loop *l = arg;
	struct pg_walk_slot *w = l->w;
	struct __sk_buff *skb = l->skb;
	__u32 off = w->off, end = w->end, avail, take, remain, len;
	__u8 tmp[8] = {};

	if (off >= end) {
		w->done = 1;
		return 1;
	}
	if (w->st.remain == 0) {
		__u32 held = w->st.held;
		__u8 type;

		avail = end - off;
		if (held == 0 && avail >= PG_HDR_LEN) {
			/* The common case: a whole header in the chunk. */
			if (bpf_skb_load_bytes(skb, off, tmp, PG_HDR_LEN))
				return pg_walk_broken(w);
			off += PG_HDR_LEN;
			type = tmp[0];
			len = ((__u32)tmp[1] << 24) | ((__u32)tmp[2] << 16) | ((__u32)tmp[3] << 8) | tmp[4];
		} else {
			/* A header cut by a chunk's end: shift its bytes into
			 * acc. At most 4 bytes come here (held 0 leaves fewer
			 * than 5 in the chunk; held 1..4 needs 4..1). */
			__u64 acc = w->st.acc;
			__u32 need;

			if (held >= PG_HDR_LEN)
				/* Cannot happen; a state that says so is lost. */
				return pg_walk_broken(w);
			need = PG_HDR_LEN - held;
			take = need < avail ? need : avail;
			for (int k = 0; k < PG_HDR_LEN - 1; k++) {
				if (k >= take)
					break;
				if (bpf_skb_load_bytes(skb, off + k, tmp, 1))
					return pg_walk_broken(w);
				acc = (acc << 8) | tmp[0];
			}
			off += take;
			if (take < need) {
				w->st.acc = acc;
				w->st.held = held + take;
				w->off = off;
				return 0;
			}
			w->st.acc = 0;
			w->st.held = 0;
			type = (acc >> 32) & 0xff;
			len = (__u32)acc;
		}
		if (pg_walk_header(w, type, len))
			return 1;
	}
	if (w->st.flags & PG_WALK_STATUS) {
		if (off >= end) {
			w->off = off;
			return 0;
		}
		if (bpf_skb_load_bytes(skb, off, tmp, 1))
			return pg_walk_broken(w);
		w->st.flags &= ~PG_WALK_STATUS;
		w->st.status = tmp[0];
		w->res.rfq = tmp[0];
		w->res.ready++;
		w->st.remain--;
		off++;
	}
	avail = end - off;
	remain = w->st.remain;
	take = remain < avail ? remain : avail;
	w->st.remain = remain - take;
	w->off = off + take;
	return 0;
}

/* pg_walk_chunk walks skb's bytes [off, end) with state st (updated in
 * place) and fills res. st->server says which direction: client
 * messages are counted by type, server ReadyForQuery statuses are read.
 * Returns 0, or -1 when the chunk could not be walked (res says
 * malformed and st is marked lost).
 *
 * It is a global function, verified once on its own for all its callers
 * (and with none of their registers: inlined into tc_pg_walk, whose frame
 * holds packet pointers, the callback's states multiplied). */
__noinline int pg_walk_chunk(struct __sk_buff *skb, __u32 off, __u32 end,
			     struct pg_walk *st, struct pg_walk_result *res)
{
	struct pg_walk_loop l = {};
	struct pg_walk_slot *w;
	__u32 zero = 0, key;
	__u32 *busy;
	int slot;

	if (!skb || !st || !res)
		return -1;
	busy = bpf_map_lookup_elem(&walk_busy, &zero);
	if (!busy)
		goto fail;
	slot = pg_walk_claim(busy);
	if (slot < 0)
		goto fail;
	key = slot;
	w = bpf_map_lookup_elem(&walk_slots, &key);
	if (!w) {
		__sync_fetch_and_and(busy, ~(1U << slot));
		goto fail;
	}
	w->st = *st;
	__builtin_memset(&w->res, 0, sizeof(w->res));
	w->off = off;
	w->end = end;
	w->done = 0;
	if (end > off)
		w->res.bytes = end - off;
	if (w->st.flags & PG_WALK_BROKEN) {
		w->res.malformed = 1;
	} else {
		l.skb = skb;
		l.w = w;
		bpf_loop(PG_WALK_STEPS, pg_walk_step, &l, 0);
		if (!w->done && !w->res.malformed && w->off < w->end)
			w->res.bound_hit = 1;
	}
	*st = w->st;
	*res = w->res;
	/* Leave the slot zeroed, as it was before: a test-run (bpfsh's run
	 * shows the maps a run changed) then changes nothing in walk_slots. */
	__builtin_memset(w, 0, sizeof(*w));
	__sync_fetch_and_and(busy, ~(1U << slot));
	return 0;
fail:
	/* No slot: the chunk goes unwalked, so the stream cannot be framed
	 * any more. */
	__builtin_memset(res, 0, sizeof(*res));
	if (end > off)
		res->bytes = end - off;
	res->malformed = 1;
	st->flags |= PG_WALK_BROKEN;
	return -1;
}

/* pg_walk_boundary: the walker stands between two messages. */
static __always_inline int pg_walk_boundary(const struct pg_walk *st)
{
	return st->remain == 0 && st->held == 0 && !(st->flags & (PG_WALK_STATUS | PG_WALK_BROKEN));
}

#endif
