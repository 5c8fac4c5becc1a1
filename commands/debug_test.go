// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// debugScript runs a script in one shell (load, debug, its commands) and
// returns what it printed; it fails the test unless the script succeeds.
func debugScript(t *testing.T, lines ...string) string {
	t.Helper()
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	return bpfshOK(t, root, strings.Join(lines, "\n"))
}

func wantInOrder(t *testing.T, out string, wants ...string) {
	t.Helper()
	rest := out
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("output lacks %q (in order) in:\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}

// TestDebugSteppingAndCheck steps the built-in fixture's xdp_count
// forwards and back to the start, forwards again to the same state, and
// to its end, where the kernel agrees.
func TestDebugSteppingAndCheck(t *testing.T) {
	out := debugScript(t,
		"load fixture",
		`debug fixture/xdp_count packet Ether()/IPv4()/UDP(dport=6390)/Raw("ping")`,
		"regs",
		"step",
		"print r0",
		"print ctx->data_end",
		"print *ctx",
		"stepi 2",
		"reverse-step",
		"rc",
		"s",
		"print r0",
		"next",
		"bt",
		"c",
		"quit",
	)
	wantInOrder(t, out,
		"debugging fixture/xdp_count (xdp, ", "on a 46-byte packet",
		"the kernel ran the same input on a private copy", "XDP_PASS",
		"xdp_count at fixture.bpf.c:76 (step 0)", "ctx->data_end - ctx->data", "=> 0: ",
		"r1 ", "ctx (struct xdp_md)", "r10", "stack frame 0",
		// step: into the inlined count(), before the lookup.
		"xdp_count at fixture.bpf.c:67 (step 9)", "bpf_map_lookup_elem(&counters, &slot)", "=> 9: (18) r1 = map[counters]",
		"r0 = 0",
		"ctx->data_end = pkt+46 (data_end)",
		"*ctx = {data: ",
		// stepi 2: through the call, whose arguments and result show.
		"bpf_map_lookup_elem(map counters, stack frame 0 -4) = &counters[0]", "fixture.bpf.c:69 (step 11)",
		// reverse-step, then reverse-continue to the start.
		"fixture.bpf.c:67 (step 9)",
		"at the start of the program", "(step 0)",
		// forwards again to the same state.
		"fixture.bpf.c:67 (step 9)", "r0 = 0",
		"fixture.bpf.c:69 (step 11)",
		"#0  xdp_count at fixture.bpf.c:69",
		"printk: xdp_count len=46",
		"the program returned XDP_PASS after ", "the kernel agrees (compared: retval, data out 46 bytes",
		"debug session of fixture/xdp_count ended: the kernel agrees",
	)
	// The session wrote nothing to the real maps: counters stay zero.
	if strings.Contains(out, "error") {
		t.Errorf("unexpected error in:\n%s", out)
	}
}

// TestDebugLocalsCallbacksWatch debugs an object built with clang -g
// (loaded from its file): a conditional breakpoint in a bpf_loop
// callback, C variables by name, a watchpoint on a map value's field, and
// reverse-continue back to a breakpoint.
func TestDebugLocalsCallbacksWatch(t *testing.T) {
	out := debugScript(t,
		"load ../testrun/emu/testdata/engine.bpf.o name eng",
		`debug eng/hx_count packet Ether()/IPv4(src="10.0.0.1")/UDP(dport=6390)/Raw("ping")`,
		"break add_step if st->sum > 50",
		"continue",
		"backtrace",
		"print *st",
		"info locals",
		"delete",
		"break 71",
		"c",
		"print st",
		"watch st->packets",
		"c",
		"print st->packets",
		"reverse-continue",
		"print st->packets",
		"info breakpoints",
		"c",
		"c",
		"quit",
	)
	wantInOrder(t, out,
		"breakpoint 1 at add_step", "if st->sum > 50",
		"breakpoint 1", "add_step at engine.bpf.c:",
		"#0  add_step", "called back by bpf_loop iteration 7 of 20", "#1  hx_count",
		"*st = {sum: 63, calls: 7}",
		"i ", "__u32", "st ", "struct loop_state *", "stack frame 0 -8",
		"breakpoint 2 at 71",
		"hx_count at engine.bpf.c:71",
		"st = &hx_flows[", "(struct flow_stats)",
		"watchpoint 3: st->packets",
		"watchpoint 3: hx_flows[", "old: 00 00 00 00 00 00 00 00", "new: 01 00 00 00 00 00 00 00",
		"st->packets = 1",
		// Going back, the watchpoint stops where the value changed.
		"watchpoint 3", "hx_count at engine.bpf.c:74", "st->packets++",
		"st->packets = 0",
		"breakpoint", "71", "watchpoint",
		"the program returned XDP_TX", "the kernel agrees",
	)
}

// TestDebugUnknownHelper stops at a helper the debugger cannot emulate;
// the user gives its result and goes on.
func TestDebugUnknownHelper(t *testing.T) {
	out := debugScript(t,
		"load ../testrun/emu/testdata/engine.bpf.o name eng",
		`debug eng/hx_unknown packet Ether()/IPv4()/UDP()`,
		"c",
		"set r0 = 0",
		"stepi",
		"next",
		"print mtu",
		"set mtu = 1500",
		"c",
		"quit",
	)
	wantInOrder(t, out,
		"this input reaches bpf_check_mtu (#163) at engine.bpf.c:88, which the debugger does not emulate",
		"stopped at a call the debugger cannot emulate: helper bpf_check_mtu (#163) is not emulated",
		"=> 8: (85) call bpf_check_mtu#163",
		"r0 = 0",
		"bpf_check_mtu() = 0: answered by hand",
		"mtu = 0",
		"mtu = 1500",
		"the program returned XDP_PASS",
		// The kernel's bpf_check_mtu wrote lo's MTU, which the answer
		// alone (r0 = 0, mtu left 0) does not: the check says so, and
		// that the session's own run was changed with set.
		"the kernel differs: retval: the emulator returned 0, the kernel 2 (the checked run used the 1 answer you gave",
		"this session's own run differs from the checked one too",
		"debug session of eng/hx_unknown ended",
	)
}

// TestDebugAnswerChecked: when the answer the user gives is what the
// kernel's helper returns, the kernel check, which could not run before the
// answer, agrees; a wrong answer is caught. tc_realm's helper,
// bpf_get_route_realm, returns 0 in a test run and changes nothing else.
func TestDebugAnswerChecked(t *testing.T) {
	for _, c := range []struct {
		answer, want string
	}{
		{"0", "the kernel agrees"},
		{"7", "the kernel differs"},
	} {
		out := debugScript(t,
			"load ../testrun/fixture/redirect_bpfel.o name rd",
			`debug rd/tc_realm packet Ether()/IPv4()/UDP()`,
			"check",
			"c",
			"set r0 = "+c.answer,
			"stepi",
			"c",
			"check",
			"quit",
		)
		wantInOrder(t, out, "this input reaches bpf_get_route_realm", "not checked against the kernel: the run calls bpf_get_route_realm", "the program returned", c.want, "1 answer you gave")
	}
}

// TestDebugErrors: each mistake is one line, never a panic.
func TestDebugErrors(t *testing.T) {
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	bpfshFails(t, root, "step", 2, `unknown command "step"`)
	bpfshFails(t, root, "debug", 2, "debug needs a program")
	bpfshFails(t, root, "debug name no_such_prog_xyz", 1, "no_such_prog_xyz")
	load := `load fixture; debug fixture/xdp_count packet Ether()/IPv4()/UDP(); `
	for _, c := range []struct {
		line string
		code int
		want string
	}{
		{"print r11", 1, `"r11"`},
		{"print *(u7 *)(r1 + 0)", 2, "TYPE is one of"},
		{"print r1->nosuch", 1, "no field"},
		{"break nosuchfunc", 1, "nosuchfunc"},
		{"debug fixture/xdp_count packet Ether()", 1, "a debug session of fixture/xdp_count is running"},
		{"set r10 = 1", 1, "frame pointer"},
		{"watch r1", 1, "not memory"},
		{"c; s", 1, "the program has returned"},
		{"info locals", 1, "DWARF"},
	} {
		bpfshFails(t, bpftest.PinRoot(t), load+c.line, c.code, c.want)
	}
}

// TestDebugCommit: a session leaves the real maps alone, unless started
// with --commit, whose quit writes what the run changed.
func TestDebugCommit(t *testing.T) {
	out := debugScript(t,
		"load fixture",
		`debug fixture/xdp_count packet Ether()/IPv4()/UDP(dport=6390)/Raw("ping")`,
		"c",
		"quit",
		"map lookup fixture/counters key 0",
		`debug fixture/xdp_count packet Ether()/IPv4()/UDP(dport=6390)/Raw("ping") --commit`,
		"c",
		"quit",
		"map lookup fixture/counters key 0",
	)
	wantInOrder(t, out,
		"debug session of fixture/xdp_count ended: the kernel agrees", "value:  0",
		"debug session of fixture/xdp_count ended: the kernel agrees", "wrote 1 map entry to the real maps", "value:  46",
	)
}

// TestDebugLooking covers finish out of a bpf-to-bpf call, list, info
// maps, x, set in memory, until, events and check, on CPU 1.
func TestDebugLooking(t *testing.T) {
	out := debugScript(t,
		"load ../testrun/emu/testdata/engine.bpf.o name eng",
		`debug eng/hx_count packet Ether()/IPv4(src="10.0.0.1")/UDP(dport=6390)/Raw("ping") cpu 1`,
		"break mix",
		"c",
		"bt",
		"finish",
		"list",
		"info maps",
		"set *(u32 *)(r10 - 8) = 7",
		"x r10 - 8 4",
		"until",
		"events",
		"check",
		"quit",
	)
	wantInOrder(t, out,
		"breakpoint 1 at mix",
		"mix at engine.bpf.c:44",
		"#0  mix at engine.bpf.c:44", "#1  hx_count at engine.bpf.c:77",
		"hx_count at engine.bpf.c:77", "st->mixed = mix(ls.sum, ls.calls);",
		"=>    77", "78\t\tbpf_printk",
		"hx_flows  Hash", "(read; the session's writes stay in the session)",
		"*(u32 *)(r10 - 8) = 7",
		"4 bytes at ", "(stack frame 0 -8)", "07 00 00 00",
		"hx_count at engine.bpf.c:78",
		"bpf_loop(20, &add_step (function), stack frame 0 -8, 0)", "callback: 9 iterations",
		"the kernel agrees",
		"debug session of eng/hx_count ended",
	)
}

// TestDebugObject: a program bpfsh did not load is debugged given its
// object; without it, the error says how.
func TestDebugObject(t *testing.T) {
	root, _ := pinnedProgs(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	// Without the object it is rebuilt from the kernel's translated
	// instructions.
	out := bpfshOK(t, root, "debug t/xdp_reflect packet Ether()/IPv4()/UDP()/Raw(\"ping\")\nc\nquit")
	wantInOrder(t, out, "debugging t/xdp_reflect (xdp, ", "no object: rebuilt from the kernel's translated instructions", "the program returned XDP_TX", "the kernel agrees")
	bpfshFails(t, root, `debug t/xdp_reflect xlated object ../testrun/fixture/progs_bpfel.o packet Ether()/IPv4()/UDP()`, 2, "not both")
	out = bpfshOK(t, root, "debug t/xdp_reflect object ../testrun/fixture/progs_bpfel.o packet Ether()/IPv4()/UDP()/Raw(\"ping\")\nc\nquit")
	wantInOrder(t, out, "debugging t/xdp_reflect (xdp, ", "the program returned XDP_TX", "the kernel agrees")
}

// TestDebugLoadedByBpftool debugs programs bpftool loaded and pinned (no
// object bpfsh is told about) from the kernel's translated instructions:
// the fixture's xdp_count (an inlined array lookup, ctx->data and
// data_end read from struct xdp_buff, bpf_printk through
// __bpf_call_base) and kv's xdp_kv (inlined hash and per-CPU array
// lookups, bpf_loop, timers). Each steps by source line from the kernel's
// line info, reads the real maps and ends with the kernel agreeing.
func TestDebugLoadedByBpftool(t *testing.T) {
	pgNeedBpftool(t)
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	dir, maps := filepath.Join(root, "bt"), filepath.Join(root, "btmaps")
	pgBpftoolRun(t, "prog", "loadall", bpftest.FixtureObject(t), dir, "pinmaps", maps)
	out := bpfshOK(t, root, strings.Join([]string{
		`debug bt/xdp_count xlated packet Ether()/IPv4()/UDP(dport=6390)/Raw("ping")`,
		"list",
		"step",
		"step",
		"print r0",
		"print *r0",
		"rsi",
		"step",
		"info maps",
		"continue",
		"quit",
	}, "\n"))
	wantInOrder(t, out,
		"debugging bt/xdp_count (xdp, ", "no object: rebuilt from the kernel's translated instructions",
		"xdp_count at fixture.bpf.c:76 (step 0)", "ctx->data_end - ctx->data", "=> 0: (61) r2 = *(u32 *)(r1 +0)",
		"76\t\t__u64 len = ctx->data_end - ctx->data;",
		"bpf_map_lookup_elem(&counters, &slot);",
		"bpf_map_lookup_elem(map counters, stack frame 0 -4) = &counters[0]",
		"r0 = &counters[0]",
		"counters ", "Array(counters)", "(read; the session's writes stay in the session)",
		"printk: xdp_count len=46", "the program returned XDP_PASS", "the kernel agrees",
	)

	if _, err := os.Stat("../bpf/kv/kv_bpfel.o"); err != nil {
		t.Fatal(err)
	}
	kvDir, kvMaps := filepath.Join(root, "btkv"), filepath.Join(root, "btkvmaps")
	cmd := exec.Command(pgBpftool, "prog", "loadall", "../bpf/kv/kv_bpfel.o", kvDir, "pinmaps", kvMaps)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Logf("skipped kv: bpftool cannot load it on this kernel: %v\n%s", err, b)
		return
	}
	out = bpfshOK(t, root, strings.Join([]string{
		`debug btkv/xdp_kv packet Ether()/IPv4()/UDP(dport=6390)/KV(op="SET", key="a", value="1")`,
		"next",
		"next",
		"continue",
		"quit",
	}, "\n"))
	wantInOrder(t, out,
		"debugging btkv/xdp_kv (xdp, ", "no object: rebuilt from the kernel's translated instructions",
		"xdp_kv at kv.bpf.c:", "bpf_map_lookup_elem(map scratch, stack frame 0 -12) = &scratch[0] (struct kv_scratch)",
		"the program returned XDP_TX", "the kernel agrees",
	)
}

// TestDebugArrayIndex: [INDEX] in expressions, through BTF: an array
// field of a map value (t->r[0].version, the read set of lesson 13's
// transaction), an array inside it, a pointer indexed as an array, an
// index that is itself an expression, and an index out of bounds.
func TestDebugArrayIndex(t *testing.T) {
	out := debugScript(t,
		"load kv name ledger set kv_txn_timeout_ns=3600000000000",
		"kv set alice 100 --name ledger",
		"kv use ledger",
		"kv begin",
		"kv get alice",
		`debug ledger/xdp_kv packet Ether()/IPv4()/UDP()/KV(op=COMMIT, txid=1)`,
		"break kv_validate",
		"continue",
		"next",
		"next",
		"print r6->nreads",
		"print r6->r[0].version",
		"print r6->r[r6->nreads - 1].key.len",
		"print r6->r[0].key.bytes[4]",
		"print r6->r[0]",
		"print r6[0].nreads",
		"quit",
	)
	wantInOrder(t, out,
		"kv_validate at kv.bpf.c:595",
		"r6->nreads = 1 (0x1)",
		"r6->r[0].version = 1 (0x1)",
		"r6->r[r6->nreads - 1].key.len = 5 (0x5)",
		"r6->r[0].key.bytes[4] = 101 (0x65)",
		"r6->r[0] = {", "alice", "version: 1",
		"r6[0].nreads = 1 (0x1)",
	)
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	bpfshFails(t, root, strings.Join([]string{
		"load kv name ledger set kv_txn_timeout_ns=3600000000000",
		"kv set alice 100 --name ledger",
		"kv use ledger",
		"kv begin",
		"kv get alice",
		`debug ledger/xdp_kv packet Ether()/IPv4()/UDP()/KV(op=COMMIT, txid=1)`,
		"break kv_validate",
		"continue",
		"next",
		"next",
		"print r6->r[99]",
	}, "\n"), 1, "[99]: index 99 is out of bounds of struct kv_read[")
}

// TestDebugOptimizedOut: a variable DWARF says is optimized out where the
// program stands is shown as such, with the register that still holds
// its value (mix's a: in r1 at its first instruction, out of DWARF's
// reach after it, r1 untouched since).
func TestDebugOptimizedOut(t *testing.T) {
	out := debugScript(t,
		"load ../testrun/emu/testdata/engine.bpf.o name eng",
		`debug eng/hx_count packet Ether()/IPv4(src="10.0.0.1")/UDP(dport=6390)/Raw("ping")`,
		"break mix",
		"continue",
		"print a",
		"stepi 2",
		"info locals",
		"print a",
		"print a + 1",
		"quit",
	)
	wantInOrder(t, out,
		"breakpoint 1 at mix", "mix at engine.bpf.c:44",
		"a = 108 (0x6c)",
		"a ", "__u32", "108 <optimized out; held in r1>", "optimized out; r1 holds its value (its location at instruction ",
		"a = 108 (0x6c)  <optimized out here; r1 holds its value (its location at instruction ", "step(s) ago; not written since)>",
		"a + 1 = 109",
	)
}
