// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/fixture"
)

func TestCheckObject(t *testing.T) {
	requireRoot(t)
	c := checkObject("fixture", fixture.FixtureObject())
	if c.Status != StatusOK || !strings.Contains(c.Detail, "verified: 3 programs, the largest ") || !strings.Contains(c.Detail, "instructions processed") {
		t.Errorf("fixture: %+v", c)
	}
	c = checkObject("reject", fixture.RejectObject())
	if c.Status != StatusMissing || !strings.HasPrefix(c.Detail, "xdp_unchecked rejected: R0 invalid mem access 'map_value_or_null'") {
		t.Errorf("reject: %+v", c)
	}
	if !strings.Contains(c.Fix, "this kernel's verifier refuses the code itself") {
		t.Errorf("reject's fix: %q", c.Fix)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 132516: "132,516", 1000001: "1,000,001"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q", n, got)
		}
	}
}
