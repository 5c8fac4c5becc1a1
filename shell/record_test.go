// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/shell"
)

// expectLines counts the expect lines of a suite that are not commented out.
func expectLines(suite string) int {
	return len(regexp.MustCompile(`(?m)^expect `).FindAllString(suite, -1))
}

// A session recorded with record replays as a suite that passes, in a
// fresh pin root, from the suite's own directory.
func TestRecordReplays(t *testing.T) {
	dir := suiteDir(t, nil)
	t.Chdir(dir)
	if err := os.Mkdir("rec", 0o755); err != nil {
		t.Fatal(err)
	}
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	session := strings.Join([]string{
		"record rec/session.bpfsh",
		"load fixture.o name fx",
		`let f = Ether()/IPv4()/UDP()/Raw("ping")`,
		"run fx/xdp_count " + suiteFrame,
		"run fx/tc_count " + suiteFrame,
		`map update fx/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 3, comment: "a b"}`,
		"map lookup fx/flows key {saddr: 10.0.0.1, sport: 80}",
		"map update fx/percpu key 3 value 5",
		"map lookup fx/flows key {saddr: 10.0.0.9}",
		"map lookup fx/nosuch key 0",
		"map delete fx/flows key {saddr: 10.0.0.1, sport: 80}",
		"expect map fx/flows count 0",
		"expect retval XDP_TX",
		"record stop",
		"map update fx/flows key {saddr: 1} value {packets: 1}",
	}, "\n")
	var out, errb bytes.Buffer
	code := shell.Main([]string{"--pin-root", root, "--keep-going"}, strings.NewReader(session), &out, &errb)
	if code != 1 {
		t.Errorf("recording session: exit %d, want 1 (two lookups fail); stderr:\n%s", code, errb.String())
	}
	if !strings.Contains(out.String(), "recorded 12 commands to rec/session.bpfsh; replay with: bpfsh test rec/session.bpfsh") {
		t.Errorf("record stop says:\n%s", out.String())
	}
	data, err := os.ReadFile("rec/session.bpfsh")
	if err != nil {
		t.Fatal(err)
	}
	suite := string(data)
	for _, want := range []string{
		"\nload ../fixture.o name fx\n",
		"\nlet f = Ether()/IPv4()/UDP()/Raw(\"ping\")\n",
		"\nexpect retval XDP_PASS\nexpect packet Ether(dst=02:00:00:00:00:02, src=02:00:00:00:00:01, type=0x0800)/IPv4(",
		"\nexpect map fx/counters key 0 value 46\nexpect trace contains \"xdp_count len=46\"\n",
		"\nexpect retval TC_ACT_OK\n",
		"\nexpect map fx/counters key 1 value 46\n",
		"\nexpect map fx/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 3, bytes: 0, comment: \"a b\", tags: [0, 0, 0, 0]}\n",
		"\nexpect error contains \"map lookup: key not found in map flows (key {saddr: ",
		"\nmap lookup fx/nosuch key 0\nexpect error contains \"map lookup: nothing is pinned at\"\n",
		"\nexpect map fx/flows key {saddr: 10.0.0.1, sport: 80} absent\n",
		"\nexpect map fx/flows count 0\n",
		"\n# expect retval XDP_TX\n#   (failed while recording: expect retval: there is no run to check",
	} {
		if !strings.Contains(suite, want) {
			t.Errorf("the recording lacks %q:\n%s", want, suite)
		}
	}
	if strings.Contains(suite, root) || strings.Contains(suite, "saddr: 1}") {
		t.Errorf("the recording names the pin root or holds a command after record stop:\n%s", suite)
	}

	// Replayed from elsewhere: relative names resolve from rec/.
	t.Chdir(t.TempDir())
	code, report, errs := bpfshTest(t, filepath.Join(dir, "rec", "session.bpfsh"))
	n := expectLines(suite)
	if code != 0 || !strings.HasSuffix(report, fmt.Sprintf("\n%d passed, 0 failed\n", n)) || n < 12 {
		t.Errorf("replay: exit %d, %d expect lines, stderr %q:\n%s", code, n, errs, report)
	}
}

// Recording started after a load begins with that load and the entries
// its maps hold then, so that the suite replays from the same state: the
// counters the runs before recording raised are put back.
func TestRecordStartsFromTheCurrentState(t *testing.T) {
	dir := suiteDir(t, nil)
	t.Chdir(dir)
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	session := strings.Join([]string{
		"load fixture.o name fx only xdp_count",
		"run fx/xdp_count " + suiteFrame,
		"run fx/xdp_count " + suiteFrame,
		`map update fx/flows key {saddr: 10.0.0.1, sport: 80} value {packets: 3}`,
		"let f = " + suiteFrame,
		"record late.bpfsh",
		"run fx/xdp_count packet $f",
		"record stop",
	}, "\n")
	var out, errb bytes.Buffer
	if code := shell.Main([]string{"--pin-root", root}, strings.NewReader(session), &out, &errb); code != 0 {
		t.Fatalf("recording session: exit %d; stderr:\n%s", code, errb.String())
	}
	if !strings.Contains(out.String(), "the suite starts by loading what is loaded here (fx), putting back the 2 entries its maps hold and keeping $f again") {
		t.Errorf("record does not say the suite starts from this state:\n%s", out.String())
	}
	data, err := os.ReadFile("late.bpfsh")
	if err != nil {
		t.Fatal(err)
	}
	suite := string(data)
	for _, want := range []string{
		"\nload fixture.o name fx only xdp_count\n",
		"\nmap update fx/counters key 0 value 92\n",
		"\nmap update fx/flows key {saddr: 10.0.0.1, sport: 80, pad: 0} value {packets: 3, ",
		"\nlet f = hex 0200",
		"\nexpect map fx/counters key 0 value 138\n",
	} {
		if !strings.Contains(suite, want) {
			t.Errorf("the recording lacks %q:\n%s", want, suite)
		}
	}
	code, report, errs := bpfshTest(t, filepath.Join(dir, "late.bpfsh"))
	if code != 0 || !strings.HasSuffix(report, " passed, 0 failed\n") {
		t.Errorf("replay: exit %d, stderr %q:\n%s", code, errs, report)
	}
}

func TestRecordErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		script string
		errHas string
	}{
		{"record stop", "record stop: not recording"},
		{"record", "record takes FILE, or stop"},
		{"record " + dir + "/nosuch/x.bpfsh", "no such file or directory"},
		{"record " + dir + "/a.bpfsh\nrecord " + dir + "/b.bpfsh", "already recording to " + dir + "/a.bpfsh"},
	}
	for _, c := range cases {
		code, _, errs := run(t, c.script)
		if code == 0 || !strings.Contains(errs, c.errHas) {
			t.Errorf("%q: exit %d, stderr %q; want %q", c.script, code, errs, c.errHas)
		}
	}
	// Leaving the shell while recording keeps what was recorded.
	file := filepath.Join(dir, "left.bpfsh")
	if code, _, errs := run(t, "record "+file+"\nhelp exit\nmap lookup bpfsh-nosuch/m key 0\n"); code != 1 {
		t.Errorf("exit %d: %s", code, errs)
	}
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), "\nmap lookup bpfsh-nosuch/m key 0\nexpect error contains \"map lookup: nothing is pinned at\"\n") ||
		strings.Contains(string(data), "help") {
		t.Errorf("recording after leaving:\n%s", data)
	}
}

// record at a terminal: the interactive shell writes the session as typed
// and the suite replays.
func TestPTYRecord(t *testing.T) {
	obj := bpftest.FixtureObject(t)
	file := filepath.Join(t.TempDir(), "typed.bpfsh")
	sc := ptyShell(t, bpftest.PinRoot(t), t.TempDir())
	sc.send("record " + file + "\r")
	sc.expect(`recording to .*typed\.bpfsh; 'record stop' ends it`)
	sc.expect(ptyPrompt)
	sc.send("load " + obj + " name fx\r")
	sc.expect(`map\s+undo\s+stack`)
	sc.expect(ptyPrompt)
	sc.send("run fx/xdp_count " + suiteFrame + "\r")
	sc.expect(`trace\s+xdp_count len=46`)
	sc.expect(ptyPrompt)
	sc.send("map lookup fx/flows key {saddr: 7}\r")
	sc.expect(`error: map lookup: key not found in map flows`)
	sc.expect(ptyPrompt)
	sc.send("expect error contains 'not found'\r")
	sc.expect(ptyPrompt)
	sc.send("record stop\r")
	sc.expect(`recorded 4 commands to `)
	sc.expect(ptyPrompt)
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("Ctrl-D: exit status %d", st)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nload " + obj + " name fx\n", "\nmap lookup fx/flows key {saddr: 7}\nexpect error contains \"map lookup: key not found in map flows (key {saddr: 7.0.0.0, sport: 0, pad: 0})\"\n", "\nexpect error contains \"not found\"\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the recording lacks %q:\n%s", want, data)
		}
	}
	code, report, errs := bpfshTest(t, file)
	if n := expectLines(string(data)); code != 0 || !strings.HasSuffix(report, fmt.Sprintf("\n%d passed, 0 failed\n", n)) {
		t.Errorf("replay: exit %d, stderr %q:\n%s", code, errs, report)
	}
}

// Addresses and ports show as typed, in dumps, errors and the expect
// lines record writes, and the recording replays; with --raw-numbers
// the recording says so and replays too (issue item 10).
func TestRecordAddressesAndPorts(t *testing.T) {
	dir := suiteDir(t, nil)
	t.Chdir(dir)
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	session := strings.Join([]string{
		"record addr.bpfsh",
		"load fixture.o name fx",
		"map update fx/flows key {saddr: 10.0.0.1, sport: 40000} value {packets: 1}",
		"map dump fx/flows",
		"map lookup fx/flows key {saddr: 10.0.0.1, sport: 40000}",
		"map lookup fx/flows key {saddr: 10.0.0.9, sport: 80}",
		"map update fx/flows key {saddr: 167772163, sport: 16540} value {packets: 2} --raw-numbers",
		"map lookup fx/flows key {saddr: 167772163, sport: 16540} --raw-numbers",
		"map lookup fx/flows key {saddr: 3.0.0.10, sport: 40000}",
		"record stop",
	}, "\n")
	var out, errb bytes.Buffer
	code := shell.Main([]string{"--pin-root", root, "--keep-going"}, strings.NewReader(session), &out, &errb)
	if code != 1 {
		t.Errorf("exit %d, want 1 (one lookup misses); stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{
		"{saddr: 10.0.0.1, sport: 40000, pad: 0}  {packets: 1,",
		"key:    {saddr: 10.0.0.1, sport: 40000, pad: 0}",
		"key:    {saddr: 167772163, sport: 16540, pad: 0}",
		"key:    {saddr: 3.0.0.10, sport: 40000, pad: 0}",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "(key {saddr: 10.0.0.9, sport: 80, pad: 0})") {
		t.Errorf("the error does not show the key as typed: %s", errb.String())
	}
	data, err := os.ReadFile("addr.bpfsh")
	if err != nil {
		t.Fatal(err)
	}
	suite := string(data)
	for _, want := range []string{
		"\nmap update fx/flows key {saddr: 167772163, sport: 16540} value {packets: 2} --raw-numbers\n",
		"--raw-numbers\n",
		"(key {saddr: 10.0.0.9, sport: 80, pad: 0})",
	} {
		if !strings.Contains(suite, want) {
			t.Errorf("the recording lacks %q:\n%s", want, suite)
		}
	}
	code, report, errs := bpfshTest(t, filepath.Join(dir, "addr.bpfsh"))
	if code != 0 || !strings.HasSuffix(report, fmt.Sprintf("\n%d passed, 0 failed\n", expectLines(suite))) {
		t.Errorf("replay: exit %d, stderr %q:\n%s\nsuite:\n%s", code, errs, report, suite)
	}
}
