// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/testrun"
)

// expect is what turns a script into a test: each form checks the last
// result (Session.Last) or error (Session.LastErr), or reads a map now.
var expectCmd = &Command{
	Name:  "expect",
	Short: "check the last result (a run, a packet, an error) or a map; suites are made of these",
	Long: "expect checks something about the last command and fails when it does not hold: the return value, output packet, " +
		"payload and trace lines of the last run, the error of the last command, or what a map holds now. " +
		"A failed expectation is one line saying what was wanted and what was found, with a layer diff below it for packets. " +
		"In a suite (bpfsh test) a failed expectation is counted and the suite goes on; in a script (bpfsh -c, -f, source) it " +
		"stops the script like any failing command (exit status 1) unless --keep-going. Any other failing command stops either, " +
		"unless the next line is 'expect error ...', which then checks that failure. " +
		"expect itself leaves the last result alone, so several expect lines check the same run. " +
		"TEXT may be quoted and understands the escapes \\n, \\t, \\r, \\\\ and \\xHH (\\x22 is a double quote).",
	Example:  "expect retval XDP_TX",
	KeepLast: true,
	Subs: []*Command{
		{
			Name:    "retval",
			Usage:   "NAME|NUMBER",
			Short:   "the last run returned this value",
			Long:    "retval checks the return value of the last run, by the name its program type gives it (XDP_TX, TC_ACT_SHOT, SK_PASS; the prefix may be left out: tx) or as a number.",
			Example: "expect retval XDP_TX",
			Run:     expectForm("retval", expectRetval),
		},
		{
			Name:  "packet",
			Usage: "EXPR | hex BYTES | @FILE | $NAME",
			Short: "the last run's output packet matches, layer by layer",
			Long: "packet compares the packet the last run handed back (or the packet the last 'packet' command showed) with a layer expression: " +
				"the expression's layers must be the packet's first layers, in order, and only the fields written are compared, " +
				"each in its canonical form (ttl=0x40 equals 64); '*' accepts any value, e.g. IPv4(chksum=*). " +
				"A packet given as hex or @FILE must match in every decoded field; $NAME compares with the expression it was built from. " +
				"On a mismatch the output packet is shown layer by layer with the differing fields marked '*'.",
			Example: "expect packet Ether(src=02:00:00:00:00:02, dst=02:00:00:00:00:01)/IPv4(src=10.0.0.2, chksum=*)/UDP(sport=7777)",
			Run:     expectForm("packet", expectPacket),
		},
		{
			Name:    "payload",
			Usage:   "contains TEXT",
			Short:   "the last run's output payload contains TEXT",
			Long:    "payload checks that the payload of the packet the last run handed back (its Raw layer: the bytes after the last header bpfsh decodes; the whole packet when every byte is a header) contains TEXT. For a program run through the live harness it is the bytes that arrived on any socket.",
			Example: `expect payload contains "pong"`,
			Run:     expectForm("payload", expectPayload),
		},
		{
			Name:  "map",
			Usage: "REF key KEY value VALUE | REF key KEY absent | REF count N",
			Short: "a map holds this value under a key, lacks a key, or has N entries",
			Long: "map reads the map now (not as the last run saw it). KEY and VALUE are typed by the map's BTF as for 'map lookup' " +
				"(42, 10.0.0.1, \"text\", {field: value, ...}, [1, 2], or bytes: hex 2a 00 00 00) and compared as bytes, so fields left out of " +
				"a struct literal must be zero; a mismatch shows both values. On a per-CPU map VALUE is compared with the sum over the CPUs " +
				"when the value is an integer, and with every CPU's value otherwise. 'absent' checks the key is not there; 'count N' " +
				"that the map has N entries (an array always has max_entries).",
			Example: "expect map fx/counters key 0 value 46",
			Args:    []ArgKind{ArgMapRef},
			Run:     expectForm("map", expectMap),
		},
		{
			Name:    "trace",
			Usage:   "contains TEXT",
			Short:   "a bpf_printk line of the last run contains TEXT",
			Long:    "trace checks that one of the lines the last run wrote with bpf_printk (or to its own BPF stream) contains TEXT.",
			Example: `expect trace contains "len=46"`,
			Run:     expectForm("trace", expectTrace),
		},
		{
			Name:  "file",
			Usage: "PATH contains TEXT",
			Short: "a file (relative to the working directory) exists and contains TEXT",
			Long: "file reads PATH now and checks that it contains TEXT: a suite or lesson check can look at what a step wrote " +
				"(a recorded suite, a JUnit report). A missing file fails the expectation and says so.",
			Example: `expect file ci.xml contains 'failures="0"'`,
			Run:     expectForm("file", expectFile),
		},
		{
			Name:  "error",
			Usage: "contains TEXT",
			Short: "the last command failed with an error containing TEXT",
			Long: "error checks that the command before it failed and that its error (the line, and any detail such as a verifier log) contains TEXT. " +
				"In a script a failing command followed by 'expect error' does not stop the script and its error is not shown: the expect line decides.",
			Example: `expect error contains "key not found"`,
			Run:     expectForm("error", expectErrorText),
		},
	},
}

// expectForm is the Run of "expect NAME": check, with a check that could
// not be made (a map that cannot be opened) counted as a failed
// expectation too, so that the suite goes on.
func expectForm(name string, check func(*Session, []string) error) func(*Session, []string) (Result, error) {
	return func(s *Session, args []string) (Result, error) {
		err := check(s, args)
		if err == nil || IsUsage(err) || IsExpectFailure(err) {
			return nil, err
		}
		return nil, &ExpectError{Msg: "expect " + name + ": " + err.Error()}
	}
}

// ExpectError is an expectation that did not hold. Suites count it and
// go on, where any other error stops them; scripts stop at it.
type ExpectError struct {
	// Msg is one line: what was wanted and what was found.
	Msg string
	// Diff is what to look at below that line (a layer diff, the trace
	// lines seen), or "".
	Diff string
}

func (e *ExpectError) Error() string { return e.Msg }

// Detail is shown below the message (see Detailer).
func (e *ExpectError) Detail() string { return e.Diff }

// IsExpectFailure reports whether err is, or wraps, a failed expectation.
func IsExpectFailure(err error) bool {
	var e *ExpectError
	return errors.As(err, &e)
}

func expectFailf(format string, args ...any) *ExpectError {
	return &ExpectError{Msg: fmt.Sprintf(format, args...)}
}

// lastRun is the run the expect form op checks.
func lastRun(s *Session, op string) (*RunResult, error) {
	if r, ok := runOf(s.Last); ok {
		return r, nil
	}
	return nil, expectFailf("%s: there is no run to check: the last command that succeeded did not run a program", op)
}

func expectRetval(s *Session, args []string) error {
	const op = "expect retval"
	if len(args) != 1 {
		return Usagef("%s takes one value: a name such as XDP_TX, or a number", op)
	}
	r, err := lastRun(s, op)
	if err != nil {
		return err
	}
	o := r.Outcome
	if o.Live != nil {
		return expectFailf("%s: the last run went through the live harness, where no return value is seen (it was %s)", op, o.Live.Summary)
	}
	want, err := testrun.ParseRetval(o.Type, args[0])
	if err != nil {
		return Usagef("%s: %v", op, err)
	}
	if want != o.Retval {
		return expectFailf("%s: want %s, got %s", op, retvalText(o, want), retvalText(o, o.Retval))
	}
	return nil
}

// retvalText is "XDP_TX (3)", or "7" for types whose values have no name.
func retvalText(o *testrun.Outcome, v uint32) string {
	name := testrun.RetvalName(o.Type, v)
	if num := strconv.FormatUint(uint64(v), 10); name != num {
		return name + " (" + num + ")"
	}
	return name
}

// containsArg reads "contains TEXT" (TEXT may be several words, joined
// by blanks) and resolves TEXT's escapes.
func containsArg(op string, args []string) (string, error) {
	if len(args) < 2 || args[0] != "contains" {
		return "", Usagef(`%s needs contains TEXT, e.g. %s contains "ping"`, op, op)
	}
	text, err := Unescape(strings.Join(args[1:], " "))
	if err != nil {
		return "", Usagef("%s: %v", op, err)
	}
	if text == "" {
		return "", Usagef("%s: the text is empty; everything contains it", op)
	}
	return text, nil
}

func expectFile(s *Session, args []string) error {
	const op = "expect file"
	if len(args) < 1 {
		return Usagef(`%s needs PATH contains TEXT, e.g. %s ci.xml contains 'failures="0"'`, op, op)
	}
	text, err := containsArg(op, args[1:])
	if err != nil {
		return err
	}
	b, err := os.ReadFile(args[0])
	if errors.Is(err, fs.ErrNotExist) {
		return expectFailf("%s: there is no file %s (in %s)", op, args[0], workingDir())
	}
	if err != nil {
		return expectFailf("%s: %v", op, err)
	}
	if !bytes.Contains(b, []byte(text)) {
		return expectFailf("%s: want %q in %s (%d bytes) %s", op, text, args[0], len(b), quoteBytes(b, 96))
	}
	return nil
}

// workingDir names the working directory for messages.
func workingDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "the working directory"
	}
	return wd
}

func expectTrace(s *Session, args []string) error {
	const op = "expect trace"
	text, err := containsArg(op, args)
	if err != nil {
		return err
	}
	r, err := lastRun(s, op)
	if err != nil {
		return err
	}
	var lines []string
	for _, t := range r.Outcome.Trace {
		lines = append(lines, t.Text)
	}
	for _, t := range r.Outcome.Streams {
		lines = append(lines, t.Text)
	}
	for _, l := range lines {
		if strings.Contains(l, text) {
			return nil
		}
	}
	if len(lines) == 0 {
		return expectFailf("%s: want a line containing %q; the last run wrote no trace lines", op, text)
	}
	return &ExpectError{
		Msg:  fmt.Sprintf("%s: want a line containing %q; none of the %d lines the last run wrote does", op, text, len(lines)),
		Diff: "  " + strings.Join(lines, "\n  "),
	}
}

func expectErrorText(s *Session, args []string) error {
	const op = "expect error"
	text, err := containsArg(op, args)
	if err != nil {
		return err
	}
	if s.LastErr == nil {
		return expectFailf("%s: want the last command to fail with an error containing %q; it succeeded", op, text)
	}
	got := s.LastErr.Error()
	if d := DetailOf(s.LastErr); d != "" {
		got += "\n" + d
	}
	if !strings.Contains(got, text) {
		return expectFailf("%s: want an error containing %q, got: %s", op, text, s.LastErr.Error())
	}
	return nil
}

// Unescape resolves the escapes of an expect TEXT: \n, \r, \t, \\ and
// \xHH. The shell's quotes take no escapes, so these are how a text holds
// a quote (\x22) or a byte that cannot be typed.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf(`the text ends in a lone '\'; write \\ for a backslash`)
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) {
				return "", fmt.Errorf(`\x needs two hex digits, e.g. \x22`)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf(`\x%s: want two hex digits, e.g. \x22`, s[i+1:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf(`unknown escape \%c; the escapes are \n \r \t \\ \xHH`, s[i])
		}
	}
	return b.String(), nil
}

// Escape writes s so that Unescape gives it back and the shell reads it as
// one double-quoted word: backslashes, double quotes and bytes that are not
// printable ASCII are escaped.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '"' || c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
