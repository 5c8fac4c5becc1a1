// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// pinbyname has a map marked LIBBPF_PIN_BY_NAME, which load pins in NAME/
// with everything else. Built with -DREJECT its program reads a map value
// without a NULL check, so the verifier refuses it: the map must not stay
// pinned then either.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared SEC(".maps");

SEC("xdp")
int xdp_shared(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&shared, &key);

#ifdef REJECT
	return *v ? XDP_PASS : XDP_DROP;
#else
	return v && *v ? XDP_PASS : XDP_DROP;
#endif
}
