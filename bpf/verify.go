// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// VerifierLimit is the most instructions the kernel's verifier processes
// for one program before it gives up (BPF_COMPLEXITY_LIMIT_INSNS).
const VerifierLimit = 1_000_000

// ProgramVerdict is what this kernel's verifier made of one program.
type ProgramVerdict struct {
	Program string        `json:"program"`
	Type    string        `json:"type"`
	Insns   int           `json:"verified_insns"` // instructions processed; 0 when rejected
	Time    time.Duration `json:"verify_time_ns"` // as the verifier measured it; 0 when it did not say
	Err     error         `json:"-"`              // the rejection (often a *VerifierError); nil when accepted
}

// Verify loads every program of the BPF ELF data into the kernel, one at a
// time against one set of the object's maps, and says what the verifier
// made of each; nothing is pinned and everything is closed again. An error
// is returned only when the object cannot be read or its maps cannot be
// created; a rejected program is a verdict.
func Verify(data []byte) ([]ProgramVerdict, error) {
	spec, err := readSpec(data)
	if err != nil {
		return nil, err
	}
	if _, err := planPins(spec); err != nil {
		return nil, err
	}
	raiseMemlock()
	cache := btf.NewCache()
	mapsOnly := spec.Copy()
	mapsOnly.Programs = map[string]*ebpf.ProgramSpec{}
	for _, m := range mapsOnly.Maps {
		m.Pinning = ebpf.PinNone
	}
	maps, err := ebpf.NewCollectionWithOptions(mapsOnly, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return nil, fmt.Errorf("create the object's maps: %w", err)
	}
	defer maps.Close()

	var verdicts []ProgramVerdict
	for _, name := range programNames(spec) {
		one := spec.Copy()
		if _, err := keepOnly(one, []string{name}); err != nil {
			return nil, err
		}
		v := ProgramVerdict{Program: name, Type: ProgTypeName(uint32(one.Programs[name].Type))}
		coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
			MapReplacements: maps.Maps,
			Cache:           cache,
			// Stats only: the reason of a rejection and the totals,
			// without a line per instruction (a program that runs into
			// the limit would otherwise log gigabytes).
			Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
		})
		if err != nil {
			v.Err = explainLoad(err, one, "program "+name, false)
		} else {
			v.Insns, v.Time = verifierStats(coll.Programs[name].VerifierLog)
			if info, err := coll.Programs[name].Info(); err == nil {
				if n, ok := info.VerifiedInstructions(); ok {
					v.Insns = int(n)
				}
			}
			coll.Close()
		}
		verdicts = append(verdicts, v)
	}
	return verdicts, nil
}

var (
	processedLine = regexp.MustCompile(`processed (\d+) insns`)
	timeLine      = regexp.MustCompile(`verification time (\d+) usec`)
)

// verifierStats reads the processed instruction count and the
// verification time from a verifier log at LogLevelStats.
func verifierStats(log string) (insns int, took time.Duration) {
	if m := processedLine.FindStringSubmatch(log); m != nil {
		insns, _ = strconv.Atoi(m[1])
	}
	if m := timeLine.FindStringSubmatch(log); m != nil {
		us, _ := strconv.Atoi(m[1])
		took = time.Duration(us) * time.Microsecond
	}
	return insns, took
}

// NeededRelease is the oldest Linux release that has every helper the
// object's programs call, and the helper that sets it ("5.18",
// "bpf_xdp_load_bytes"). It says nothing of kfuncs, map types or the
// verifier's own progress, which can demand more.
func NeededRelease(data []byte) (release, helper string, err error) {
	spec, err := readSpec(data)
	if err != nil {
		return "", "", err
	}
	var best [2]int
	for _, name := range programNames(spec) {
		for _, ins := range spec.Programs[name].Instructions {
			if !ins.IsBuiltinCall() {
				continue
			}
			fn := asm.BuiltinFunc(ins.Constant)
			rel := HelperRelease(fn)
			if v := releaseNumbers(rel); rel != "" && slices.Compare(v[:], best[:]) > 0 {
				best, release, helper = v, rel, HelperName(fn)
			}
		}
	}
	return release, helper, nil
}

// releaseNumbers splits "5.18" into {5, 18}.
func releaseNumbers(rel string) [2]int {
	major, minor, err := parseRelease(rel)
	if err != nil {
		return [2]int{}
	}
	return [2]int{major, minor}
}

// Rejection is the one-line reason of a verdict's error: the verifier's
// reason and what it means, without the "load ...:" prefix.
func (v ProgramVerdict) Rejection() string {
	var ve *VerifierError
	if errors.As(v.Err, &ve) {
		if ve.Hint != "" {
			return ve.Reason + "; " + ve.Hint
		}
		return ve.Reason
	}
	if v.Err != nil {
		return v.Err.Error()
	}
	return ""
}
