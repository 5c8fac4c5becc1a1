// SPDX-License-Identifier: Apache-2.0

// Command testsum reads `go test -json` on stdin and prints what a person
// (or CI) needs: the output of failed tests, every skipped test with its
// reason, and the closing line "N passed, N failed, N skipped". It exits 1
// when a test or a package failed. With -label L the closing line reads
// "L: N passed, N failed, N skipped" (the kernel matrix labels each kernel).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

// event is one line of test2json output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	label := flag.String("label", "", "what the closing line is about, printed before it")
	flag.Parse()
	prefix := ""
	if *label != "" {
		prefix = *label + ": "
	}
	output := map[string]*strings.Builder{} // package/test -> its output
	var passed, failed, skipped []string
	failedPkgs := 0
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // a build error, printed as is
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			b.WriteString(e.Output)
		case "build-output":
			fmt.Print(e.Output)
		case "build-fail":
			failedPkgs++
		case "pass":
			if e.Test != "" {
				passed = append(passed, key)
			}
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, key)
			}
		case "fail":
			if e.Test == "" {
				failedPkgs++
				if b := output[key]; b != nil {
					fmt.Printf("--- FAIL package %s\n%s", e.Package, b.String())
				}
				continue
			}
			failed = append(failed, key)
			fmt.Printf("--- FAIL %s\n%s", key, output[key].String())
		}
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Printf("%d tests skipped:\n", len(skipped))
		for _, key := range skipped {
			fmt.Printf("  %s: %s\n", key, skipReason(output[key]))
		}
	}
	fmt.Printf("%s%d passed, %d failed, %d skipped\n", prefix, len(passed), len(failed), len(skipped))
	if len(failed) > 0 || failedPkgs > 0 {
		os.Exit(1)
	}
}

// skipReason is the message the test gave t.Skip, from its output.
func skipReason(b *strings.Builder) string {
	if b == nil {
		return "(no reason given)"
	}
	var lines []string
	for line := range strings.Lines(b.String()) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "=== ") || strings.HasPrefix(line, "--- SKIP") {
			continue
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return "(no reason given)"
	}
	return strings.Join(lines, " / ")
}
