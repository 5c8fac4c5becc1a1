// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"
)

// checkBuiltins has one row per built-in object: what this kernel's
// verifier makes of each of its programs, so that a rejection shows up
// before a lesson's first command, not in it.
func checkBuiltins() []Check {
	builtinMu.RLock()
	objects := maps.Clone(builtins)
	maps.Copy(objects, attached)
	builtinMu.RUnlock()
	var checks []Check
	for _, name := range slices.Sorted(maps.Keys(objects)) {
		checks = append(checks, checkObject(name, objects[name]))
	}
	return checks
}

// headroomShare is the share of the verifier's limit a program may use
// before doctor warns: beyond it a slightly different kernel build may
// reject what this one takes (bpfsh's own programs stay under it on every
// kernel they are tested on).
const headroomShare = 4 // 25%

func checkObject(name string, data []byte) Check {
	c := Check{Check: "object " + name}
	verdicts, err := Verify(data)
	if err != nil {
		c.Status, c.Detail = StatusMissing, err.Error()
		if errors.Is(err, fs.ErrPermission) {
			c.Status, c.Fix = StatusWarn, "run bpfsh as root to check it"
		}
		return c
	}
	var rejected []ProgramVerdict
	largest := ProgramVerdict{}
	for _, v := range verdicts {
		if v.Err != nil {
			rejected = append(rejected, v)
		} else if v.Insns >= largest.Insns {
			largest = v
		}
	}
	if len(rejected) > 0 {
		r := rejected[0]
		if errors.Is(r.Err, fs.ErrPermission) {
			return Check{c.Check, StatusWarn, "cannot load it to check: permission denied", "run bpfsh as root"}
		}
		c.Status = StatusMissing
		c.Detail = fmt.Sprintf("%s rejected: %s", r.Program, r.Rejection())
		if len(rejected) > 1 {
			c.Detail += fmt.Sprintf(" (and %d more: %s)", len(rejected)-1, strings.Join(programsOf(rejected[1:]), ", "))
		}
		c.Fix = neededKernel(name, data)
		return c
	}
	c.Status = StatusOK
	c.Detail = fmt.Sprintf("verified: %s, the largest %s", plural(len(verdicts), "program"), largest.Program)
	if len(verdicts) == 1 {
		c.Detail = "verified: " + largest.Program
	}
	c.Detail += fmt.Sprintf(" with %s instructions processed (%d%% of the limit) in %s",
		thousands(largest.Insns), largest.Insns*100/VerifierLimit, largest.Time.Round(time.Millisecond/10))
	if largest.Insns > VerifierLimit/headroomShare {
		c.Status = StatusWarn
		c.Detail += ": close to the verifier's limit, a slightly different kernel build may reject it"
		c.Fix = "report it with this kernel's version: bpfsh's programs are meant to stay under 25% of the limit"
	}
	return c
}

// neededKernel says what a rejected built-in needs from the kernel.
func neededKernel(name string, data []byte) string {
	release, helper, err := NeededRelease(data)
	if err != nil || release == "" {
		return fmt.Sprintf("'load %s --verbose' shows the verifier's whole log", name)
	}
	need := releaseNumbers(release)
	if major, minor, err := KernelVersion(); err == nil && (major < need[0] || major == need[0] && minor < need[1]) {
		return fmt.Sprintf("use Linux %s or newer (it calls %s)", release, helper)
	}
	return fmt.Sprintf("its helpers are all here (it needs Linux %s for %s), so this kernel's verifier refuses the code itself: 'load %s --verbose' shows the log; bpfsh's programs are tested on the kernels its README lists", release, helper, name)
}

func programsOf(vs []ProgramVerdict) []string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Program
	}
	return names
}

// thousands writes n with commas: 132,516.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
