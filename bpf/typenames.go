package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// bpftool spells map and program types as the kernel's enum names without
// their prefix, in lower case (BPF_MAP_TYPE_PERCPU_HASH -> percpu_hash);
// cilium/ebpf's String() uses Go names (PerCPUHash). Users read bpftool's
// spelling everywhere else, so bpfsh shows that one.
var mapTypeNames = map[ebpf.MapType]string{
	ebpf.Hash:                "hash",
	ebpf.Array:               "array",
	ebpf.ProgramArray:        "prog_array",
	ebpf.PerfEventArray:      "perf_event_array",
	ebpf.PerCPUHash:          "percpu_hash",
	ebpf.PerCPUArray:         "percpu_array",
	ebpf.StackTrace:          "stack_trace",
	ebpf.CGroupArray:         "cgroup_array",
	ebpf.LRUHash:             "lru_hash",
	ebpf.LRUCPUHash:          "lru_percpu_hash",
	ebpf.LPMTrie:             "lpm_trie",
	ebpf.ArrayOfMaps:         "array_of_maps",
	ebpf.HashOfMaps:          "hash_of_maps",
	ebpf.DevMap:              "devmap",
	ebpf.SockMap:             "sockmap",
	ebpf.CPUMap:              "cpumap",
	ebpf.XSKMap:              "xskmap",
	ebpf.SockHash:            "sockhash",
	ebpf.CGroupStorage:       "cgroup_storage",
	ebpf.ReusePortSockArray:  "reuseport_sockarray",
	ebpf.PerCPUCGroupStorage: "percpu_cgroup_storage",
	ebpf.Queue:               "queue",
	ebpf.Stack:               "stack",
	ebpf.SkStorage:           "sk_storage",
	ebpf.DevMapHash:          "devmap_hash",
	ebpf.StructOpsMap:        "struct_ops",
	ebpf.RingBuf:             "ringbuf",
	ebpf.InodeStorage:        "inode_storage",
	ebpf.TaskStorage:         "task_storage",
	ebpf.BloomFilter:         "bloom_filter",
	ebpf.UserRingbuf:         "user_ringbuf",
	ebpf.CgroupStorage:       "cgrp_storage",
	ebpf.Arena:               "arena",
}

var progTypeNames = map[ebpf.ProgramType]string{
	ebpf.SocketFilter:          "socket_filter",
	ebpf.Kprobe:                "kprobe",
	ebpf.SchedCLS:              "sched_cls",
	ebpf.SchedACT:              "sched_act",
	ebpf.TracePoint:            "tracepoint",
	ebpf.XDP:                   "xdp",
	ebpf.PerfEvent:             "perf_event",
	ebpf.CGroupSKB:             "cgroup_skb",
	ebpf.CGroupSock:            "cgroup_sock",
	ebpf.LWTIn:                 "lwt_in",
	ebpf.LWTOut:                "lwt_out",
	ebpf.LWTXmit:               "lwt_xmit",
	ebpf.SockOps:               "sock_ops",
	ebpf.SkSKB:                 "sk_skb",
	ebpf.CGroupDevice:          "cgroup_device",
	ebpf.SkMsg:                 "sk_msg",
	ebpf.RawTracepoint:         "raw_tracepoint",
	ebpf.CGroupSockAddr:        "cgroup_sock_addr",
	ebpf.LWTSeg6Local:          "lwt_seg6local",
	ebpf.LircMode2:             "lirc_mode2",
	ebpf.SkReuseport:           "sk_reuseport",
	ebpf.FlowDissector:         "flow_dissector",
	ebpf.CGroupSysctl:          "cgroup_sysctl",
	ebpf.RawTracepointWritable: "raw_tracepoint_writable",
	ebpf.CGroupSockopt:         "cgroup_sockopt",
	ebpf.Tracing:               "tracing",
	ebpf.StructOps:             "struct_ops",
	ebpf.Extension:             "ext",
	ebpf.LSM:                   "lsm",
	ebpf.SkLookup:              "sk_lookup",
	ebpf.Syscall:               "syscall",
	ebpf.Netfilter:             "netfilter",
}

// MapTypeName is t as bpftool spells it ("percpu_hash"); an unknown type
// is shown by number ("type 99").
func MapTypeName(t ebpf.MapType) string {
	if n, ok := mapTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// ProgTypeName is t as bpftool spells it ("sched_cls"); an unknown type is
// shown by number ("type 99").
func ProgTypeName(t ebpf.ProgramType) string {
	if n, ok := progTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", uint32(t))
}
