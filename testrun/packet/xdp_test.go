// SPDX-License-Identifier: Apache-2.0

package packet_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// TestKernelSeesTheBytes runs crafted frames through the fixture's
// xdp_count program with BPF_PROG_TEST_RUN: the program adds the length it
// sees (data_end - data) to counters[0], so the counter must grow by
// exactly the frame's length, and XDP_PASS must hand the bytes back as
// they went in.
func TestKernelSeesTheBytes(t *testing.T) {
	objs := bpftest.Fixture(t, bpftest.PinRoot(t))
	frames := []string{
		// A full-MTU frame: 14 + 20 + 8 + 1472 = 1514 bytes.
		`Ether()/IPv4()/UDP(dport=7777)/Raw(hex=` + strings.Repeat("ab", 1472) + `)`,
		// The smallest UDP frame, with no padding: 42 bytes, not 60.
		`Ether()/IPv4()/UDP()`,
		`Ether(pad=true)/IPv4()/UDP()`,
		`Ether()/Dot1Q(vlan=7)/IPv6()/TCP(flags=SA, options=[mss=1460, sack_ok, ts=(1, 2), nop, wscale=7])/Raw("hello")`,
	}
	for _, expr := range frames {
		data, err := packet.Build(expr)
		if err != nil {
			t.Fatalf("%.50s: %v", expr, err)
		}
		var before, after uint64
		if err := objs.Counters.Lookup(uint32(0), &before); err != nil {
			t.Fatal(err)
		}
		out := make([]byte, len(data)+258)
		opts := &ebpf.RunOptions{Data: data, DataOut: out, Repeat: 1}
		ret, err := objs.XdpCount.Run(opts)
		if err != nil {
			t.Fatalf("%.50s: test run: %v", expr, err)
		}
		if err := objs.Counters.Lookup(uint32(0), &after); err != nil {
			t.Fatal(err)
		}
		if ret != 2 { // XDP_PASS
			t.Errorf("%.50s: retval %d, want XDP_PASS (2)", expr, ret)
		}
		if after-before != uint64(len(data)) {
			t.Errorf("%.50s: the program saw %d bytes, the frame has %d", expr, after-before, len(data))
		}
		if !bytes.Equal(opts.DataOut, data) {
			t.Errorf("%.50s: data_out differs from the frame", expr)
		}
	}
}
