// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)

//go:build ignore

// mapcopy copies every entry of one hash map into a memory-mappable array,
// inside the kernel: bpf_for_each_map_elem walks the map and each entry
// becomes one record (key, then value, each padded to 8 bytes) at the next
// index. bpfsh runs it (BPF_PROG_TEST_RUN) before and after a run and
// compares the two copies in place through mmap: a million-entry map is
// copied in milliseconds, where reading it out through the bpf(2) batch
// calls takes a third of a second.
//
// bpfsh loads mapcopy for each run, with target replaced by the map and
// the sizes below and copies' max_entries set to the map's.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Set at load: the map's key and value sizes, and where a record's value
// starts (the key size rounded up to 8).
volatile const __u32 key_size = 4;
volatile const __u32 value_size = 4;
volatile const __u32 value_off = 8;

#define MAX_WORDS 64 // keys and values up to 512 bytes

// target is the map to copy: bpfsh replaces it with the map itself when
// it loads the program (bpf_for_each_map_elem needs the map known to the
// verifier), and closes the program after the run, so that the map is
// held only as long as the run.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, 4);
	__uint(value_size, 4);
} target SEC(".maps");

// copies holds two copies of the map, one after the other: the one before
// the run from index 0, the one after from index max_entries/2.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
	__uint(key_size, 4);
	__uint(value_size, 16);
} copies SEC(".maps");

// args is the test run's context: where to write (in), how many entries
// were written (out) and whether they all fitted.
struct args {
	__u32 base;
	__u32 room;
	__u32 n;
	__u32 full;
};

static __always_inline void copy(__u8 *dst, const __u8 *src, __u32 n)
{
	__u32 off = 0;

	for (int i = 0; i < MAX_WORDS; i++) {
		if (off + 8 > n)
			break;
		*(__u64 *)(dst + off) = *(const __u64 *)(src + off);
		off += 8;
	}
	if (off + 4 <= n) {
		*(__u32 *)(dst + off) = *(const __u32 *)(src + off);
		off += 4;
	}
	if (off + 2 <= n) {
		*(__u16 *)(dst + off) = *(const __u16 *)(src + off);
		off += 2;
	}
	if (off + 1 <= n)
		*(dst + off) = *(src + off);
}

static long copy_entry(void *map, void *key, void *value, struct args *a)
{
	__u32 idx = a->base + a->n;
	__u8 *rec;

	if (a->n >= a->room) {
		a->full = 1;
		return 1;
	}
	rec = bpf_map_lookup_elem(&copies, &idx);
	if (!rec)
		return 1;
	copy(rec, key, key_size);
	copy(rec + value_off, value, value_size);
	a->n++;
	return 0;
}

SEC("syscall")
int copy_map(struct args *a)
{
	struct args st = {};

	st.base = a->base;
	st.room = a->room;
	bpf_for_each_map_elem(&target, copy_entry, &st, 0);
	a->n = st.n;
	a->full = st.full;
	return 0;
}
