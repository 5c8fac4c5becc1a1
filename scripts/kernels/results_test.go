// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// A guest's ttyS1 stream splits into packages at /init's markers, a
// marker after output without a newline included, and the newline /init
// writes before each marker is not part of any package's output.
func TestParseResults(t *testing.T) {
	raw := "\n@@matrix kernel 6.1.0-57-amd64\n" +
		"\n@@matrix insmod-failed /lib/modules/veth.ko File exists\n" +
		"\n@@matrix start example.com/a\n" +
		"\x16=== RUN   TestA\n\x16--- PASS: TestA (0.00s)\n\x16PASS\n" +
		"\n@@matrix exit example.com/a 0 10.50 12.75\n" +
		"\n@@matrix start example.com/b\n" +
		"partial line" +
		"\n@@matrix exit example.com/b 2 13.00 13.50\n" +
		"\n@@matrix start example.com/c\n" +
		"\x16=== RUN   TestC\n"
	g := parseResults([]byte(raw))
	if g.Release != "6.1.0-57-amd64" || g.Done || len(g.Insmod) != 1 || !strings.Contains(g.Insmod[0], "veth.ko") {
		t.Fatalf("parsed %+v", g)
	}
	if len(g.Segments) != 3 {
		t.Fatalf("%d segments, want 3", len(g.Segments))
	}
	a, b, c := g.Segments[0], g.Segments[1], g.Segments[2]
	if a.Pkg != "example.com/a" || !a.Exited || a.Code != 0 || a.Seconds != 2.25 || !bytes.HasSuffix(a.Out, []byte("PASS\n")) {
		t.Errorf("a: %+v %q", a, a.Out)
	}
	if string(b.Out) != "partial line\n" || b.Code != 2 {
		t.Errorf("b: %+v %q", b, b.Out)
	}
	if c.Exited {
		t.Errorf("c exited: %+v", c)
	}
	if g := parseResults([]byte(raw + "\n@@matrix exit example.com/c 0 1 2\n\n@@matrix done\n")); !g.Done {
		t.Error("done not seen")
	}
}

// A binary that ended without a verdict, or a guest that died under it,
// counts as a failed package with the reason in its output.
func TestSegmentVerdicts(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipped: needs go tool test2json")
	}
	pass := "\x16=== RUN   TestA\n\x16--- PASS: TestA (0.00s)\n\x16PASS\n"
	for _, c := range []struct {
		name    string
		s       segment
		fail    bool
		because string
	}{
		{"passed", segment{Pkg: "x", Out: []byte(pass), Exited: true}, false, ""},
		{"died", segment{Pkg: "x", Out: []byte("\x16=== RUN   TestA\n")}, true, "the guest stopped"},
		{"exit status", segment{Pkg: "x", Out: []byte(pass), Exited: true, Code: 2}, true, "exited with status 2"},
	} {
		js, err := c.s.toJSON()
		if err != nil {
			t.Fatal(err)
		}
		failed := bytes.Contains(js, []byte(`{"Action":"fail","Package":"x"}`))
		if failed != c.fail || !bytes.Contains(js, []byte(c.because)) {
			t.Errorf("%s: failed %v, want %v, output:\n%s", c.name, failed, c.fail, js)
		}
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/veth.ko":              "veth",
		"kernel/net/sched/sch_ingress.ko.xz":      "sch_ingress",
		"/x/lib/modules/r/kernel/a/nf-nat.ko.zst": "nf_nat",
		"cls_bpf": "cls_bpf",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}
