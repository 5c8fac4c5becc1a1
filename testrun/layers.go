// SPDX-License-Identifier: Apache-2.0

package testrun

import "github.com/cilium/ebpf"

// FirstLayer is the layer a program of type t sees at the start of its
// packet: an Ethernet frame for XDP, TC, socket filters and the flow
// dissector; the IP header for cgroup_skb and the lwt hooks, which run
// after the link layer is gone (IPv4 or IPv6 by the version nibble).
func FirstLayer(t ebpf.ProgramType, data []byte) string {
	switch t {
	case ebpf.CGroupSKB, ebpf.LWTIn, ebpf.LWTOut, ebpf.LWTXmit, ebpf.LWTSeg6Local:
		if len(data) > 0 && data[0]>>4 == 6 {
			return "IPv6"
		}
		return "IPv4"
	}
	return "Ether"
}
