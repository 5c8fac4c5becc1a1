// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

// Return codes by program type, named as the kernel's headers name them.
var (
	xdpActions = []string{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}

	// TC_ACT_* from linux/pkt_cls.h; TC_ACT_UNSPEC is -1.
	tcActions = map[uint32]string{
		0xffffffff: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
		3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
		7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP",
	}

	// enum bpf_ret_code: flow dissector and lightweight tunnel verdicts.
	bpfRetCodes = map[uint32]string{
		0: "BPF_OK", 2: "BPF_DROP", 7: "BPF_REDIRECT", 128: "BPF_LWT_REROUTE", 129: "BPF_FLOW_DISSECTOR_CONTINUE",
	}

	// enum sk_action: socket-level verdicts.
	skActions = []string{"SK_DROP", "SK_PASS"}

	// cgroup skb programs: bit 0 allows the packet; on egress bit 1 asks
	// for congestion notification.
	cgroupSKBVerdicts = []string{"drop", "allow", "drop+cn", "allow+cn"}

	nfVerdicts = []string{"NF_DROP", "NF_ACCEPT"}
)

// RetvalName names a program's return value the way its type's headers do:
// XDP_TX, TC_ACT_SHOT, SK_PASS, BPF_OK. A socket filter's return value is
// the number of bytes it keeps ("keep 20 bytes", "drop"). Values without a
// name, and types whose return value is just a number (raw tracepoints,
// syscall programs), are shown in decimal.
func RetvalName(t ebpf.ProgramType, v uint32) string {
	pick := func(names []string) string {
		if int(v) < len(names) {
			return names[v]
		}
		return strconv.FormatUint(uint64(v), 10)
	}
	switch t {
	case ebpf.XDP:
		return pick(xdpActions)
	case ebpf.SchedCLS, ebpf.SchedACT:
		if n, ok := tcActions[v]; ok {
			return n
		}
	case ebpf.FlowDissector, ebpf.LWTIn, ebpf.LWTOut, ebpf.LWTXmit, ebpf.LWTSeg6Local:
		if n, ok := bpfRetCodes[v]; ok {
			return n
		}
	case ebpf.SkLookup, ebpf.SkSKB, ebpf.SkMsg, ebpf.SkReuseport:
		return pick(skActions)
	case ebpf.CGroupSKB:
		return pick(cgroupSKBVerdicts)
	case ebpf.Netfilter:
		return pick(nfVerdicts)
	case ebpf.SocketFilter:
		switch v {
		case 0:
			return "drop"
		case 1:
			return "keep 1 byte"
		}
		return fmt.Sprintf("keep %d bytes", v)
	}
	return strconv.FormatUint(uint64(v), 10)
}

// ParseRetval is the inverse of RetvalName, for `expect retval NAME`: it
// accepts a name for the type (case-insensitive, with or without its
// prefix: "tx" is XDP_TX) or a number.
func ParseRetval(t ebpf.ProgramType, s string) (uint32, error) {
	if n, err := strconv.ParseInt(s, 0, 64); err == nil && n >= -1 && n <= 0xffffffff {
		return uint32(n), nil
	}
	want := strings.ToUpper(s)
	var known []string
	for v := range uint32(256) {
		name := RetvalName(t, v)
		if _, err := strconv.Atoi(name); err == nil || strings.HasPrefix(name, "keep ") {
			continue
		}
		known = append(known, name)
		short := name[strings.LastIndex(name, "_")+1:]
		if strings.ToUpper(name) == want || strings.ToUpper(short) == want {
			return v, nil
		}
	}
	if t == ebpf.SchedCLS || t == ebpf.SchedACT {
		if want == "TC_ACT_UNSPEC" || want == "UNSPEC" {
			return 0xffffffff, nil
		}
		known = append(known, "TC_ACT_UNSPEC")
	}
	if len(known) == 0 {
		return 0, fmt.Errorf("%s programs return a number, not %q", typeName(t), s)
	}
	return 0, fmt.Errorf("%q is not a return value of %s programs; one of: %s, or a number", s, typeName(t), strings.Join(known, ", "))
}

// typeName is the program type as bpftool spells it ("xdp", "sched_cls",
// "sk_skb").
func typeName(t ebpf.ProgramType) string { return bpf.ProgTypeName(uint32(t)) }
