// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"regexp"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// TestPTYDebugSession drives a debug session by typing, as a user would:
// the prompt becomes (debug REF), step and reverse-step answer at once,
// quit gives the shell's prompt back.
func TestPTYDebugSession(t *testing.T) {
	if !bpfshKnows(t, "debug") {
		t.Skip("this bpfsh has no debug command")
	}
	sc := ptyShell(t, bpftest.PinRoot(t), t.TempDir())
	sc.send("load fixture\r")
	sc.expect(`xdp_count`)
	sc.expect(ptyPrompt)
	sc.send(`debug fixture/xdp_count packet Ether()/IPv4()/UDP(dport=6390)/Raw("ping")` + "\r")
	sc.expect(`the kernel ran the same input on a private copy`)
	sc.expect(`=> 0: `)
	sc.expect(regexp.QuoteMeta("(debug fixture/xdp_count) "))
	sc.send("step\r")
	sc.expect(`xdp_count at fixture\.bpf\.c:\d+ \(step 9\)`)
	sc.expect(regexp.QuoteMeta("(debug fixture/xdp_count) "))
	sc.send("rs\r")
	sc.expect(`at the start of the program`)
	sc.expect(regexp.QuoteMeta("(debug fixture/xdp_count) "))
	sc.send("c\r")
	sc.expect(`the program returned XDP_PASS`)
	sc.expect(`the kernel agrees`)
	sc.send("quit\r")
	sc.expect(`debug session of fixture/xdp_count ended`)
	sc.expect(ptyPrompt)
	sc.send("unload fixture\r")
	sc.expect(`unloaded fixture`)
	sc.expect(ptyPrompt)
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
}
