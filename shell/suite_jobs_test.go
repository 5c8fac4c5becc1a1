// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// bpfsh test --jobs 2 prints what a serial run prints, in the same order,
// and writes the same JUnit report, for suites that pass, fail an
// expectation with a packet diff, and stop at a failing command.
func TestSuiteJobsSameAsSerial(t *testing.T) {
	load := "load ../fixture.o name fx\n"
	files := map[string]string{
		"jobs/a.bpfsh": load + "run fx/xdp_count " + suiteFrame + "\nexpect retval XDP_PASS\nexpect retval XDP_DROP\n",
		"jobs/b.bpfsh": load + "run fx/xdp_count " + suiteFrame + "\nexpect packet Ether()/IPv4(ttl=9)/UDP()/Raw(\"pong\")\nexpect retval XDP_PASS\n",
		"jobs/c.bpfsh": load + "map lookup fx/nosuch key 0\nexpect retval XDP_PASS\n",
		"jobs/d.bpfsh": load + "run fx/xdp_count " + suiteFrame + "\nexpect retval XDP_PASS\nexpect trace contains \"len=46\"\n",
		"jobs/e.bpfsh": load + "expect map fx/flows count 0\n",
	}
	dir := suiteDir(t, files)
	bin := bpfshBinary(t)
	normal := regexp.MustCompile(`bpfsh-suite-[0-9]+|time="[^"]*"`)
	run := func(junit string, extra ...string) (string, string) {
		t.Helper()
		args := append([]string{"test", "jobs", "--junit", junit}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Fatalf("bpfsh %s: exit %d (%v), want 1:\n%s", strings.Join(args, " "), code, err, out)
		}
		report, err := os.ReadFile(filepath.Join(dir, junit))
		if err != nil {
			t.Fatal(err)
		}
		return normal.ReplaceAllString(string(out), "X"), normal.ReplaceAllString(string(report), "X")
	}
	serialOut, serialJUnit := run("serial.xml")
	parOut, parJUnit := run("parallel.xml", "--jobs", "2")
	if serialOut != parOut {
		t.Errorf("output differs\nserial:\n%s\n--jobs 2:\n%s", serialOut, parOut)
	}
	if serialJUnit != parJUnit {
		t.Errorf("JUnit differs\nserial:\n%s\n--jobs 2:\n%s", serialJUnit, parJUnit)
	}
	for _, want := range []string{"FAIL  jobs/a.bpfsh", "FAIL  jobs/b.bpfsh", "FAIL  jobs/c.bpfsh", "ok    jobs/d.bpfsh", "ok    jobs/e.bpfsh", "failed, and the suite stopped here"} {
		if !strings.Contains(parOut, want) {
			t.Errorf("output lacks %q:\n%s", want, parOut)
		}
	}
}

// BenchmarkSuite10k is item 4 of the scale issue: a suite of 10,000 run +
// expect pairs (the fixture's xdp_count on one frame, expect retval),
// run as bpfsh test runs it. It reports seconds per suite (s/suite).
func BenchmarkSuite10k(b *testing.B) {
	var text strings.Builder
	text.WriteString("load ../fixture.o name fx\n")
	for range 10000 {
		text.WriteString("run fx/xdp_count " + suiteFrame + "\nexpect retval XDP_PASS\n")
	}
	dir := suiteDir(b, map[string]string{"s10k/big.bpfsh": text.String()})
	for b.Loop() {
		code, out, errs := bpfshTest(b, filepath.Join(dir, "s10k", "big.bpfsh"))
		if code != 0 || !strings.Contains(out, "10000 passed, 0 failed") {
			b.Fatalf("exit %d:\n%s\n%s", code, out, errs)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/suite")
}
