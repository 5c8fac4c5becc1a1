// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

// walfixture stands in for kv's commit path in the WAL tests until the
// real program is there: the maps are named and laid out as PROTOCOL.md
// says, and one SYSCALL program (test-runnable with a ctx only) commits
// the write set it is handed, the way a COMMIT does.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KV_MAX_KEY 64
#define KV_MAX_VALUE 512
#define KV_MAX_WRITES 16

struct kv_key {
	__u32 len;
	__u8 bytes[KV_MAX_KEY];
};

struct kv_value {
	__u64 version;
	__u32 len;
	__u32 pad;
	__u8 bytes[KV_MAX_VALUE];
};

struct kv_meta {
	__u64 commit_seq;
	__u64 next_txid;
	__u32 commit_lock;
	__u32 pad;
};

struct kv_log_write {
	__u8 op;
	__u8 klen;
	__u16 vlen;
	__u8 key[KV_MAX_KEY];
	__u8 value[KV_MAX_VALUE];
};

struct kv_log_record {
	__u64 seq;
	__u64 txid;
	__u64 ktime_ns;
	__u32 nwrites;
	__u32 pad;
	struct kv_log_write w[KV_MAX_WRITES];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct kv_key);
	__type(value, struct kv_value);
} store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kv_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} log SEC(".maps");

/* kv_value is too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kv_value);
} scratch SEC(".maps");

/* Statuses as in PROTOCOL.md. */
#define ST_OK 0
#define ST_BAD_REQUEST 4
#define ST_LOG_FULL 7
#define ST_STORE_FULL 9

/*
 * commit takes a struct kv_log_record (seq, ktime_ns ignored) as its ctx,
 * reserves its log record first (LOG_FULL when the ring is full), takes
 * the next commit_seq, installs the writes with version = seq, submits the
 * record and writes the seq back into the ctx. One caller at a time: the
 * tests drive it from one goroutine, so there is no commit lock.
 */
SEC("syscall")
int commit(struct kv_log_record *in)
{
	__u32 zero = 0;
	struct kv_meta *m = bpf_map_lookup_elem(&meta, &zero);
	struct kv_value *v = bpf_map_lookup_elem(&scratch, &zero);
	if (!m || !v)
		return ST_BAD_REQUEST;

	struct kv_log_record *rec = bpf_ringbuf_reserve(&log, sizeof(*rec), 0);
	if (!rec)
		return ST_LOG_FULL;
	if (bpf_probe_read_kernel(rec, sizeof(*rec), in)) {
		bpf_ringbuf_discard(rec, 0);
		return ST_BAD_REQUEST;
	}
	__u32 n = rec->nwrites;
	if (n < 1 || n > KV_MAX_WRITES) {
		bpf_ringbuf_discard(rec, 0);
		return ST_BAD_REQUEST;
	}

	__u64 seq = m->commit_seq + 1;
	m->commit_seq = seq;
	rec->seq = seq;
	rec->ktime_ns = bpf_ktime_get_ns();

	for (__u32 i = 0; i < KV_MAX_WRITES; i++) {
		if (i >= n)
			break;
		struct kv_log_write *w = &rec->w[i];
		struct kv_key k = {};
		k.len = w->klen;
		bpf_probe_read_kernel(k.bytes, sizeof(k.bytes), w->key);
		if (w->op == 1) {
			v->version = seq;
			v->len = w->vlen;
			bpf_probe_read_kernel(v->bytes, sizeof(v->bytes), w->value);
			if (bpf_map_update_elem(&store, &k, v, BPF_ANY)) {
				/* The seq stays taken: a gap, as a real
				 * program's failed install may leave. */
				bpf_ringbuf_discard(rec, 0);
				return ST_STORE_FULL;
			}
		} else {
			bpf_map_delete_elem(&store, &k);
		}
	}
	in->seq = seq;
	bpf_ringbuf_submit(rec, 0);
	return ST_OK;
}
