// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func TestHelperRelease(t *testing.T) {
	for fn, want := range map[asm.BuiltinFunc]string{
		asm.FnMapLookupElem:     "3.19",
		asm.FnTailCall:          "4.2",
		asm.FnXdpAdjustMeta:     "4.15",
		asm.FnSkRedirectHash:    "4.18",
		asm.FnSpinLock:          "5.1",
		asm.FnRingbufOutput:     "5.8",
		asm.FnForEachMapElem:    "5.13",
		asm.FnTimerInit:         "5.15",
		asm.FnLoop:              "5.17",
		asm.FnXdpLoadBytes:      "5.18",
		asm.FnCgrpStorageDelete: "6.2",
		asm.BuiltinFunc(212):    "",
		asm.FnUnspec:            "",
	} {
		if got := HelperRelease(fn); got != want {
			t.Errorf("HelperRelease(%v) = %q, want %q", fn, got, want)
		}
	}
}

func TestHelperName(t *testing.T) {
	for fn, want := range map[asm.BuiltinFunc]string{
		asm.FnXdpAdjustMeta:          "bpf_xdp_adjust_meta",
		asm.FnL3CsumReplace:          "bpf_l3_csum_replace",
		asm.FnSkcToTcp6Sock:          "bpf_skc_to_tcp6_sock",
		asm.FnDPath:                  "bpf_d_path",
		asm.FnJiffies64:              "bpf_jiffies64",
		asm.FnTcpRawGenSyncookieIpv4: "bpf_tcp_raw_gen_syncookie_ipv4",
		asm.BuiltinFunc(9999):        "helper #9999",
	} {
		if got := HelperName(fn); got != want {
			t.Errorf("HelperName(%d) = %q, want %q", fn, got, want)
		}
	}
}

func TestExplainHelperRefusal(t *testing.T) {
	for reason, want := range map[string]string{
		"program of this type cannot use helper bpf_xdp_adjust_meta#54": "does not let xdp programs call bpf_xdp_adjust_meta, a helper since Linux 4.15",
		"unknown func bpf_skb_load_bytes#26":                            "does not let xdp programs call bpf_skb_load_bytes, a helper since Linux 4.5",
		"invalid func unknown#189":                                      "does not know bpf_xdp_load_bytes, which came in Linux 5.18: run it on Linux 5.18 or newer",
		"invalid func unknown#4000":                                     "no Linux release has a helper #4000",
		"R0 invalid mem access 'map_value_or_null'":                     "",
	} {
		got := explainHelperRefusal(reason, ebpf.XDP)
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("explain %q = %q, want it to say %q", reason, got, want)
		}
	}
}
