// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/shell"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// suiteFrame is Ether()/IPv4()/UDP(chksum=0)/Raw("ping"), 46 bytes, as
// the hex words a suite gives run (built by testrun/packet).
var suiteFrame = "hex " + hex.EncodeToString(packet.MustBuild(`Ether()/IPv4()/UDP(chksum=0)/Raw("ping")`))

// suiteDir is a directory holding the fixture ELF as fixture.o and the
// given suite files.
func suiteDir(t testing.TB, files map[string]string) string {
	t.Helper()
	bpftest.RequireRoot(t)
	dir := filepath.Dir(bpftest.FixtureObject(t))
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bpfshTest runs "bpfsh test ARGS" in-process and returns the exit status
// and what it printed.
func bpfshTest(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := shell.Main(append([]string{"--pin-root", "/sys/fs/bpf/bpfsh-test-unused", "test"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// suitePinRoots are the fresh pin roots named in out.
var suitePinRootRE = regexp.MustCompile(`/sys/fs/bpf/bpfsh-suite-[0-9]+`)

func checkPinRootsGone(t *testing.T, out string) {
	t.Helper()
	roots := suitePinRootRE.FindAllString(out, -1)
	if len(roots) == 0 {
		t.Fatalf("the output names no suite pin root:\n%s", out)
	}
	for _, r := range roots {
		if _, err := os.Stat(r); !os.IsNotExist(err) {
			t.Errorf("pin root %s is still there (stat: %v)", r, err)
		}
	}
}

var failingSuite = `# a suite with failures
load fixture.o name fx
run fx/xdp_count ` + suiteFrame + `
expect retval XDP_PASS
expect retval XDP_TX
expect packet Ether()/IPv4(ttl=63, chksum=*)/UDP(dport=7777)
expect map fx/counters key 0 value 46
expect map fx/nosuch count 0
load nosuch.o
expect retval XDP_PASS
`

// A suite goes on past failed expectations, stops at a failing command,
// reports each failure with file:line (and a layer diff for packets),
// counts, exits 1, and leaves no pin root behind.
func TestSuiteReportsFailures(t *testing.T) {
	dir := suiteDir(t, map[string]string{"fail.bpfsh": failingSuite})
	file := filepath.Join(dir, "fail.bpfsh")
	code, out, errs := bpfshTest(t, file)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr %q", code, errs)
	}
	for _, want := range []string{
		"--- FAIL " + file + ":5: expect retval XDP_TX\n    expect retval: want XDP_TX (3), got XDP_PASS (2)\n",
		"--- FAIL " + file + ":6: expect packet Ether()/IPv4(ttl=63, chksum=*)/UDP(dport=7777)\n    expect packet: IPv4.ttl: want 63, got 64\n",
		"    * IPv4\n",
		"    *   ttl      64, want 63\n",
		"--- FAIL " + file + ":8: expect map fx/nosuch count 0\n",
		"--- FAIL " + file + ":9: load nosuch.o\n    failed, and the suite stopped here: load nosuch.o: ",
		"FAIL  " + file + "  (2 passed, 4 failed)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, ":10:") {
		t.Errorf("the line after the failing command ran:\n%s", out)
	}
	if !strings.HasSuffix(out, "\n2 passed, 4 failed\n") {
		t.Errorf("the output does not end with the summary:\n%s", out)
	}
	checkPinRootsGone(t, out)
}

// Suites in directories run in name order, recursively, each in its own
// pin root; relative names resolve from the suite's directory; a passing
// run exits 0.
func TestSuiteDirectory(t *testing.T) {
	dir := suiteDir(t, map[string]string{
		"b.bpfsh":            "load fixture.o name fx\nexpect map fx/counters key 1 value 0\n",
		"a.bpfsh":            "source lib/setup.bpfsh\nrun fx/xdp_count " + suiteFrame + "\nexpect map fx/counters key 0 value 46\n",
		"lib/setup.bpfsh":    "load ../fixture.o name fx\nexpect map fx/counters key 0 value 0\n",
		"notes.txt":          "not a suite",
		"sub/deeper/c.bpfsh": "load ../../fixture.o name fx\nexpect map fx/flows count 0\n",
	})
	code, out, errs := bpfshTest(t, "-v", dir)
	if code != 0 {
		t.Fatalf("exit %d; stderr %q\n%s", code, errs, out)
	}
	var order []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ok    ") {
			order = append(order, strings.Fields(line)[1])
		}
	}
	want := []string{filepath.Join(dir, "a.bpfsh"), filepath.Join(dir, "b.bpfsh"), filepath.Join(dir, "lib/setup.bpfsh"), filepath.Join(dir, "sub/deeper/c.bpfsh")}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("suites ran as %q, want %q", order, want)
	}
	// a.bpfsh counts the expect line it sources too; lib/setup.bpfsh also
	// runs as a suite of its own: 2 + 1 + 1 + 1.
	if !strings.HasSuffix(out, "\n5 passed, 0 failed\n") {
		t.Errorf("summary wrong:\n%s", out)
	}
	if n := len(suitePinRootRE.FindAllString(out, -1)); n == 0 {
		t.Fatalf("-v output shows no pin root:\n%s", out)
	}
	roots := map[string]bool{}
	for _, r := range suitePinRootRE.FindAllString(out, -1) {
		roots[r] = true
	}
	if len(roots) != 4 {
		t.Errorf("want 4 distinct pin roots, one per suite, got %v", roots)
	}
	checkPinRootsGone(t, out)
}

func TestSuiteUsage(t *testing.T) {
	empty := t.TempDir()
	cases := []struct {
		args   []string
		errHas string
	}{
		{nil, "test needs suites to run"},
		{[]string{"/nonexistent/x.bpfsh"}, "test: /nonexistent/x.bpfsh: no such file or directory"},
		{[]string{empty}, "no suites (*.bpfsh files) under " + empty},
		{[]string{"--junit"}, "--junit needs the FILE"},
		{[]string{"--frob", "x"}, `unknown option "--frob"`},
	}
	for _, c := range cases {
		code, out, errs := bpfshTest(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.errHas) || out != "" {
			t.Errorf("test %q: exit %d, stderr %q, stdout %q; want 2 and %q", c.args, code, errs, out, c.errHas)
		}
	}
}

// The JUnit report, read back: one testsuite per file, one testcase per
// expect line named file:line, failures with their message and diff, and
// the command that stopped the suite as an error.
func TestSuiteJUnit(t *testing.T) {
	dir := suiteDir(t, map[string]string{
		"fail.bpfsh": failingSuite,
		"ok.bpfsh":   "load fixture.o name fx\nexpect map fx/flows count 0\n",
	})
	report := filepath.Join(t.TempDir(), "report.xml")
	code, out, _ := bpfshTest(t, dir, "--junit", report)
	if code != 1 {
		t.Errorf("exit %d, want 1:\n%s", code, out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	type problem struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	var rep struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Errors   int      `xml:"errors,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Errors   int    `xml:"errors,attr"`
			Cases    []struct {
				Name    string   `xml:"name,attr"`
				Failure *problem `xml:"failure"`
				Error   *problem `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &rep); err != nil {
		t.Fatalf("parse the report: %v\n%s", err, data)
	}
	if rep.Tests != 7 || rep.Failures != 3 || rep.Errors != 1 || len(rep.Suites) != 2 {
		t.Fatalf("report counts tests=%d failures=%d errors=%d suites=%d, want 7 3 1 2:\n%s", rep.Tests, rep.Failures, rep.Errors, len(rep.Suites), data)
	}
	fail, ok := rep.Suites[0], rep.Suites[1]
	if fail.Name != filepath.Join(dir, "fail.bpfsh") || fail.Tests != 6 || ok.Name != filepath.Join(dir, "ok.bpfsh") || ok.Tests != 1 || ok.Failures != 0 {
		t.Errorf("suites: %+v / %+v", fail, ok)
	}
	c := fail.Cases[2]
	if c.Name != fail.Name+":6: expect packet Ether()/IPv4(ttl=63, chksum=*)/UDP(dport=7777)" || c.Failure == nil ||
		c.Failure.Message != "expect packet: IPv4.ttl: want 63, got 64" || !strings.Contains(c.Failure.Text, "*   ttl      64, want 63\n") {
		t.Errorf("packet testcase: %+v", c)
	}
	if c := fail.Cases[0]; c.Failure != nil || c.Error != nil || c.Name != fail.Name+":4: expect retval XDP_PASS" {
		t.Errorf("a passing testcase: %+v", c)
	}
	last := fail.Cases[len(fail.Cases)-1]
	if last.Error == nil || last.Name != fail.Name+":9: load nosuch.o" || !strings.HasPrefix(last.Error.Message, "load nosuch.o: ") {
		t.Errorf("the command that stopped the suite: %+v", last)
	}
}

// The example suites in testrun/suites pass (CI runs them this way).
func TestExampleSuites(t *testing.T) {
	bpftest.RequireRoot(t)
	code, out, errs := bpfshTest(t, "../testrun/suites")
	if code != 0 || !strings.Contains(out, " passed, 0 failed\n") {
		t.Errorf("exit %d, stderr %q:\n%s", code, errs, out)
	}
}

// BenchmarkSuite1000Runs times a suite of 1,000 runs, each followed by
// an expect line (the issue asks for under 5 s); it reports ms per suite.
func BenchmarkSuite1000Runs(b *testing.B) {
	bpftest.RequireRoot(b)
	dir := filepath.Dir(bpftest.FixtureObject(b))
	var sb strings.Builder
	sb.WriteString("load fixture.o name fx\n")
	for range 1000 {
		sb.WriteString("run fx/xdp_count " + suiteFrame + "\nexpect retval XDP_PASS\n")
	}
	file := filepath.Join(dir, "thousand.bpfsh")
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		var out bytes.Buffer
		if code := shell.Main([]string{"test", file}, strings.NewReader(""), &out, &out); code != 0 {
			b.Fatalf("exit %d:\n%s", code, out.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/suite")
}

// Lines that cannot be read stop a suite and count as failures, with
// file:line, like failing commands.
func TestSuiteBrokenLines(t *testing.T) {
	dir := suiteDir(t, map[string]string{
		"quote.bpfsh": "help\nhelp \"open\nhelp\n",
		"cont.bpfsh":  "help\nhelp \\\n",
	})
	code, out, _ := bpfshTest(t, dir)
	for _, want := range []string{
		"--- FAIL " + filepath.Join(dir, "quote.bpfsh") + ":2: (a line that cannot be read as words)\n    failed, and the suite stopped here: column 6: unterminated \" quote",
		"--- FAIL " + filepath.Join(dir, "cont.bpfsh") + ":2: (a line that cannot be read as words)\n    failed, and the suite stopped here: the last line ends in '\\' with nothing after it",
		"\n0 passed, 2 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
}

// An expect line typed wrong is one failure of that line: counted once,
// one JUnit testcase (a failure), and the suite goes on (issue item 5).
func TestSuiteCountsAMalformedExpectOnce(t *testing.T) {
	dir := suiteDir(t, map[string]string{"typo.bpfsh": "load fixture.o name fx\nrun fx/xdp_count " + suiteFrame +
		"\nexpect retval XDP_PASS\nexpect retval XDP_DORP\nexpect retval XDP_PASS\n"})
	file := filepath.Join(dir, "typo.bpfsh")
	report := filepath.Join(t.TempDir(), "report.xml")
	code, out, _ := bpfshTest(t, file, "--junit", report)
	if code != 1 || !strings.HasSuffix(out, "\n2 passed, 1 failed\n") || strings.Count(out, "--- FAIL") != 1 {
		t.Errorf("exit %d, output:\n%s\nwant exit 1, one failure and 2 passed", code, out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "<testcase "); n != 3 || strings.Count(string(data), "<failure ") != 1 || strings.Contains(string(data), "<error ") {
		t.Errorf("the report has %d testcases, want 3 with one failure and no error:\n%s", n, data)
	}
}

// A --junit FILE that cannot be written is found before any suite runs,
// and -j prints the results as JSON (issue 13 item 17).
func TestSuiteJUnitCheckedFirstAndJSON(t *testing.T) {
	dir := suiteDir(t, map[string]string{
		"json/fail.bpfsh": failingSuite,
		"json/ok.bpfsh":   "load ../fixture.o name fx\nexpect map fx/flows count 0\n",
	})
	dir = filepath.Join(dir, "json")
	if err := os.Symlink("../fixture.o", filepath.Join(dir, "fixture.o")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	for _, bad := range []string{filepath.Join(t.TempDir(), "no", "such", "dir", "r.xml"), t.TempDir()} {
		code, out, errb := bpfshTest(t, dir, "--junit", bad)
		if code != 1 || out != "" || !strings.HasPrefix(errb, "error: test: --junit "+bad+" cannot be written") || strings.Count(errb, "\n") != 1 {
			t.Errorf("--junit %s: exit %d, out %q, err %q; want exit 1, one error line and no suite run", bad, code, out, errb)
		}
	}

	var outb, errb bytes.Buffer
	code := shell.Main([]string{"-j", "--pin-root", "/sys/fs/bpf/bpfsh-test-unused", "test", dir}, strings.NewReader(""), &outb, &errb)
	if code != 1 {
		t.Errorf("-j test: exit %d, want 1; stderr %s", code, errb.String())
	}
	var res struct {
		Passed, Failed int
		Suites         []struct {
			File           string
			Passed, Failed int
			OK             bool
			Cases          []struct {
				At, Line, Error string
				Expect, Passed  bool
			}
		}
	}
	if err := json.Unmarshal(outb.Bytes(), &res); err != nil {
		t.Fatalf("-j test does not print JSON (%v):\n%s", err, outb.String())
	}
	if len(res.Suites) != 2 || res.Failed == 0 || res.Passed == 0 {
		t.Fatalf("-j test: %+v", res)
	}
	fail, ok := res.Suites[0], res.Suites[1]
	if !strings.HasSuffix(fail.File, "fail.bpfsh") || fail.OK || fail.Failed != 4 || !ok.OK || ok.Passed != 1 {
		t.Errorf("-j test suites: %+v", res.Suites)
	}
	sawFail := false
	for _, c := range fail.Cases {
		if c.Line == "expect retval XDP_TX" {
			sawFail = !c.Passed && c.Expect && strings.Contains(c.Error, "XDP_PASS") && strings.HasSuffix(c.At, "fail.bpfsh:5")
		}
	}
	if !sawFail {
		t.Errorf("-j test lacks the failed expect retval XDP_TX at fail.bpfsh:5: %+v", fail.Cases)
	}
}
