// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"

	"github.com/bpfsh/bpfsh/commands"
)

// The JUnit XML that --junit writes, in the shape CI systems read:
// one <testsuite> per suite file, one <testcase> per expect line, named
// "file:line: expect ...". A failed expectation is a <failure> whose
// message is its line and whose text is its detail (the layer diff); a
// command that stopped the suite is a testcase of its own with an <error>.
type junitReport struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

// junitOf turns suite results into the report.
func junitOf(results []*suiteResult) *junitReport {
	rep := &junitReport{Name: "bpfsh test"}
	for _, r := range results {
		s := junitSuite{Name: r.file, Time: fmt.Sprintf("%.3f", r.elapsed.Seconds())}
		for _, c := range r.cases {
			jc := junitCase{Name: c.at.String() + ": " + clipMessage(c.text), Classname: r.file}
			if c.err != nil {
				p := &junitProblem{Message: clipMessage(c.err.Error()), Text: strings.TrimRight(commands.DetailOf(c.err), "\n")}
				if c.expect {
					p.Type = "expectation"
					jc.Failure = p
					s.Failures++
				} else {
					p.Type = "command"
					jc.Error = p
					s.Errors++
				}
			}
			s.Cases = append(s.Cases, jc)
			s.Tests++
		}
		rep.Tests += s.Tests
		rep.Failures += s.Failures
		rep.Errors += s.Errors
		rep.Suites = append(rep.Suites, s)
	}
	return rep
}

// writeJUnit writes the report of results to path.
func writeJUnit(path string, results []*suiteResult) error {
	data, err := xml.MarshalIndent(junitOf(results), "", "  ")
	if err != nil {
		return fmt.Errorf("test: JUnit report: %w", err)
	}
	data = append([]byte(xml.Header), append(data, '\n')...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("test: write the JUnit report: %w", err)
	}
	return nil
}
