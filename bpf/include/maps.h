// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* maps.h: map idioms that bpfsh's programs share.
 *
 * The helpers take the map as a pointer and are always inlined, so each
 * call site still names its own map: the verifier sees the same
 * instructions as if the lookup were written out there.
 */
#ifndef BPFSH_MAPS_H
#define BPFSH_MAPS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* map_only is the element of a one-element array (per-CPU scratch, a
 * program's meta record), or NULL. */
static __always_inline void *map_only(void *map)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(map, &zero);
}

/* counter_inc adds one to counter idx of a per-CPU array of __u64
 * counters: per-CPU, so no atomic operation is needed. */
static __always_inline void counter_inc(void *map, __u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(map, &idx);

	if (c)
		*c += 1;
}

#endif /* BPFSH_MAPS_H */
