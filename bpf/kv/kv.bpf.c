// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* kv: a transactional key-value store executed in the kernel, after CMU's
 * BPF-DB. One XDP program, xdp_kv, answers requests that arrive as UDP
 * datagrams (PROTOCOL.md has the wire format, the maps and the log
 * records) by rewriting them into replies and sending them back out with
 * XDP_TX.
 *
 * Concurrency. Requests run on every CPU at once. Single-key reads take no
 * lock: a hash map lookup sees either the old or the new element. Every
 * change to the store (an auto-committed SET or DEL, or a COMMIT) runs
 * under one commit lock, a word in meta taken by compare-and-swap with a
 * bounded spin. It is not a bpf_spin_lock because a commit calls helpers
 * (map updates, the ring buffer) while holding it, which bpf_spin_lock
 * forbids. Holding one lock for the whole commit makes commits a total
 * order (commit_seq), which is what both validation and the log need.
 *
 * Transactions are optimistic: reads record the version they saw, writes
 * are buffered in the transaction, and COMMIT validates every recorded
 * version against the store under the lock before it installs anything.
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "parse.h"
#include "csum.h"
#include "maps.h"
#include "xdp_reply.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KV_MAGIC 0x4b
#define KV_VERSION 1
#define KV_HDR 20
#define KV_MAX_KEY 64
#define KV_MAX_VALUE 512
#define KV_MAX_WRITES 16
#define KV_MAX_READS 16
#define KV_SCAN_MAX 8
#define KV_SCAN_BYTES 1200
/* How many times a commit tries the commit lock before answering BUSY.
 * Each try is one compare-and-swap; the holder keeps the lock for at most
 * 16 map updates, a few microseconds. */
#define KV_LOCK_SPINS 4096
/* The sweeper runs every half timeout, but not more often than this. */
#define KV_SWEEP_MIN_NS 1000000ULL
#define KV_CLOCK_MONOTONIC 1
#define KV_EBUSY 16

/* Bit in kv_value.flags: inserted by a commit that is still installing;
 * every reader treats the key as absent until the commit publishes it. */
#define KV_VALUE_PENDING 1

enum kv_op {
	KV_OP_GET = 1,
	KV_OP_SET = 2,
	KV_OP_DEL = 3,
	KV_OP_BEGIN = 4,
	KV_OP_COMMIT = 5,
	KV_OP_ABORT = 6,
	KV_OP_SCAN = 7,
};

/* kv_log_write.op, in write sets and log records. */
#define KV_LOG_SET 1
#define KV_LOG_DEL 2

enum kv_status {
	KV_OK = 0,
	KV_NOT_FOUND = 1,
	KV_CONFLICT = 2,
	KV_TOO_BIG = 3,
	KV_BAD_REQUEST = 4,
	KV_NO_TXN = 5,
	KV_TXN_FULL = 6,
	KV_LOG_FULL = 7,
	KV_BUSY = 8,
	KV_STORE_FULL = 9,
	KV_NSTATUS = 10,
};

/* Indices of the per-CPU counters in stats (PROTOCOL.md names them). */
enum kv_stat {
	KV_STAT_OP = 0,             /* 0..6: requests by op (op - 1) */
	KV_STAT_OP_UNKNOWN = 7,     /* requests with an op number kv does not know */
	KV_STAT_STATUS = 8,         /* 8..17: replies by status */
	KV_STAT_COMMIT = 18,        /* COMMITs that succeeded */
	KV_STAT_AUTOCOMMIT = 19,    /* auto-committed SETs and DELs that changed the store */
	KV_STAT_ABORT_CONFLICT = 20,
	KV_STAT_ABORT_TXN_FULL = 21,
	KV_STAT_ABORT_CLIENT = 22,  /* ABORT requests */
	KV_STAT_ABORT_EXPIRED = 23, /* idle transactions removed at use or by the sweeper */
	KV_STAT_PASS = 24,          /* packets that were not kv requests */
	KV_STAT_DROP = 25,          /* requests whose reply did not fit the frame */
	KV_STAT_INSTALL_ERROR = 26, /* map updates that failed after validation */
	KV_STAT_MAX = 32,
};

enum kv_out_kind {
	KV_OUT_NONE = 0,
	KV_OUT_VALUE = 1,
	KV_OUT_SCAN = 2,
};

/* Set at load time (load kv set kv_port=7000). */
volatile const __u16 kv_port = 6390;
volatile const __u64 kv_txn_timeout_ns = 5000000000ULL;

/* Key and value bytes are char, not __u8, so that their BTF says text and
 * "map dump kv/store" shows {len: 1, bytes: "a"} instead of 64 numbers;
 * -funsigned-char (gen.go) keeps them unsigned, as __u8 was, so the code
 * and the Go types ([64]uint8) are the same. */
struct kv_key {
	__u32 len;
	char bytes[KV_MAX_KEY];
};

struct kv_value {
	__u64 version;
	__u32 len;
	__u32 flags;
	char bytes[KV_MAX_VALUE];
};

struct kv_log_write {
	__u8 op;
	__u8 klen;
	__u16 vlen;
	char key[KV_MAX_KEY];
	char value[KV_MAX_VALUE];
} __attribute__((aligned(4)));

struct kv_log_record {
	__u64 seq;
	__u64 txid;
	__u64 ktime_ns;
	__u32 nwrites;
	__u32 pad;
	struct kv_log_write w[KV_MAX_WRITES];
};

struct kv_read {
	struct kv_key key;
	__u32 pad;
	__u64 version;
};

struct kv_txn {
	__u64 id;
	__u64 start_seq;
	__u32 busy;
	__u32 nreads;
	__u32 nwrites;
	__u32 pad;
	struct kv_read r[KV_MAX_READS];
	struct kv_log_write w[KV_MAX_WRITES];
	__u64 last_used_ns; /* bpf_ktime_get_ns() of its last request */
};

/* The one timer that removes idle transactions (see arm_sweeper). */
struct kv_sweeper {
	struct bpf_timer timer;
	__u32 armed; /* 0: not yet; 1: armed, or being armed */
	__u32 pad;
};

/* busy: who may touch a transaction. */
#define KV_TXN_IDLE 0
#define KV_TXN_IN_USE 1
#define KV_TXN_DEAD 2

struct kv_meta {
	__u64 commit_seq;
	__u64 next_txid;
	__u32 commit_lock;
	__u32 pad;
};

/* The 20-byte header as it is on the wire. */
struct kv_hdr {
	__u8 magic;
	__u8 version;
	__u8 op;
	__u8 flags;
	__be32 reqid;
	__be32 txid_hi;
	__be32 txid_lo;
	__be16 klen;
	__be16 vlen;
};

/* Where the request is in the frame and what it asks. */
struct kv_req {
	__u32 l3off;
	__u32 l4off;
	__u32 payoff; /* the kv header */
	__u32 plen;   /* the UDP payload's length */
	__u32 ipv6;
	__u32 op;
	__u32 klen;
	__u32 vlen;
	__u64 txid;
	struct kv_hdr hdr;
};

/* What the reply carries. */
struct kv_out {
	__u32 status;
	__u32 kind;
	__u32 klen; /* bytes of the request's key kept in the reply */
	__u32 vlen; /* bytes of the value part */
	__u64 txid;
	__u32 nscan;
	__u32 more;
	struct kv_hdr hdr;
	__be16 ehdr[2]; /* a SCAN entry's lengths, for the packet */
};

struct kv_scan_hit {
	struct kv_key key;
	__u32 pad;
	struct kv_value val;
};

/* Per-CPU scratch: the 512-byte stack holds none of this. */
struct kv_scratch {
	struct kv_req req;
	struct kv_out out;
	struct kv_key key;    /* the request's key, zero-padded */
	struct kv_key wkey;   /* commit: the key being installed */
	struct kv_value val;  /* SET: the request's value; GET: the reply's */
	struct kv_value wval; /* commit: the value being installed */
	__u8 inserted[KV_MAX_WRITES];
	__u8 iph[60];         /* a copy of the IPv4 header, to sum it */
	struct kv_scan_hit scan[KV_SCAN_MAX];
	union {
		/* An auto-commit's write set, w[0], laid out as its log
		 * record (which also puts the record's type in the BTF). */
		struct kv_log_record auto_rec;
		__u8 txn_init[sizeof(struct kv_txn)];   /* BEGIN's new transaction */
	};
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct kv_key);
	__type(value, struct kv_value);
} store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct kv_txn);
} txns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kv_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kv_sweeper);
} sweeper SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} log SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KV_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kv_scratch);
} scratch SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	counter_inc(&stats, idx);
}

static __always_inline struct kv_meta *meta_get(void)
{
	return map_only(&meta);
}

static __always_inline struct kv_scratch *scratch_get(void)
{
	return map_only(&scratch);
}

/* key_eq compares two zero-padded 64-byte keys word by word. */
static __always_inline int key_eq(const char *a, const char *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < KV_MAX_KEY / 4; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

/* A readable value: present and not being installed. */
static __always_inline int visible(const struct kv_value *v)
{
	return v && !(v->flags & KV_VALUE_PENDING);
}

/* ---- the commit lock ---------------------------------------------------- */

static long lock_try(__u32 i, void *ctx)
{
	struct kv_meta *m = meta_get();
	int *got = ctx;

	if (!m)
		return 1;
	if (__sync_val_compare_and_swap(&m->commit_lock, 0, 1) == 0) {
		*got = 1;
		return 1;
	}
	return 0;
}

static __always_inline int commit_lock(void)
{
	int got = 0;

	bpf_loop(KV_LOCK_SPINS, lock_try, &got, 0);
	return got;
}

static __always_inline void commit_unlock(struct kv_meta *m)
{
	/* An exchange, not a plain store: a full barrier, so that everything
	 * done under the lock is seen before the lock is seen free. */
	__sync_lock_test_and_set(&m->commit_lock, 0);
}

/* ---- transactions ------------------------------------------------------- */

/* Expiry. Per-transaction bpf_timers would be the obvious way, but
 * bpf_timer_init allocates, and from XDP on Linux 6.18 it fails with
 * ENOMEM after a few hundred BEGINs in quick succession (the frees are
 * deferred). So a transaction records when it was last used; a request
 * that finds it idle for longer than kv_txn_timeout_ns removes it and
 * answers NO_TXN, and one timer, armed by the first BEGIN, sweeps away the
 * idle transactions nobody asks for again every half timeout, so that
 * abandoned ones never hold the table. A full table is swept at once
 * before BEGIN gives up. */

static __always_inline int idle(const struct kv_txn *t, __u64 now)
{
	return now - t->last_used_ns > kv_txn_timeout_ns;
}

/* sweep_one removes transaction *key if it is idle and no request is
 * using it. */
static long sweep_one(void *map, __u64 *key, struct kv_txn *t, __u64 *now)
{
	if (!idle(t, *now))
		return 0;
	if (__sync_val_compare_and_swap(&t->busy, KV_TXN_IDLE, KV_TXN_DEAD) != KV_TXN_IDLE)
		return 0;
	bpf_map_delete_elem(map, key);
	stat_inc(KV_STAT_ABORT_EXPIRED);
	return 0;
}

static __always_inline void sweep(void)
{
	__u64 now = bpf_ktime_get_ns();

	bpf_for_each_map_elem(&txns, sweep_one, &now, 0);
}

static __always_inline __u64 sweep_period(void)
{
	__u64 p = kv_txn_timeout_ns / 2;

	return p < KV_SWEEP_MIN_NS ? KV_SWEEP_MIN_NS : p;
}

static int sweep_timer(void *map, __u32 *key, struct kv_sweeper *sw)
{
	sweep();
	bpf_timer_start(&sw->timer, sweep_period(), 0);
	return 0;
}

/* arm_sweeper starts the sweeper if nobody has; if it cannot now, a later
 * BEGIN tries again. */
static __always_inline void arm_sweeper(void)
{
	__u32 zero = 0;
	struct kv_sweeper *sw = bpf_map_lookup_elem(&sweeper, &zero);
	long err;

	if (!sw || sw->armed)
		return;
	if (__sync_val_compare_and_swap(&sw->armed, 0, 1) != 0)
		return;
	err = bpf_timer_init(&sw->timer, &sweeper, KV_CLOCK_MONOTONIC);
	if ((err && err != -KV_EBUSY) ||
	    bpf_timer_set_callback(&sw->timer, sweep_timer) ||
	    bpf_timer_start(&sw->timer, sweep_period(), 0))
		__sync_lock_test_and_set(&sw->armed, 0);
}

/* txn_take finds transaction txid and marks it in use by this request, or
 * says why not in *status. A transaction idle past the timeout is removed
 * here and then; any other lives on from this use. */
static __always_inline struct kv_txn *txn_take(__u64 txid, __u32 *status)
{
	struct kv_txn *t = bpf_map_lookup_elem(&txns, &txid);
	__u64 now;
	__u32 old;

	if (!t) {
		*status = KV_NO_TXN;
		return 0;
	}
	old = __sync_val_compare_and_swap(&t->busy, KV_TXN_IDLE, KV_TXN_IN_USE);
	if (old != KV_TXN_IDLE) {
		*status = old == KV_TXN_DEAD ? KV_NO_TXN : KV_BUSY;
		return 0;
	}
	/* The element was freed and reused for another transaction between
	 * the lookup and the take: hand it back untouched. */
	if (t->id != txid) {
		__sync_val_compare_and_swap(&t->busy, KV_TXN_IN_USE, KV_TXN_IDLE);
		*status = KV_NO_TXN;
		return 0;
	}
	now = bpf_ktime_get_ns();
	if (idle(t, now)) {
		__sync_lock_test_and_set(&t->busy, KV_TXN_DEAD);
		bpf_map_delete_elem(&txns, &txid);
		stat_inc(KV_STAT_ABORT_EXPIRED);
		*status = KV_NO_TXN;
		return 0;
	}
	t->last_used_ns = now;
	return t;
}

static __always_inline void txn_release(struct kv_txn *t)
{
	__sync_lock_test_and_set(&t->busy, KV_TXN_IDLE);
}

static __always_inline void txn_end(__u64 txid)
{
	bpf_map_delete_elem(&txns, &txid);
}

/* The verifier walks a loop once per iteration and follows every way out
 * of it into the code after it; two loops in a row multiply. So each loop
 * over a read or write set sits in a global function of its own, which the
 * verifier checks once, on its own, and whose result is just a number to
 * its callers. A global function gets no pointers from its caller: it
 * finds the transaction and the scratch area again itself. */

/* writes finds the write set of transaction txid (0: the auto-commit's in
 * scratch) and sets *n to how many writes it holds. *n is not clamped:
 * every loop over the set stops at KV_MAX_WRITES itself, and kv_install
 * clamps the count it logs. Clamped here, it reached those loops as two
 * states (16, and 0..16), and the verifier walked each loop for both. */
static __always_inline struct kv_log_write *writes(struct kv_scratch *s, __u64 txid, __u32 *n)
{
	struct kv_txn *t;

	if (!txid) {
		*n = 1;
		return s->auto_rec.w;
	}
	t = bpf_map_lookup_elem(&txns, &txid);
	if (!t)
		return 0;
	*n = t->nwrites;
	return t->w;
}

/* kv_wset_find returns the index of the request's key in the write set of
 * transaction txid, or -1. */
__noinline int kv_wset_find(__u64 txid)
{
	struct kv_scratch *s = scratch_get();
	struct kv_txn *t = bpf_map_lookup_elem(&txns, &txid);
	__u32 n;

	if (!s || !t)
		return -1;
	n = t->nwrites;
	for (__u32 i = 0; i < KV_MAX_WRITES; i++) {
		if (i >= n)
			break;
		if (t->w[i].klen == s->key.len && key_eq(t->w[i].key, s->key.bytes))
			return i;
	}
	return -1;
}

/* kv_rset_has says whether the request's key is in the read set of
 * transaction txid. */
__noinline int kv_rset_has(__u64 txid)
{
	struct kv_scratch *s = scratch_get();
	struct kv_txn *t = bpf_map_lookup_elem(&txns, &txid);
	__u32 n;

	if (!s || !t)
		return 0;
	n = t->nreads;
	for (__u32 i = 0; i < KV_MAX_READS; i++) {
		if (i >= n)
			break;
		if (t->r[i].key.len == s->key.len && key_eq(t->r[i].key.bytes, s->key.bytes))
			return 1;
	}
	return 0;
}

/* kv_validate says whether every version transaction txid read is still
 * the store's (0 for a key that was absent and still is). */
__noinline int kv_validate(__u64 txid)
{
	struct kv_txn *t = bpf_map_lookup_elem(&txns, &txid);
	struct kv_value *v;
	__u32 n;

	if (!t)
		return 0;
	n = t->nreads;
	for (__u32 i = 0; i < KV_MAX_READS; i++) {
		if (i >= n)
			break;
		v = bpf_map_lookup_elem(&store, &t->r[i].key);
		if ((visible(v) ? v->version : 0) != t->r[i].version)
			return 0;
	}
	return 1;
}

/* ---- installing a write set --------------------------------------------- */

static __always_inline void wkey_from(struct kv_scratch *s, const struct kv_log_write *w)
{
	s->wkey.len = w->klen;
	__builtin_memcpy(s->wkey.bytes, w->key, KV_MAX_KEY);
}

static __always_inline void wval_from(struct kv_scratch *s, const struct kv_log_write *w, __u64 seq, __u32 flags)
{
	s->wval.version = seq;
	s->wval.len = w->vlen;
	s->wval.flags = flags;
	__builtin_memcpy(s->wval.bytes, w->value, KV_MAX_VALUE);
}

/* kv_insert_new inserts the keys the write set SETs that are not in the
 * store yet, marked pending, and notes which in scratch.inserted. It
 * returns -1 when the store is full; kv_unpublish then removes them. */
__noinline int kv_insert_new(__u64 txid, __u64 seq)
{
	struct kv_scratch *s = scratch_get();
	struct kv_log_write *w;
	__u32 n = 0;

	if (!s)
		return -1;
	/* All of them first: the loop may stop early, and kv_unpublish
	 * reads every flag. */
	__builtin_memset(s->inserted, 0, sizeof(s->inserted));
	w = writes(s, txid, &n);
	if (!w)
		return -1;
	for (__u32 i = 0; i < KV_MAX_WRITES; i++) {
		if (i >= n)
			break;
		if (w[i].op != KV_LOG_SET)
			continue;
		wkey_from(s, &w[i]);
		if (bpf_map_lookup_elem(&store, &s->wkey))
			continue;
		wval_from(s, &w[i], seq, KV_VALUE_PENDING);
		if (bpf_map_update_elem(&store, &s->wkey, &s->wval, BPF_NOEXIST))
			return -1;
		s->inserted[i] = 1;
	}
	return 0;
}

/* kv_unpublish deletes the keys kv_insert_new inserted: the commit did not
 * happen, and as they were pending nobody saw them. */
__noinline int kv_unpublish(__u64 txid)
{
	struct kv_scratch *s = scratch_get();
	struct kv_log_write *w;
	__u32 n = 0;

	if (!s)
		return 0;
	w = writes(s, txid, &n);
	if (!w)
		return 0;
	for (__u32 i = 0; i < KV_MAX_WRITES; i++) {
		if (i >= n)
			break;
		if (!s->inserted[i])
			continue;
		wkey_from(s, &w[i]);
		bpf_map_delete_elem(&store, &s->wkey);
	}
	return 0;
}

/* kv_replace replaces the keys that were in the store and deletes the
 * deleted ones; neither can run out of room. */
__noinline int kv_replace(__u64 txid, __u64 seq)
{
	struct kv_scratch *s = scratch_get();
	struct kv_log_write *w;
	__u32 n = 0;

	if (!s)
		return 0;
	w = writes(s, txid, &n);
	if (!w)
		return 0;
	for (__u32 i = 0; i < KV_MAX_WRITES; i++) {
		if (i >= n)
			break;
		if (s->inserted[i])
			continue;
		wkey_from(s, &w[i]);
		if (w[i].op == KV_LOG_SET) {
			wval_from(s, &w[i], seq, 0);
			if (bpf_map_update_elem(&store, &s->wkey, &s->wval, BPF_ANY))
				stat_inc(KV_STAT_INSTALL_ERROR);
		} else {
			bpf_map_delete_elem(&store, &s->wkey);
		}
	}
	return 0;
}

/* kv_publish clears the pending mark of the keys kv_insert_new inserted:
 * from here on readers see them. */
__noinline int kv_publish(__u64 txid)
{
	struct kv_scratch *s = scratch_get();
	struct kv_log_write *w;
	struct kv_value *v;
	__u32 n = 0;

	if (!s)
		return 0;
	w = writes(s, txid, &n);
	if (!w)
		return 0;
	for (__u32 i = 0; i < KV_MAX_WRITES; i++) {
		if (i >= n)
			break;
		if (!s->inserted[i])
			continue;
		wkey_from(s, &w[i]);
		v = bpf_map_lookup_elem(&store, &s->wkey);
		if (v)
			__sync_fetch_and_and(&v->flags, ~KV_VALUE_PENDING);
	}
	return 0;
}

/* kv_install runs under the commit lock, after validation. It installs the
 * write set of transaction txid (0: the auto-commit's one write in
 * scratch) with version commit_seq + 1 and logs it.
 *
 * The log record is reserved first: no room, LOG_FULL, nothing done. Only
 * inserting a key that is not in the store can fail (the map is full: a
 * preallocated hash replaces an existing key's element with a per-CPU spare
 * and never runs out doing so, and a delete frees). So new keys go in
 * first, marked pending, which every reader treats as absent; if one does
 * not fit, those inserted are deleted again and the commit answers
 * STORE_FULL without anyone having seen them. Then existing keys are
 * replaced, deleted keys removed, the new keys published, and the record
 * submitted. */
__noinline int kv_install(__u64 txid)
{
	struct kv_scratch *s = scratch_get();
	struct kv_meta *m = meta_get();
	struct kv_log_record *rec;
	struct kv_log_write *w;
	__u32 n = 0;
	__u64 seq;

	if (!s || !m)
		return KV_BUSY;
	w = writes(s, txid, &n);
	if (!w)
		return KV_NO_TXN;
	if (n == 0)
		return KV_OK;
	rec = bpf_ringbuf_reserve(&log, sizeof(*rec), 0);
	if (!rec)
		return KV_LOG_FULL;
	seq = m->commit_seq + 1;
	if (kv_insert_new(txid, seq)) {
		kv_unpublish(txid);
		bpf_ringbuf_discard(rec, 0);
		return KV_STORE_FULL;
	}
	kv_replace(txid, seq);
	kv_publish(txid);

	rec->seq = seq;
	rec->txid = txid;
	rec->ktime_ns = bpf_ktime_get_ns();
	rec->nwrites = n > KV_MAX_WRITES ? KV_MAX_WRITES : n;
	rec->pad = 0;
	for (__u32 i = 0; i < KV_MAX_WRITES; i++) {
		if (i >= n)
			break;
		rec->w[i] = w[i];
	}
	m->commit_seq = seq;
	bpf_ringbuf_submit(rec, 0);
	return KV_OK;
}

/* ---- the operations ----------------------------------------------------- */

/* reply_value puts the stored value v in the reply. */
static __always_inline void reply_value(struct kv_scratch *s, const struct kv_value *v)
{
	__builtin_memcpy(&s->val, v, sizeof(s->val));
	s->out.kind = KV_OUT_VALUE;
	s->out.vlen = s->val.len > KV_MAX_VALUE ? KV_MAX_VALUE : s->val.len;
}

__noinline int kv_get(void)
{
	struct kv_scratch *s = scratch_get();
	struct kv_value *v;

	if (!s)
		return 0;
	v = bpf_map_lookup_elem(&store, &s->key);
	if (!visible(v)) {
		s->out.status = KV_NOT_FOUND;
		return 0;
	}
	reply_value(s, v);
	return 0;
}

__noinline int kv_get_txn(void)
{
	struct kv_scratch *s = scratch_get();
	struct kv_txn *t;
	struct kv_value *v;
	__u32 status = KV_OK, n;
	int i;

	if (!s)
		return 0;
	t = txn_take(s->req.txid, &status);
	if (!t) {
		s->out.status = status;
		return 0;
	}
	i = kv_wset_find(s->req.txid);
	if (i >= 0 && i < KV_MAX_WRITES) {
		/* The transaction's own write. */
		if (t->w[i].op == KV_LOG_SET) {
			s->val.len = t->w[i].vlen;
			__builtin_memcpy(s->val.bytes, t->w[i].value, KV_MAX_VALUE);
			s->out.kind = KV_OUT_VALUE;
			s->out.vlen = s->val.len > KV_MAX_VALUE ? KV_MAX_VALUE : s->val.len;
		} else {
			s->out.status = KV_NOT_FOUND;
		}
		txn_release(t);
		return 0;
	}
	v = bpf_map_lookup_elem(&store, &s->key);
	if (!kv_rset_has(s->req.txid)) {
		n = t->nreads;
		if (n >= KV_MAX_READS) {
			txn_end(s->req.txid);
			stat_inc(KV_STAT_ABORT_TXN_FULL);
			s->out.status = KV_TXN_FULL;
			return 0;
		}
		t->r[n].key = s->key;
		t->r[n].version = visible(v) ? v->version : 0;
		t->nreads = n + 1;
	}
	if (visible(v))
		reply_value(s, v);
	else
		s->out.status = KV_NOT_FOUND;
	txn_release(t);
	return 0;
}

/* write_txn buffers a SET (the request's value) or a DEL in the write set. */
__noinline int kv_write_txn(__u32 op)
{
	struct kv_scratch *s = scratch_get();
	struct kv_txn *t;
	__u32 status = KV_OK, n;
	int i;

	if (!s)
		return 0;
	t = txn_take(s->req.txid, &status);
	if (!t) {
		s->out.status = status;
		return 0;
	}
	i = kv_wset_find(s->req.txid);
	if (i < 0) {
		n = t->nwrites;
		if (n >= KV_MAX_WRITES) {
			txn_end(s->req.txid);
			stat_inc(KV_STAT_ABORT_TXN_FULL);
			s->out.status = KV_TXN_FULL;
			return 0;
		}
		i = n;
		t->w[i].klen = s->key.len;
		__builtin_memcpy(t->w[i].key, s->key.bytes, KV_MAX_KEY);
		t->nwrites = n + 1;
	}
	if (i >= KV_MAX_WRITES) {
		txn_release(t);
		return 0;
	}
	t->w[i].op = op == KV_OP_SET ? KV_LOG_SET : KV_LOG_DEL;
	t->w[i].vlen = op == KV_OP_SET ? s->val.len : 0;
	__builtin_memcpy(t->w[i].value, s->val.bytes, KV_MAX_VALUE);
	txn_release(t);
	return 0;
}

/* op_write_auto commits one SET or DEL on its own. */
__noinline int kv_write_auto(__u32 op)
{
	struct kv_scratch *s = scratch_get();
	struct kv_meta *m = meta_get();
	struct kv_log_write *w;
	__u32 st;

	if (!s)
		return 0;
	w = &s->auto_rec.w[0];
	if (!m) {
		s->out.status = KV_BUSY;
		return 0;
	}
	w->op = op == KV_OP_SET ? KV_LOG_SET : KV_LOG_DEL;
	w->klen = s->key.len;
	w->vlen = op == KV_OP_SET ? s->val.len : 0;
	__builtin_memcpy(w->key, s->key.bytes, KV_MAX_KEY);
	__builtin_memcpy(w->value, s->val.bytes, KV_MAX_VALUE);
	if (!commit_lock()) {
		s->out.status = KV_BUSY;
		return 0;
	}
	/* DEL of a missing key changes nothing: no commit, no log record. */
	if (op == KV_OP_DEL && !visible(bpf_map_lookup_elem(&store, &s->key))) {
		commit_unlock(m);
		s->out.status = KV_NOT_FOUND;
		return 0;
	}
	st = kv_install(0);
	commit_unlock(m);
	if (st == KV_OK)
		stat_inc(KV_STAT_AUTOCOMMIT);
	s->out.status = st;
	return 0;
}

__noinline int kv_begin(void)
{
	struct kv_scratch *s = scratch_get();
	struct kv_meta *m = meta_get();
	struct kv_txn *init;
	__u64 txid;

	if (!s)
		return 0;
	init = (struct kv_txn *)s->txn_init;
	if (!m) {
		s->out.status = KV_BUSY;
		return 0;
	}
	arm_sweeper();
	txid = __sync_add_and_fetch(&m->next_txid, 1);
	init->id = txid;
	init->start_seq = m->commit_seq;
	init->busy = KV_TXN_IDLE;
	init->nreads = 0;
	init->nwrites = 0;
	init->pad = 0;
	init->last_used_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&txns, &txid, init, BPF_NOEXIST)) {
		/* The table is full: of idle transactions, perhaps. */
		sweep();
		if (bpf_map_update_elem(&txns, &txid, init, BPF_NOEXIST)) {
			s->out.status = KV_BUSY;
			return 0;
		}
	}
	s->out.txid = txid;
	return 0;
}

__noinline int kv_commit(void)
{
	struct kv_scratch *s = scratch_get();
	struct kv_meta *m = meta_get();
	struct kv_txn *t;
	__u32 status = KV_OK;
	int conflict;

	if (!s)
		return 0;
	if (!m) {
		s->out.status = KV_BUSY;
		return 0;
	}
	t = txn_take(s->req.txid, &status);
	if (!t) {
		s->out.status = status;
		return 0;
	}
	if (!commit_lock()) {
		txn_release(t);
		s->out.status = KV_BUSY;
		return 0;
	}
	conflict = !kv_validate(s->req.txid);
	if (conflict) {
		commit_unlock(m);
		txn_end(s->req.txid);
		stat_inc(KV_STAT_ABORT_CONFLICT);
		s->out.status = KV_CONFLICT;
		return 0;
	}
	status = kv_install(s->req.txid);
	commit_unlock(m);
	if (status != KV_OK) {
		/* LOG_FULL or STORE_FULL: nothing happened; the transaction
		 * stays open for a retry or an ABORT. */
		txn_release(t);
		s->out.status = status;
		return 0;
	}
	txn_end(s->req.txid);
	stat_inc(KV_STAT_COMMIT);
	return 0;
}

__noinline int kv_abort(void)
{
	struct kv_scratch *s = scratch_get();
	__u32 status = KV_OK;
	struct kv_txn *t;

	if (!s)
		return 0;
	t = txn_take(s->req.txid, &status);
	if (!t) {
		s->out.status = status;
		return 0;
	}
	txn_end(s->req.txid);
	stat_inc(KV_STAT_ABORT_CLIENT);
	return 0;
}

/* scan_hit collects one store entry whose key starts with the request's
 * key; it stops the walk when the reply is full. */
static long scan_hit(void *map, struct kv_key *k, struct kv_value *v, void *ctx)
{
	struct kv_scratch *s = scratch_get();
	const __u32 *kw, *pw;
	__u32 plen, klen, vlen, need, n;

	if (!s || !visible(v))
		return 0;
	plen = s->key.len;
	klen = k->len;
	if (klen > KV_MAX_KEY || plen > KV_MAX_KEY || klen < plen)
		return 0;
	kw = (const __u32 *)k->bytes;
	pw = (const __u32 *)s->key.bytes;
#pragma unroll
	for (int i = 0; i < KV_MAX_KEY / 4; i++) {
		__u32 diff, left;

		if (i * 4 >= plen)
			break;
		diff = kw[i] ^ pw[i];
		left = plen - i * 4;
		if (left < 4)
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			diff &= (1u << (left * 8)) - 1;
#else
			diff &= ~((1u << ((4 - left) * 8)) - 1);
#endif
		if (diff)
			return 0;
	}
	vlen = v->len > KV_MAX_VALUE ? KV_MAX_VALUE : v->len;
	need = 4 + klen + vlen;
	n = s->out.nscan;
	if (n >= KV_SCAN_MAX || s->out.vlen + need > KV_SCAN_BYTES) {
		s->out.more = 1;
		return 1;
	}
	s->scan[n].key = *k;
	s->scan[n].val = *v;
	s->out.nscan = n + 1;
	s->out.vlen += need;
	return 0;
}

__noinline int kv_scan(void)
{
	struct kv_scratch *s = scratch_get();

	if (!s)
		return 0;
	s->out.kind = KV_OUT_SCAN;
	bpf_for_each_map_elem(&store, scan_hit, 0, 0);
	/* SCAN carries no transaction: its reply's txid says whether more
	 * keys matched than the reply holds. */
	s->out.txid = s->out.more;
	return 0;
}

/* ---- requests and replies ----------------------------------------------- */

/* check validates the request's header against its op and the limits, and
 * reads the key and value into scratch. It returns the status to answer
 * with (KV_OK: carry on). */
__noinline int kv_check(struct xdp_md *ctx)
{
	struct kv_scratch *s = scratch_get();
	struct kv_req *r;
	__u32 op, klen, vlen;

	if (!s)
		return KV_BUSY;
	r = &s->req;
	op = r->hdr.op;

	if (op >= KV_OP_GET && op <= KV_OP_SCAN)
		stat_inc(KV_STAT_OP + op - 1);
	else
		stat_inc(KV_STAT_OP_UNKNOWN);
	if (r->plen < KV_HDR)
		return KV_BAD_REQUEST;
	klen = bpf_ntohs(r->hdr.klen);
	vlen = bpf_ntohs(r->hdr.vlen);
	if (r->hdr.flags != 0 || KV_HDR + klen + vlen != r->plen)
		return KV_BAD_REQUEST;
	switch (op) {
	case KV_OP_GET:
	case KV_OP_SET:
	case KV_OP_DEL:
		if (klen == 0 || (op != KV_OP_SET && vlen != 0))
			return KV_BAD_REQUEST;
		if (klen > KV_MAX_KEY || vlen > KV_MAX_VALUE)
			return KV_TOO_BIG;
		break;
	case KV_OP_BEGIN:
		if (r->txid != 0 || klen != 0 || vlen != 0)
			return KV_BAD_REQUEST;
		break;
	case KV_OP_COMMIT:
	case KV_OP_ABORT:
		if (r->txid == 0 || klen != 0 || vlen != 0)
			return KV_BAD_REQUEST;
		break;
	case KV_OP_SCAN:
		if (r->txid != 0 || vlen != 0)
			return KV_BAD_REQUEST;
		if (klen > KV_MAX_KEY)
			return KV_TOO_BIG;
		break;
	default:
		return KV_BAD_REQUEST;
	}
	r->op = op;
	r->klen = klen;
	r->vlen = vlen;

	__builtin_memset(&s->key, 0, sizeof(s->key));
	s->key.len = klen;
	__builtin_memset(s->val.bytes, 0, KV_MAX_VALUE);
	s->val.len = vlen;
	if (klen && (!in_range(&klen, 1, KV_MAX_KEY) ||
		     bpf_xdp_load_bytes(ctx, r->payoff + KV_HDR, s->key.bytes, klen)))
		return KV_BAD_REQUEST;
	if (vlen && (!in_range(&vlen, 1, KV_MAX_VALUE) ||
		     bpf_xdp_load_bytes(ctx, r->payoff + KV_HDR + klen, s->val.bytes, vlen)))
		return KV_BAD_REQUEST;
	return KV_OK;
}

static __always_inline void dispatch(struct kv_scratch *s)
{
	__u64 txid = s->req.txid;

	switch (s->req.op) {
	case KV_OP_GET:
		if (txid)
			kv_get_txn();
		else
			kv_get();
		break;
	case KV_OP_SET:
	case KV_OP_DEL:
		if (txid)
			kv_write_txn(s->req.op);
		else
			kv_write_auto(s->req.op);
		break;
	case KV_OP_BEGIN:
		kv_begin();
		break;
	case KV_OP_COMMIT:
		kv_commit();
		break;
	case KV_OP_ABORT:
		kv_abort();
		break;
	case KV_OP_SCAN:
		kv_scan();
		break;
	}
}

/* kv_emit writes one piece of the reply's payload into the packet and
 * returns its checksum (folded, in the byte lane of its offset off), or
 * -1 when the packet cannot take it. what: 0 the header, 1 the key (already
 * in place: only summed), 2 the value, 3 SCAN entry idx. */
__noinline int kv_emit(struct xdp_md *ctx, __u32 what, __u32 idx, __u32 off)
{
	struct kv_scratch *s = scratch_get();
	__u32 payoff, len, kl, vl;
	__u64 sum = 0;

	if (!s || idx >= KV_SCAN_MAX || off > KV_HDR + KV_MAX_KEY + KV_SCAN_BYTES)
		return -1;
	payoff = s->req.payoff;
	switch (what) {
	case 0:
		if (bpf_xdp_store_bytes(ctx, payoff, &s->out.hdr, KV_HDR))
			return -1;
		return csum_buf((const __u8 *)&s->out.hdr, KV_HDR, KV_HDR);
	case 1:
		len = s->key.len;
		if (len > KV_MAX_KEY)
			return -1;
		return csum_add_at(0, csum_buf((const __u8 *)s->key.bytes, len, KV_MAX_KEY), off);
	case 2:
		len = s->out.vlen;
		if (len == 0)
			return 0;
		if (!in_range(&len, 1, KV_MAX_VALUE) || bpf_xdp_store_bytes(ctx, payoff + off, s->val.bytes, len))
			return -1;
		return csum_add_at(0, csum_buf((const __u8 *)s->val.bytes, len, KV_MAX_VALUE), off);
	case 3:
		kl = s->scan[idx].key.len;
		vl = s->scan[idx].val.len;
		if (kl > KV_MAX_KEY || vl > KV_MAX_VALUE)
			return -1;
		s->out.ehdr[0] = bpf_htons(kl);
		s->out.ehdr[1] = bpf_htons(vl);
		if (bpf_xdp_store_bytes(ctx, payoff + off, s->out.ehdr, 4))
			return -1;
		sum = csum_add_at(sum, csum_buf((const __u8 *)s->out.ehdr, 4, 4), off);
		if (kl) {
			if (!in_range(&kl, 1, KV_MAX_KEY) ||
			    bpf_xdp_store_bytes(ctx, payoff + off + 4, s->scan[idx].key.bytes, kl))
				return -1;
			sum = csum_add_at(sum, csum_buf((const __u8 *)s->scan[idx].key.bytes, kl, KV_MAX_KEY), off + 4);
		}
		if (vl) {
			if (!in_range(&vl, 1, KV_MAX_VALUE) ||
			    bpf_xdp_store_bytes(ctx, payoff + off + 4 + kl, s->scan[idx].val.bytes, vl))
				return -1;
			sum = csum_add_at(sum, csum_buf((const __u8 *)s->scan[idx].val.bytes, vl, KV_MAX_VALUE), off + 4 + kl);
		}
		return csum_fold16(sum);
	}
	return -1;
}

/* kv_finish swaps the frame's addresses and ports, sets the IP and UDP
 * lengths for a payload of plen bytes, and computes the IPv4 header
 * checksum and the UDP checksum, paysum being the payload's sum. */
__noinline int kv_finish(struct xdp_md *ctx, __u32 plen, __u32 paysum)
{
	struct kv_scratch *s = scratch_get();
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l3off, l4off, hlen;
	__u64 psum = 0;

	if (!s || plen > KV_HDR + KV_MAX_KEY + KV_SCAN_BYTES)
		return XDP_DROP;
	l3off = s->req.l3off;
	hlen = s->req.l4off - l3off;
	if (l3off > ETH_HLEN + sizeof(struct vlan_hdr) * PARSE_MAX_VLANS ||
	    !in_range(&hlen, sizeof(struct iphdr), IPV4_HDR_MAX))
		return XDP_DROP;
	/* hlen is 20 to 60 for IPv4 (parse checked the IHL), 40 for IPv6.
	 * l4off is rebuilt from the two bounded values because the 6.1
	 * verifier does not carry a bound on l4off - l3off over to l4off
	 * ("invalid access to packet" in reply_udp); past in_range, clang no
	 * longer sees that the sum is s->req.l4off again. */
	l4off = l3off + hlen;

	if (reply_eth(ctx))
		return XDP_DROP;
	if (!s->req.ipv6) {
		/* The TTL is left as it came. */
		if (reply_ipv4(ctx, l3off, hlen, sizeof(struct udphdr) + plen, -1, s->iph, &psum))
			return XDP_DROP;
	} else {
		struct ipv6hdr *ip6 = data + l3off;
		struct in6_addr a;
		__u32 *aw;

		if ((void *)(ip6 + 1) > end)
			return XDP_DROP;
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		ip6->payload_len = bpf_htons(sizeof(struct udphdr) + plen);
		aw = (__u32 *)&ip6->saddr;
#pragma unroll
		for (int i = 0; i < 8; i++)
			psum += aw[i];
	}

	/* The pseudo-header (addresses, protocol, UDP length), the UDP
	 * header with checksum 0, and the payload. */
	if (reply_udp(ctx, l4off, plen, psum + paysum))
		return XDP_DROP;
	return XDP_TX;
}

/* kv_reply turns the request into the reply in place: the payload
 * rewritten and resized, then kv_finish for the headers. */
__noinline int kv_reply(struct xdp_md *ctx)
{
	struct kv_scratch *s = scratch_get();
	struct kv_out *o;
	__u32 klen, vlen, plen, off, n, kl, vl;
	__u64 sum = 0;
	long delta;
	int r;

	if (!s)
		return XDP_DROP;
	o = &s->out;
	/* Only a GET or SCAN that succeeded carries a value part; the key
	 * (o->klen) is kept in every reply to a request that passed check. */
	if (o->status != KV_OK)
		o->kind = KV_OUT_NONE;
	if (o->kind == KV_OUT_NONE)
		o->vlen = 0;
	klen = o->klen;
	vlen = o->vlen;
	if (klen > KV_MAX_KEY || vlen > KV_SCAN_BYTES || s->req.payoff > 128)
		return XDP_DROP;
	plen = KV_HDR + klen + vlen;
	delta = (long)(s->req.payoff + plen) - (long)(ctx->data_end - ctx->data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta)) {
		stat_inc(KV_STAT_DROP);
		return XDP_DROP;
	}

	o->hdr.magic = KV_MAGIC;
	o->hdr.version = KV_VERSION;
	o->hdr.op = s->req.hdr.op;
	o->hdr.flags = o->status;
	o->hdr.reqid = s->req.hdr.reqid;
	o->hdr.txid_hi = bpf_htonl(o->txid >> 32);
	o->hdr.txid_lo = bpf_htonl(o->txid & 0xffffffff);
	o->hdr.klen = bpf_htons(klen);
	o->hdr.vlen = bpf_htons(vlen);
	r = kv_emit(ctx, 0, 0, 0);
	if (r < 0)
		return XDP_DROP;
	sum += r;
	if (klen) {
		/* The request's key is already where the reply's goes. */
		r = kv_emit(ctx, 1, 0, KV_HDR);
		if (r < 0)
			return XDP_DROP;
		sum += r;
	}
	off = KV_HDR + klen;
	if (o->kind == KV_OUT_VALUE) {
		r = kv_emit(ctx, 2, 0, off);
		if (r < 0)
			return XDP_DROP;
		sum += r;
	} else if (o->kind == KV_OUT_SCAN) {
		n = o->nscan;
		for (__u32 i = 0; i < KV_SCAN_MAX; i++) {
			if (i >= n)
				break;
			r = kv_emit(ctx, 3, i, off);
			if (r < 0)
				return XDP_DROP;
			sum += r;
			kl = s->scan[i].key.len;
			vl = s->scan[i].val.len;
			off += 4 + (kl & 0x7f) + (vl & 0x3ff);
		}
	}
	return kv_finish(ctx, plen, csum_fold16(sum));
}

/* parse finds the request: a UDP datagram to kv_port over IPv4 (not a
 * fragment) or IPv6, with VLAN tags or not. It fills s->req and returns 0,
 * or -1 for a packet that is not for kv. */
static __always_inline int parse(struct xdp_md *ctx, struct kv_scratch *s)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct kv_req *r = &s->req;
	struct cursor c;
	struct ethhdr *eth;
	struct udphdr *udp;
	__u32 room, n;
	int proto, ulen;

	cursor_init(&c, data, end);
	proto = parse_eth(&c, &eth);
	r->l3off = cursor_off(&c);
	if (proto == ETH_P_IP) {
		struct iphdr *iph;

		if (parse_ipv4(&c, &iph) != IPPROTO_UDP || ipv4_is_fragment(iph))
			return -1;
		room = bpf_ntohs(iph->tot_len) - iph->ihl * 4;
		r->ipv6 = 0;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6;

		if (parse_ipv6(&c, &ip6) != IPPROTO_UDP)
			return -1;
		room = bpf_ntohs(ip6->payload_len);
		r->ipv6 = 1;
	} else {
		return -1;
	}
	r->l4off = cursor_off(&c);
	ulen = parse_udp(&c, &udp);
	if (ulen < 0 || udp->dest != bpf_htons(kv_port) || (__u32)ulen > room)
		return -1;
	r->payoff = cursor_off(&c);
	r->plen = ulen - sizeof(*udp);
	if (r->plen < 2)
		return -1;

	/* A header shorter than 20 bytes reads as zeros past its end. */
	__builtin_memset(&r->hdr, 0, sizeof(r->hdr));
	n = r->plen < KV_HDR ? r->plen : KV_HDR;
	if (!in_range(&n, 2, KV_HDR) || bpf_xdp_load_bytes(ctx, r->payoff, &r->hdr, n))
		return -1;
	if (r->hdr.magic != KV_MAGIC || r->hdr.version != KV_VERSION)
		return -1;
	r->txid = ((__u64)bpf_ntohl(r->hdr.txid_hi) << 32) | bpf_ntohl(r->hdr.txid_lo);
	return 0;
}

SEC("xdp")
int xdp_kv(struct xdp_md *ctx)
{
	struct kv_scratch *s = scratch_get();
	__u32 status;
	int act;

	if (!s)
		return XDP_PASS;
	if (parse(ctx, s)) {
		stat_inc(KV_STAT_PASS);
		return XDP_PASS;
	}
	__builtin_memset(&s->out, 0, sizeof(s->out));
	s->out.txid = s->req.txid;
	status = kv_check(ctx);
	if (status == KV_OK) {
		s->out.klen = s->req.klen;
		dispatch(s);
	} else {
		s->out.status = status;
	}
	if (s->out.status < KV_NSTATUS)
		stat_inc(KV_STAT_STATUS + s->out.status);
	act = kv_reply(ctx);
	return act;
}
