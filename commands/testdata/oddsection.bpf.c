// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// oddsection is a valid BPF object whose one program sits in a section that
// names no program type, so no loader knows what to load it as. The tests
// of load use it to see the section named in the error.

#define SEC(name) __attribute__((section(name), used))

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("bpfsh_no_such_type")
int odd_prog(void *ctx)
{
	return 0;
}
