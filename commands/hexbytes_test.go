// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Every command that takes "hex BYTES" reads them the same way (issue 13
// item 19): one or two digits a byte ("hex 1 0 0 0"), runs of digits
// ("hex 01000000"), 0x and ':' separators ("hex 0x01:00:00:00").
func TestHexBytesReadTheSameEverywhere(t *testing.T) {
	root, _ := pgFixture(t)
	frame := []string{ // Ether()/IPv4()/UDP(), 42 bytes, three spellings
		"hex 2 0 0 0 0 2 2 0 0 0 0 1 8 0 45 0 0 1c 0 1 0 0 40 11 66 ce a 0 0 1 a 0 0 2 9c 40 1e 61 0 8 0 0",
		"hex 020000000002020000000001080045 00001c00010000401166ce0a0000010a000002 9c401e6100080000",
		"hex 0x02:00:00:00:00:02:02:00:00:00:00:01:08:00 0x45:00:00:1c:00:01:00:00:40:11:66:ce:0a:00:00:01:0a:00:00:02 0x9c:40:1e:61:00:08:00:00",
	}
	var first string
	for i, f := range frame {
		out := bpfshOK(t, root, "packet "+f)
		if i == 0 {
			first = out
		} else if out != first {
			t.Errorf("packet %s differs from packet %s:\n%s\n%s", f, frame[0], out, first)
		}
		out = bpfshOK(t, root, "run "+filepath.Join(root, "xdp_count")+" "+f)
		if !strings.Contains(out, "XDP_PASS") {
			t.Errorf("run with %s:\n%s", f, out)
		}
	}

	for i, v := range []string{"hex 7 0 0 0 0 0 0 0", "hex 0700000000000000", "hex 0x07:00:00:00:00:00:00:00"} {
		key := fmt.Sprint(5 + i)
		bpfshOK(t, root, fmt.Sprintf("map update %s key %s value %s", filepath.Join(root, "counters"), key, v))
		if out := bpfshOK(t, root, fmt.Sprintf("map lookup %s key hex %s 0 0 0", filepath.Join(root, "counters"), key)); !strings.Contains(out, "7") {
			t.Errorf("map value %s reads back as:\n%s", v, out)
		}
	}

	// A context: __sk_buff with mark 5 (offset 8), 192 bytes.
	ctx := make([]string, 192)
	for i := range ctx {
		ctx[i] = "0"
	}
	ctx[8] = "5"
	short := strings.Join(ctx, " ")
	colons := "0x" + strings.ReplaceAll(strings.Join(ctx, ":"), ":5:", ":05:")
	for _, c := range []string{short, colons} {
		out := bpfshOK(t, root, "run "+filepath.Join(root, "tc_count")+" packet Ether()/IPv4()/UDP() ctx hex "+c)
		if !strings.Contains(out, "TC_ACT") {
			t.Errorf("run with ctx hex %.40s...:\n%s", c, out)
		}
	}

	// The same mistakes get the same words.
	for _, line := range []string{
		"packet hex 123",
		"run " + filepath.Join(root, "xdp_count") + " hex 123",
		"map update " + filepath.Join(root, "counters") + " key 0 value hex 123",
	} {
		bpfshFails(t, root, line, 2, `"123" has an odd number of hex digits`)
	}
}
