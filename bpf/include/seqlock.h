// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* seqlock.h: copying hash map elements that other CPUs rewrite, delete
 * and recycle, and the writers' side of it (kv's store, the cache's
 * entries).
 *
 * A hash map element is not a stable object. When the kernel replaces a
 * key's element or deletes it, the element goes back to a free list, and
 * the next insert or replace takes it at once, without an RCU grace
 * period: a preallocated hash hands the old element to the CPU's spare
 * (extra_elems in alloc_htab_elem) or its per-CPU free list; a
 * BPF_F_NO_PREALLOC hash on Linux 6.1 and later frees into the BPF memory
 * allocator's per-CPU free_llist, which unit_alloc hands out again next.
 * A program that looked the key up just before still holds a pointer into
 * the element and reads whatever the kernel copies in: another key's
 * value, or half of it. The lookup itself can even answer for a key whose
 * element is being rewritten under it. So every element a reader copies
 * without a lock follows these rules:
 *
 *  - its value starts with a sequence word: even, the value is whole and
 *    published; odd, it is being written, not yet published, or dead
 *    (about to be deleted, or on the free list);
 *  - only the program makes the word even, with an atomic exchange once
 *    every byte of the value is in place (on an insert, after the
 *    kernel's copy, which wrote the odd word the program handed it), and
 *    never the same even value twice in an element's life (the values come
 *    from a counter that only grows), so that a recycled element never
 *    shows a reader the word it saw before;
 *  - the kernel never replaces an element readers may copy: an existing
 *    key is rewritten in place between an odd and an even exchange, and
 *    an element is made odd before it is deleted;
 *  - the value holds a copy of its key;
 *  - a reader reads the word (seq_begin), copies what it needs, and uses
 *    the copy only when the word was even and is unchanged (seq_retry)
 *    and the copy's key is the key it looked up; otherwise it looks the
 *    key up again, a bounded number of times.
 *
 * Ordering. The exchanges are full barriers (a locked xchg on x86), so
 * the stores between them are seen after the odd word and before the even
 * one; the kernel's copy into a new element (memcpy, on current x86 a
 * rep movs whose stores are not ordered among themselves) is complete
 * before the program's exchange that follows the insert (Intel SDM vol.
 * 3A, "Fast-String Operation and Out-of-Order Stores": string operations
 * are not reordered with other stores). The reader needs its loads in
 * program order: x86 (TSO) does not reorder loads with other loads, so
 * compiler barriers suffice there, and that is all these helpers emit.
 * BPF has no load-acquire before Linux 6.15; on a weakly ordered CPU
 * (arm64) the two reads of the word would need one.
 */
#ifndef BPFSH_SEQLOCK_H
#define BPFSH_SEQLOCK_H

#include <linux/types.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* The compiler must not move memory accesses across it. */
#define seq_barrier() asm volatile("" ::: "memory")

/* seq_begin reads the sequence word before a copy. */
static __always_inline __u64 seq_begin(const __u64 *seq)
{
	__u64 s = *(volatile const __u64 *)seq;

	seq_barrier();
	return s;
}

/* seq_retry says, after a copy, whether it may be torn or stale: the word
 * seq_begin read (s) was odd, or the element's word has changed since. */
static __always_inline int seq_retry(const __u64 *seq, __u64 s)
{
	seq_barrier();
	return (s & 1) || *(volatile const __u64 *)seq != s;
}

/* seq_set writes the sequence word with a full barrier: odd before the
 * writer touches the value, even once it has. */
static __always_inline void seq_set(__u64 *seq, __u64 v)
{
	__sync_lock_test_and_set(seq, v);
}

/* words_eq compares n 32-bit words (n a constant): keys, zero-padded.
 * The barrier keeps clang from loading every word before comparing any:
 * the cache's 64-word keys do not fit the registers, and the spills ran
 * past the 512-byte stack. */
static __always_inline int words_eq(const void *a, const void *b, const int n)
{
	const __u32 *x = a, *y = b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < n; i++) {
		diff |= x[i] ^ y[i];
		seq_barrier();
	}
	return diff == 0;
}

#endif /* BPFSH_SEQLOCK_H */
