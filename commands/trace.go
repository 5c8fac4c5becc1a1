// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun"
)

var traceCmd = &Command{
	Name:  "trace",
	Usage: "[prog REF] [grep REGEXP] [for DURATION] [global]",
	Short: "stream bpf_printk output as it comes",
	Long: "trace streams the lines BPF programs print with bpf_printk, as they come, until Ctrl-C or the time given with for. " +
		"grep keeps the lines that match a regular expression. By default trace reads a private trace instance of its own that " +
		"receives every bpf_printk line: it takes nothing from other readers of /sys/kernel/tracing/trace_pipe and they take nothing " +
		"from it. global reads trace_pipe itself (every enabled trace event, not only bpf_printk); trace_pipe hands each line to one " +
		"reader only, so trace says when another process reads it too. prog REF reads that program's own BPF streams instead " +
		"(bpf_stream_printk output and the kernel's fault reports, Linux 6.17 and later), which nothing else shares.",
	Example: "trace grep 'xdp_count' for 10s",
	Args:    []ArgKind{ArgProgRef},
	Run:     runTrace,
}

// traceArgs reads trace's words (see traceCmd's Usage).
var traceArgs = argSpec{
	Flags:  []string{"global"},
	Valued: []string{"grep", "for"},
	Ref:    []string{"prog"},
	Need:   map[string]string{"grep": "a regular expression", "for": "a duration, e.g. for 10s", "prog": "a program"},
	Takes:  "trace takes prog REF, grep REGEXP, for DURATION and global",
}

func runTrace(s *Session, args []string) (Result, error) {
	var (
		opts testrun.TraceOptions
		prog *bpf.Ref
	)
	_, err := traceArgs.parse(args, func(w string, v ...string) error {
		switch w {
		case "grep":
			re, err := regexp.Compile(v[0])
			if err != nil {
				return Usagef("grep %q: %v", v[0], regexpReason(err))
			}
			opts.Grep = re
		case "for":
			d, err := ParseDuration(v[0])
			if err != nil {
				return err
			}
			if d == 0 {
				return Usagef("for 0 would end before it starts; give a duration such as 5s")
			}
			opts.For = d
		case "global":
			opts.Global = true
		case "prog":
			ref, _, err := bpf.ParseRef(v, s.PinRoot)
			if err != nil {
				return Usagef("prog needs a program: %v", err)
			}
			prog = &ref
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ctx := s.Context()
	if prog != nil {
		if opts.Global {
			return nil, Usagef("prog and global do not go together: a program's streams are its own")
		}
		p, err := bpf.Program(*prog)
		if err != nil {
			return nil, err
		}
		if err := testrun.ProgStreamsSupported(); err != nil {
			p.Close()
			return nil, fmt.Errorf("trace prog %s: %w", prog, err)
		}
		writeErr := testrun.StreamWritesWork()
		return &Stream{
			Columns: []string{"stream", "text"},
			Live:    true,
			Widths:  []int{6},
			Each: func(emit func([]string, any) error) error {
				defer p.Close()
				if writeErr != nil {
					// Reading works, but nothing will ever be written: say so
					// rather than stream silence.
					n := "note: " + writeErr.Error()
					if err := emit([]string{"", n}, map[string]string{"note": n}); err != nil {
						return err
					}
				}
				return testrun.TraceProg(ctx, p, opts.For, func(l testrun.StreamLine) error {
					if opts.Grep != nil && !opts.Grep.MatchString(l.Text) {
						return nil
					}
					return emit([]string{l.Stream, l.Text}, l)
				})
			},
		}, nil
	}
	if err := bpf.EnsureTraceFS(); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	var notes []string
	if opts.Global {
		for _, r := range testrun.TracePipeReaders() {
			notes = append(notes, fmt.Sprintf("note: %s also reads trace_pipe; each line goes to one reader only, so lines it reads are missing here (drop 'global' to read a private copy)", r))
		}
	}
	s.AtExit("trace", testrun.CloseTrace)
	return &Stream{
		Columns: []string{"time", "cpu", "task", "pid", "text"},
		Live:    true,
		Widths:  []int{14, 3, 16, 7},
		Each: func(emit func([]string, any) error) error {
			for _, n := range notes {
				if err := emit([]string{"", "", "", "", n}, map[string]string{"note": n}); err != nil {
					return err
				}
			}
			return testrun.Trace(ctx, opts, func(l testrun.TraceLine) error {
				text := l.Text
				if l.Event != "" && l.Event != "bpf_trace_printk" {
					text = l.Event + ": " + text
				}
				return emit([]string{l.Time, strconv.Itoa(l.CPU), l.Task, strconv.Itoa(l.PID), text}, l)
			})
		},
	}, nil
}

// regexpReason is the part of a regexp error after its boilerplate.
func regexpReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
