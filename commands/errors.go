// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// UsageError is a mistake in how a command was typed. Scripts exit with
// status 2 on it, where a command that failed exits with 1.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// IsUsage reports whether err is, or wraps, a usage error: a *UsageError,
// or an error from below commands/ that says it was typed wrong (a
// TypedWrong method returning true, as bpf's *NameError and testrun's
// *OptionsError have), which they cannot wrap in a *UsageError without
// importing this package.
func IsUsage(err error) bool {
	var u *UsageError
	if errors.As(err, &u) {
		return true
	}
	var tw interface{ TypedWrong() bool }
	return errors.As(err, &tw) && tw.TypedWrong()
}

// Detailer is an error with more to show than its one line, such as the
// verifier log under "the verifier rejected program ...". The shell prints
// Error() as usual and Detail() on the lines below it; in JSON mode the
// error object gets a "detail" member. Errors from bpf/ satisfy it without
// importing this package (e.g. *bpf.VerifierError).
type Detailer interface {
	Detail() string
}

// DetailOf is the detail of err or of an error it wraps; "" when none.
func DetailOf(err error) string {
	var d Detailer
	if errors.As(err, &d) {
		return d.Detail()
	}
	return ""
}

// clipWord shortens a word typed by the user for an error message that
// quotes it: the first 60 bytes and how many more there were.
func clipWord(w string) string {
	const keep = 60
	if len(w) <= keep+20 {
		return w
	}
	n := keep
	for n > 0 && !utf8.RuneStart(w[n]) {
		n--
	}
	return fmt.Sprintf("%s... (%d more bytes)", w[:n], len(w)-n)
}

// FailedResult is a finding that fails its command: the shell shows
// Result as it shows any command's result, then reports Err's line, and
// the command fails (exit 1; a script stops, as on any error). kv check
// returns one when it finds violations: the report is the answer, and
// its verdict is a failure. With -j the result's JSON is the only output:
// it carries the verdict, and a second JSON document would break readers
// of the first.
type FailedResult struct {
	Result Result
	Err    error
}

func (e *FailedResult) Error() string { return e.Err.Error() }
func (e *FailedResult) Unwrap() error { return e.Err }
