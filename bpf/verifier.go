// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
)

// VerifierTail is how many lines of a verifier log a rejection shows
// unless the user asked for all of it (--verbose).
const VerifierTail = 20

// VerifierError is a program the kernel's verifier refused. Error() is one
// line naming the program and the verifier's reason; Detail() is the log
// (its last VerifierTail lines, or all of it when Full), for the shell to
// print below that line.
type VerifierError struct {
	Object  string   // what was being loaded, e.g. "fixture.o"
	Program string   // the program's name in the ELF
	Section string   // its ELF section, e.g. "xdp"
	Reason  string   // the verifier's reason, its log's last line
	Hint    string   // what the reason means and what to do, when bpfsh knows; "" otherwise
	Log     []string // the whole verifier log
	Full    bool     // Detail shows the whole log
}

func (e *VerifierError) Error() string {
	msg := fmt.Sprintf("load %s: the verifier rejected program %s (section %s): %s", e.Object, e.Program, e.Section, e.Reason)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Detail is the relevant tail of the verifier log, or all of it.
func (e *VerifierError) Detail() string {
	lines := e.Log
	var b strings.Builder
	if !e.Full && len(lines) > VerifierTail {
		fmt.Fprintf(&b, "verifier log, last %d of %d lines (--verbose shows all):\n", VerifierTail, len(lines))
		lines = lines[len(lines)-VerifierTail:]
	} else {
		b.WriteString("verifier log:\n")
	}
	for _, l := range lines {
		b.WriteString("  ")
		b.WriteString(strings.TrimLeft(l, "\t"))
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// verifierReason picks the verifier's reason out of its log: the last line
// that is not the "processed N insns" summary or statistics. Without a log
// (the kernel gave only an errno) the errno's text is the reason.
func verifierReason(log []string, cause error) string {
	for i := len(log) - 1; i >= 0; i-- {
		l := strings.TrimSpace(log[i])
		if l == "" || strings.HasPrefix(l, "processed ") || strings.HasPrefix(l, "verification time ") ||
			strings.HasPrefix(l, "stack depth ") {
			continue
		}
		return l
	}
	if cause != nil {
		return cause.Error()
	}
	return "no reason given"
}

// asVerifierError turns cilium/ebpf's error for a rejected program into a
// *VerifierError, or returns nil when err is not a rejection with a log.
// An empty log with EPERM is a missing privilege, not a rejection.
func asVerifierError(err error, object string, prog *ebpf.ProgramSpec, full bool) *VerifierError {
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) || len(ve.Log) == 0 {
		return nil
	}
	reason := verifierReason(ve.Log, ve.Cause)
	return &VerifierError{
		Object:  object,
		Program: prog.Name,
		Section: prog.SectionName,
		Reason:  reason,
		Hint:    explainHelperRefusal(reason, prog.Type),
		Log:     ve.Log,
		Full:    full,
	}
}
