// SPDX-License-Identifier: Apache-2.0

package bpf

import "fmt"

// The kernel's enums as bpftool (libbpf) spells them, so that "prog show",
// "link show" and "ls" print the words bpftool users know. Each table is
// indexed by the enum's value; a value newer than the table prints as
// "type N" rather than failing.

var progTypeNames = []string{
	"unspec", "socket_filter", "kprobe", "sched_cls", "sched_act",
	"tracepoint", "xdp", "perf_event", "cgroup_skb", "cgroup_sock",
	"lwt_in", "lwt_out", "lwt_xmit", "sock_ops", "sk_skb",
	"cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr", "lwt_seg6local",
	"lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable",
	"cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm",
	"sk_lookup", "syscall", "netfilter",
}

var linkTypeNames = []string{
	"unspec", "raw_tracepoint", "tracing", "cgroup", "iter",
	"netns", "xdp", "perf_event", "kprobe_multi", "struct_ops",
	"netfilter", "tcx", "uprobe_multi", "netkit", "sockmap",
}

var attachTypeNames = []string{
	"cgroup_inet_ingress", "cgroup_inet_egress", "cgroup_inet_sock_create", "cgroup_sock_ops", "sk_skb_stream_parser",
	"sk_skb_stream_verdict", "cgroup_device", "sk_msg_verdict", "cgroup_inet4_bind", "cgroup_inet6_bind",
	"cgroup_inet4_connect", "cgroup_inet6_connect", "cgroup_inet4_post_bind", "cgroup_inet6_post_bind", "cgroup_udp4_sendmsg",
	"cgroup_udp6_sendmsg", "lirc_mode2", "flow_dissector", "cgroup_sysctl", "cgroup_udp4_recvmsg",
	"cgroup_udp6_recvmsg", "cgroup_getsockopt", "cgroup_setsockopt", "trace_raw_tp", "trace_fentry",
	"trace_fexit", "modify_return", "lsm_mac", "trace_iter", "cgroup_inet4_getpeername",
	"cgroup_inet6_getpeername", "cgroup_inet4_getsockname", "cgroup_inet6_getsockname", "xdp_devmap", "cgroup_inet_sock_release",
	"xdp_cpumap", "sk_lookup", "xdp", "sk_skb_verdict", "sk_reuseport_select",
	"sk_reuseport_select_or_migrate", "perf_event", "trace_kprobe_multi", "lsm_cgroup", "struct_ops",
	"netfilter", "tcx_ingress", "tcx_egress", "trace_uprobe_multi", "cgroup_unix_connect",
	"cgroup_unix_sendmsg", "cgroup_unix_recvmsg", "cgroup_unix_getpeername", "cgroup_unix_getsockname", "netkit_primary",
	"netkit_peer", "trace_kprobe_session", "trace_uprobe_session",
}

var mapTypeNames = []string{
	"unspec", "hash", "array", "prog_array", "perf_event_array",
	"percpu_hash", "percpu_array", "stack_trace", "cgroup_array", "lru_hash",
	"lru_percpu_hash", "lpm_trie", "array_of_maps", "hash_of_maps", "devmap",
	"sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
	"reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage",
	"devmap_hash", "struct_ops", "ringbuf", "inode_storage", "task_storage",
	"bloom_filter", "user_ringbuf", "cgrp_storage", "arena",
}

func enumName(table []string, v uint32) string {
	if int(v) < len(table) {
		return table[v]
	}
	return fmt.Sprintf("type %d", v)
}

// MapTypeName is a map type (enum bpf_map_type) as bpftool prints it, e.g.
// "percpu_hash".
func MapTypeName(t uint32) string { return enumName(mapTypeNames, t) }

// ProgTypeName is a program type (enum bpf_prog_type) as bpftool prints it,
// e.g. "xdp", "sched_cls".
func ProgTypeName(t uint32) string { return enumName(progTypeNames, t) }

// LinkTypeName is a link type (enum bpf_link_type) as bpftool prints it,
// e.g. "xdp", "tcx", "cgroup".
func LinkTypeName(t uint32) string { return enumName(linkTypeNames, t) }

// AttachTypeName is an attach type (enum bpf_attach_type) as bpftool prints
// it, e.g. "tcx_ingress", "cgroup_inet_egress".
func AttachTypeName(t uint32) string {
	if int(t) < len(attachTypeNames) {
		return attachTypeNames[t]
	}
	return fmt.Sprintf("attach type %d", t)
}
