// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

// streamprobe writes one line to its own BPF stream and returns what the
// kfunc returned: bpfsh runs it once to tell whether programs on this
// kernel can write to their streams at all.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

extern int bpf_stream_vprintk_impl(int stream_id, const char *fmt__str, const void *args,
				   __u32 len__sz, void *aux__prog) __ksym;

SEC("syscall")
int stream_probe(void *ctx)
{
	__u64 args[1] = { 1 };

	return bpf_stream_vprintk_impl(1 /* BPF_STDOUT */, "probe %llu\n", args, sizeof(args), 0);
}
