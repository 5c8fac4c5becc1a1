// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// segment is one package's run in a guest, as /init framed it.
type segment struct {
	Pkg      string
	Out      []byte  // the test binary's -test.v=test2json output
	Exited   bool    // the exit line came: the binary ended
	Code     int     // its exit status
	Seconds  float64 // its wall time in the guest
	Finished bool
}

// guestRun is what a guest's ttyS1 said.
type guestRun struct {
	Release  string   // uname -r
	Insmod   []string // modules that did not load, with why
	Segments []*segment
	Done     bool // "@@matrix done": every package ran
}

const marker = "@@matrix "

// parseResults splits the ttyS1 stream on /init's marker lines. /init
// writes a newline before each marker, so that a marker always starts a
// line even after output that did not end in one; that extra empty line
// is dropped here.
func parseResults(b []byte) *guestRun {
	r := &guestRun{}
	var cur *segment
	lines := strings.SplitAfter(string(b), "\n")
	for i, line := range lines {
		if line == "\n" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], marker) {
			continue
		}
		rest, ok := strings.CutPrefix(line, marker)
		if !ok {
			if cur != nil {
				cur.Out = append(cur.Out, line...)
			}
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "kernel":
			if len(f) > 1 {
				r.Release = f[1]
			}
		case "insmod-failed":
			r.Insmod = append(r.Insmod, strings.Join(f[1:], " "))
		case "start":
			if len(f) > 1 {
				cur = &segment{Pkg: f[1]}
				r.Segments = append(r.Segments, cur)
			}
		case "exit":
			if cur != nil && len(f) >= 3 && f[1] == cur.Pkg {
				cur.Exited = true
				cur.Code, _ = strconv.Atoi(f[2])
				if len(f) >= 5 {
					a, _ := strconv.ParseFloat(f[3], 64)
					z, _ := strconv.ParseFloat(f[4], 64)
					cur.Seconds = z - a
				}
				cur = nil
			}
		case "done":
			r.Done = true
		}
	}
	return r
}

// event is one line of test2json output (the fields testsum reads).
type event struct {
	Action  string
	Package string
	Test    string `json:",omitempty"`
	Output  string `json:",omitempty"`
}

// toJSON turns a segment into `go test -json` lines with go tool
// test2json, the converter go test itself uses. A binary that ended
// without its own verdict (a crash outside any test, a guest that died
// under it) gets a package failure that says so, the way go test reports
// "FAIL pkg" for a binary that exited badly.
func (s *segment) toJSON() ([]byte, error) {
	cmd := exec.Command("go", "tool", "test2json", "-p", s.Pkg)
	cmd.Stdin = bytes.NewReader(s.Out)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool test2json -p %s: %w", s.Pkg, err)
	}
	verdict := ""
	for line := range bytes.Lines(out) {
		var e event
		if json.Unmarshal(line, &e) == nil && e.Test == "" && (e.Action == "pass" || e.Action == "fail") {
			verdict = e.Action
		}
	}
	why := ""
	switch {
	case !s.Exited:
		why = "the guest stopped while this package's tests ran (see the console tail)"
	case s.Code != 0 && verdict != "fail":
		why = fmt.Sprintf("the test binary exited with status %d", s.Code)
	case verdict == "":
		why = "the test binary gave no verdict"
	}
	if why != "" {
		var extra bytes.Buffer
		enc := json.NewEncoder(&extra)
		enc.Encode(event{Action: "output", Package: s.Pkg, Output: why + "\n"})
		enc.Encode(event{Action: "fail", Package: s.Pkg})
		out = append(out, extra.Bytes()...)
	}
	return out, nil
}

// summaryLine matches testsum's closing line.
var summaryLine = regexp.MustCompile(`(\d+) passed, (\d+) failed, (\d+) skipped`)

// counts reads testsum's closing line.
func counts(testsumOut string) (passed, failed, skipped int, ok bool) {
	m := summaryLine.FindAllStringSubmatch(testsumOut, -1)
	if len(m) == 0 {
		return 0, 0, 0, false
	}
	last := m[len(m)-1]
	passed, _ = strconv.Atoi(last[1])
	failed, _ = strconv.Atoi(last[2])
	skipped, _ = strconv.Atoi(last[3])
	return passed, failed, skipped, true
}
