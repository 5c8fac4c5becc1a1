// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/commands"
)

// expFrame is Ether()/IPv4()/UDP()/Raw("ping") as bpfsh builds it: 46
// bytes, 02:00:00:00:00:01 -> 02:00:00:00:00:02, 10.0.0.1 -> 10.0.0.2,
// UDP 40000 -> 7777, right checksums.
const expFrame = "hex 020000000002 020000000001 0800 4500 0020 0001 0000 4011 66ca 0a000001 0a000002 9c40 1e61 000c 0000 70696e67"

// expectRoot pins the fixture under a fresh pin root as fx/, as
// "load ... name fx" would, and returns the root.
func expectRoot(t *testing.T) string {
	t.Helper()
	root := bpftest.PinRoot(t)
	if err := os.Mkdir(filepath.Join(root, "fx"), 0o700); err != nil {
		t.Fatal(err)
	}
	bpftest.Fixture(t, filepath.Join(root, "fx"))
	return root
}

const runXDP = "run fx/xdp_count " + expFrame

// Each expect form, passing and failing, through the shell as a script:
// a failed expectation exits 1 with one line saying what was wanted and
// what was found; a malformed one is a usage error (2).
func TestExpectForms(t *testing.T) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		script []string
		code   int
		errHas []string // each in stderr; stderr must be empty when none and code is 0
	}{
		{"retval by name", []string{runXDP, "expect retval XDP_PASS"}, 0, nil},
		{"retval short and number", []string{runXDP, "expect retval pass", "expect retval 2"}, 0, nil},
		{"retval differs", []string{runXDP, "expect retval XDP_TX"}, 1,
			[]string{"-c:2: expect retval: want XDP_TX (3), got XDP_PASS (2)"}},
		{"retval unknown name", []string{runXDP, "expect retval XDP_BOGUS"}, 2, []string{`"XDP_BOGUS" is not a return value of xdp programs`}},
		{"retval without a run", []string{"map lookup fx/counters key 0", "expect retval XDP_PASS"}, 1,
			[]string{"expect retval: there is no run to check"}},

		{"packet matches", []string{runXDP, `expect packet Ether(dst=02:00:00:00:00:02)/IPv4(ttl=64, chksum=*)/UDP(dport=7777)/Raw("ping")`}, 0, nil},
		{"packet as hex matches every field", []string{runXDP, "expect packet " + expFrame}, 0, nil},
		{"packet field differs", []string{runXDP, "expect packet Ether()/IPv4(ttl=63, chksum=*)/UDP(dport=7778)"}, 1,
			[]string{"expect packet: IPv4.ttl: want 63, got 64 (and 1 more)", "* IPv4\n", "*   ttl      64, want 63\n", "*   dport    7777, want 7778\n", "  Ether\n", "    src      10.0.0.1\n"}},
		{"packet layer differs", []string{runXDP, "expect packet Ether()/IPv6()"}, 1,
			[]string{"expect packet: layer 2: want IPv6, got IPv4", "* IPv4 (want IPv6)"}},
		{"packet too short", []string{runXDP, "expect packet Ether()/IPv4()/UDP()/Raw()/Raw()"}, 1,
			[]string{"want Raw, got the packet ends after Raw", "- Raw (wanted; the packet ends before it)"}},
		{"packet malformed", []string{runXDP, "expect packet Ether()/IPv9()"}, 2, []string{"expect packet: column 9: "}},
		{"packet of the packet command", []string{"packet Ether()/IPv4()/UDP()", "expect packet Ether()/IPv4()/UDP(dport=7777)"}, 0, nil},

		{"payload contains", []string{runXDP, `expect payload contains "pin"`, `expect payload contains "\x70ing"`}, 0, nil},
		{"payload lacks", []string{runXDP, `expect payload contains "pong"`}, 1, []string{`expect payload: want "pong" in the 4-byte payload "ping"`}},
		{"payload bad escape", []string{runXDP, `expect payload contains "\q"`}, 2, []string{`unknown escape \q`}},

		{"trace contains", []string{runXDP, `expect trace contains "xdp_count len=46"`}, 0, nil},
		{"trace lacks", []string{runXDP, `expect trace contains "len=47"`}, 1,
			[]string{`expect trace: want a line containing "len=47"; none of the 1 lines the last run wrote does`, "\n  xdp_count len=46"}},

		{"map value", []string{runXDP, "expect map fx/counters key 0 value 46", "expect map fx/counters key 0 value hex 2e 00 00 00 00 00 00 00"}, 0, nil},
		{"map value differs", []string{runXDP, "expect map fx/counters key 0 value 47"}, 1,
			[]string{"expect map: map counters key 0: want 47, got 46"}},
		{"map struct value", []string{"map update fx/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 3, comment: web}",
			`expect map fx/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 3, comment: "web"}`}, 0, nil},
		{"map struct value differs", []string{"map update fx/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 3}",
			"expect map fx/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 4}"}, 1,
			[]string{"want {packets: 4, bytes: 0, comment: \"\", tags: [0, 0, 0, 0]}, got {packets: 3, bytes: 0, comment: \"\", tags: [0, 0, 0, 0]}"}},
		{"map value of a missing key", []string{"expect map fx/flows key {saddr: 10.0.0.9} value {packets: 1}"}, 1,
			[]string{"but the key is absent"}},
		{"map absent", []string{"expect map fx/flows key {saddr: 10.0.0.9} absent"}, 0, nil},
		{"map not absent", []string{"map update fx/flows key {saddr: 10.0.0.9} value {packets: 1}", "expect map fx/flows key {saddr: 10.0.0.9} absent"}, 1,
			[]string{"want it absent, but it holds {packets: 1, "}},
		{"map count", []string{"expect map fx/flows count 0", "map update fx/flows key {saddr: 1} value {packets: 1}", "expect map fx/flows count 1", "expect map fx/counters count 8"}, 0, nil},
		{"map count differs", []string{"expect map fx/flows count 2"}, 1, []string{"expect map: map flows: want 2 entries, got 0"}},
		{"map per-CPU sums", []string{"map update fx/percpu key 3 value 5", "expect map fx/percpu key 3 value " + strconv.Itoa(5*cpus)}, 0, nil},
		{"map bad key", []string{"expect map fx/counters key {x: 1} value 1"}, 2, []string{"expect map: key for map counters"}},
		{"map bad form", []string{"expect map fx/counters key 0"}, 2, []string{"say what the key holds: value VALUE, or absent"}},
		{"map missing", []string{"expect map fx/nosuch count 0"}, 1, []string{"expect map: nothing is pinned at"}},

		{"error expected", []string{"map lookup fx/flows key {saddr: 10.0.0.9}", `expect error contains "key not found in map flows"`}, 0, nil},
		{"error expected on one line", []string{`map lookup fx/flows key {saddr: 10.0.0.9}; expect error contains "key not found"; expect map fx/flows count 0`}, 0, nil},
		{"error differs", []string{"map lookup fx/flows key {saddr: 10.0.0.9}", `expect error contains "zzz"`}, 1,
			[]string{`expect error: want an error containing "zzz", got: map lookup: key not found in map flows`}},
		{"error but it succeeded", []string{"map lookup fx/counters key 0", `expect error contains "x"`}, 1,
			[]string{`want the last command to fail with an error containing "x"; it succeeded`}},
		{"usage error expected", []string{"map lookup fx/counters", `expect error contains "needs a key"`}, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := expectRoot(t)
			code, _, errs := bpfsh(t, root, "-c", strings.Join(c.script, "\n"))
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, errs)
			}
			if c.code == 0 && errs != "" {
				t.Errorf("stderr should be empty:\n%s", errs)
			}
			for _, want := range c.errHas {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errs)
				}
			}
		})
	}
}

// A failed expectation stops a script like any failing command (unless
// --keep-going; suites go on past it); a failing command that expect
// error follows does not.
func TestExpectScriptFlow(t *testing.T) {
	root := expectRoot(t)
	code, _, errs := bpfsh(t, root, "-c", strings.Join([]string{
		"expect map fx/flows count 5",                           // fails, stops the script
		"map update fx/flows key {saddr: 9} value {packets: 1}", // never runs
	}, "\n"))
	if code != 1 || strings.TrimSpace(errs) != "error: -c:1: expect map: map flows: want 5 entries, got 0" {
		t.Errorf("exit %d, want 1 and one error; stderr:\n%s", code, errs)
	}
	script := strings.Join([]string{
		"expect map fx/flows count 0",                           // holds
		"map update fx/flows key {saddr: 1} value {packets: 1}", // runs
		"map lookup fx/flows key {saddr: 2}",                    // fails, expected
		`expect error contains "key not found"`,                 // holds
		"expect map fx/flows count 1",                           // holds
		"map lookup fx/flows key {saddr: 3}",                    // fails, stops the script
		"map update fx/flows key {saddr: 4} value {packets: 1}", // never runs
	}, "\n")
	code, _, errs = bpfsh(t, root, "-c", script)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: -c:6: map lookup: key not found in map flows") {
		t.Errorf("stderr should be the failure that stopped the script:\n%s", errs)
	}
	code, _, errs = bpfsh(t, root, "-c", "expect map fx/flows key {saddr: 4} absent")
	if code != 0 {
		t.Errorf("the line after the failure ran: %s", errs)
	}
}

// expect leaves the last result alone: several lines check one run, and
// an expect error after a failed expectation still sees the command's error.
func TestExpectKeepsTheLastResult(t *testing.T) {
	root := expectRoot(t)
	code, _, errs := bpfsh(t, root, "-c", strings.Join([]string{
		runXDP,
		"expect retval XDP_PASS",
		"expect map fx/counters key 0 value 46",
		`expect payload contains "ping"`,
		`expect trace contains "len=46"`,
		"expect packet Ether()/IPv4()/UDP()",
	}, "\n"))
	if code != 0 {
		t.Errorf("exit %d: %s", code, errs)
	}
	code, _, errs = bpfsh(t, root, "-c", strings.Join([]string{
		"map lookup fx/flows key {saddr: 7}",
		`expect error contains "key not found"`,
		`expect error contains "flows"`,
	}, "\n"))
	if code != 0 {
		t.Errorf("exit %d: %s", code, errs)
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"plain", `a "quoted" word`, "tab\there", `back\slash`, "nul\x00byte", "héllo", "line\nbreak"} {
		e := commands.Escape(s)
		if strings.ContainsAny(e, "\"\n\t") {
			t.Errorf("Escape(%q) = %q still holds a quote or control character", s, e)
		}
		got, err := commands.Unescape(e)
		if err != nil || got != s {
			t.Errorf("Unescape(Escape(%q)) = %q, %v", s, got, err)
		}
	}
	for _, bad := range []string{`ends\`, `\x4`, `\xzz`, `\q`} {
		if _, err := commands.Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) should fail", bad)
		}
	}
}

// expect file checks what a step wrote, relative to the working
// directory; a missing file or missing text is a failed expectation.
func TestExpectFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile(filepath.Join(dir, "report.xml"), []byte(`<testsuites failures="0">`), 0o644); err != nil {
		t.Fatal(err)
	}
	root := bpftest.PinRoot(t)
	bpfshOK(t, root, `expect file report.xml contains 'failures="0"'`)
	bpfshFails(t, root, `expect file report.xml contains "errors"`, 1, `expect file: want "errors" in report.xml`)
	bpfshFails(t, root, `expect file nope.xml contains "x"`, 1, "there is no file nope.xml (in "+dir)
	bpfshFails(t, root, `expect file report.xml`, 2, "needs contains TEXT")
}
