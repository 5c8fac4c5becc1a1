// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Errors blame the word that is wrong: a word after a map literal, an
// unknown run option after a packet, a layer that lost its '/'; and
// $NAME/LAYER builds on a kept packet (issue item 11).
func TestErrorsBlameTheRightWord(t *testing.T) {
	root := expectRoot(t)
	err := bpfshFails(t, root, "map update fx/flows key {saddr: 1} value {packets: 1} bogus", 2, `unexpected "bogus" after "{packets: 1}"`)
	if strings.Contains(err, `"{packets: 1}" is not a byte`) {
		t.Errorf("the error blames the literal: %s", err)
	}
	err = bpfshFails(t, root, `run fx/xdp_count packet Ether()/IPv4()/UDP(dport=9)/Raw("abcd") frobnicate`, 2, `unknown run option "frobnicate"`)
	if strings.Contains(err, "between layers") {
		t.Errorf("the error blames the packet: %s", err)
	}
	bpfshFails(t, root, `run fx/xdp_count packet Ether()/IPv4() UDP() repeat 2`, 2, `unexpected "UDP()": a layer joins the packet before it with '/'`)
	bpfshFails(t, root, `packet Ether()/IPv4() frob`, 2, `unexpected "frob" after the packet Ether()/IPv4()`)

	out := bpfshOK(t, root, `let x = Ether()/IPv4()/UDP(dport=7); packet $x/Raw("a"); run fx/xdp_count packet $x / Raw("abcd") repeat 2; expect packet Ether()/IPv4()/UDP(dport=7, len=12)/Raw("abcd")`)
	if !strings.Contains(out, "43 bytes: Ether/IPv4/UDP/Raw") || !strings.Contains(out, "46 bytes in (Ether/IPv4/UDP/Raw)") {
		t.Errorf("$x/LAYER:\n%s", out)
	}
	bpfshFails(t, root, `let r = hex 00 11; packet $r/UDP()`, 2, "$r holds bytes (hex or @FILE), not layers")
	bpfshFails(t, root, `let x = Ether(); packet $y/UDP()`, 2, "$y: no such variable", "set: $x")
}

// Typed wrong is exit status 2 (issue item 12).
func TestTypedWrongExitsTwo(t *testing.T) {
	root := expectRoot(t)
	for _, c := range []struct{ line, want string }{
		{"run fx/xdp_count packet", "no packet given"},
		{"run fx/xdp_count packet ctx {ingress_ifindex: 1}", "no packet given"},
		{"run fx/tc_count packet Ether()/IPv4() ctx {bogus: 1}", `struct __sk_buff has no field "bogus"`},
		{"run fx/tc_count packet Ether()/IPv4() ctx {mark: 99999999999}", "does not fit in 32 bits"},
		{"run fx/tc_count packet Ether()/IPv4() ctx {gso_segs: 70000}", "gso_segs"},
		{"unload ../..", "no dots or slashes"},
	} {
		bpfshFails(t, root, c.line, 2, c.want)
	}
	// What the machine lacks is a failure, not a typo.
	bpfshFails(t, root, "run fx/tc_count packet Ether()/IPv4() ctx {ifindex: 99999}", 1, "no such interface")
}

// A huge word is not echoed back whole, wherever it lands (issue item 13).
func TestHugeWordsAreClipped(t *testing.T) {
	root := expectRoot(t)
	huge := strings.Repeat("x", 1<<20)
	dir := t.TempDir()
	for i, line := range []string{
		huge,
		"map " + huge,
		"help " + huge,
		"run fx/xdp_count packet Ether()/" + huge,
		"run fx/xdp_count packet Ether() " + huge,
		"map lookup fx/flows key {" + huge + ": 1}",
		"run fx/tc_count packet Ether()/IPv4() ctx {mark: " + huge + "}",
		"let x = $" + huge,
		"load " + huge,
		"prog show name " + huge,
		"unload " + huge,
	} {
		file := filepath.Join(dir, "huge.bpfsh")
		if err := os.WriteFile(file, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, json := range []bool{false, true} {
			args := []string{"-f", file}
			if json {
				args = append([]string{"-j"}, args...)
			}
			code, out, errb := bpfsh(t, root, args...)
			if code == 0 || len(out)+len(errb) > 2000 {
				t.Errorf("line %d (json %v): exit %d, %d bytes of output: %.300s", i, json, code, len(out)+len(errb), out+errb)
			}
			if !strings.Contains(out+errb, "...") {
				t.Errorf("line %d (json %v) does not say it left bytes out: %.300s", i, json, out+errb)
			}
		}
	}
}

// Numbers: repeat 0 is refused, unsigned fields do not suggest -1, and a
// number written into a char array asks whether it is text or a byte
// (issue item 14).
func TestNumbers(t *testing.T) {
	root := expectRoot(t)
	bpfshFails(t, root, "run fx/xdp_count packet Ether()/IPv4()/UDP() repeat 0", 2, "repeat 0: give 1 or more")
	err := bpfshFails(t, root, "map update fx/flows key {saddr: 1} value {packets: abc}", 2, "__u64 wants a number such as 42 or 0x2a")
	if strings.Contains(err, "-1") {
		t.Errorf("an unsigned field suggests -1: %s", err)
	}
	bpfshFails(t, root, "map update fx/flows key {saddr: 1} value {comment: 5}", 2, `field comment: the field holds text, and 5 is a number: write "5" for the text, or [5] for the byte`)
	out := bpfshOK(t, root, `map update fx/flows key {saddr: 1} value {comment: "5"}; map lookup fx/flows key {saddr: 1}; map update fx/flows key {saddr: 1} value {comment: [5]}; map lookup fx/flows key {saddr: 1}`)
	if !strings.Contains(out, `comment: "5"`) || !strings.Contains(out, `comment: "\x05"`) {
		t.Errorf("quoted text and a list of bytes:\n%s", out)
	}
}
