// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/hexbytes"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

var runCmd = &Command{
	Name:  "run",
	Usage: "REF [packet EXPR | hex BYTES... | @FILE | $NAME] [ctx {FIELD: VALUE, ...} | ctx hex BYTES...] [repeat N] [bench] [cpu N] [flags FLAG,...] [live [batch N]] [map REF] [sockets N] [from KEY] [wait DURATION] [notrace] [nomaps] [allmaps]",
	Short: "run a program on crafted input and show what it did",
	Long: "run runs a program once through the kernel (BPF_PROG_TEST_RUN) on the input given and shows its return value by name " +
		"(XDP_TX, TC_ACT_SHOT, SK_PASS, ...), the packet it handed back decoded layer by layer with the fields it changed marked, " +
		"the context fields it changed, the map entries the runs added, " +
		"changed or removed (the maps before the first run against after the last, so with repeat across every run; " +
		"entries that changed again without the run right afterwards are marked (+others): another writer, " +
		"such as a program attached to a live interface, shows in a before/after comparison too), " +
		"and the bpf_printk lines this run (and only this run) wrote. " +
		"Maps the program's instructions never write (a table it only looks up) are not read, since the run cannot change them: " +
		"--verbose and -j name them; allmaps reads them too, to see another writer's changes there. " +
		"Consecutive runs of a pinned program keep it and its maps open from one line to the next; any other command " +
		"(unload above all), the end of a script and the prompt release them. " +
		"The input is a packet: a layer expression after 'packet' (see 'help packet'), hex bytes, @FILE (raw bytes or a pcap) or $NAME (kept with let). " +
		"ctx fills the program's context by field name from the kernel's BTF (struct __sk_buff, xdp_md, bpf_sk_lookup, bpf_flow_keys; " +
		"a syscall program's own struct; for raw tracepoints a list of u64 arguments [1, 2]); fields the kernel refuses are named. " +
		"repeat N times N more runs, each on a fresh copy of the input (the kernel's own repeat reruns the program on its own output), " +
		"reporting min, median and p99 per run and the return values seen; bench adds the kernel's repeat over one buffer, the figure " +
		"bpftool prog run prints (bench alone: 1000 fresh runs and a kernel repeat of 100000), and 'per run' says which figure times " +
		"the path asked for. Ctrl-C stops a repeat or bench and shows the runs made. cpu N runs a raw tracepoint program on that CPU; flags takes on_cpu, live_frames, checksum_complete; " +
		"live sends XDP frames through the stack for real (repeat N frames, batch N per batch). sk_skb and sk_msg programs, which the " +
		"kernel cannot test-run, go through a live harness: loopback sockets in a private network namespace inserted into the program's " +
		"sockmap (or map REF), the input sent through key from's connection, and the report says which socket received it.",
	Example: `run fx/xdp_count packet Ether()/IPv4()/UDP(dport=6390)/Raw("ping") ctx {ingress_ifindex: 1} repeat 1000`,
	Args:    []ArgKind{ArgProgRef},
	Run:     runRun,
}

// runArgs reads the words after run's REF (see runCmd's Usage); its
// Other, for @FILE and $NAME, is set per call.
var runArgs = argSpec{
	Flags:  []string{"bench", "live", "notrace", "nomaps", "allmaps"},
	Valued: []string{"repeat", "cpu", "batch", "sockets", "from", "flags", "wait"},
	Ref:    []string{"map"},
	Take:   map[string]func([]string) int{"packet": runPacketWords, "hex": runHexWords, "ctx": runCtxWords},
	Need: map[string]string{"repeat": "a number after it", "cpu": "a number after it", "batch": "a number after it",
		"sockets": "a number after it", "from": "a number after it",
		"flags": "a value: on_cpu, live_frames, checksum_complete (comma-separated) or a number",
		"wait":  "a duration, e.g. wait 500ms", "map": "the sockmap to use (id N, pinned PATH, name NAME or NAME/OBJ)"},
}

// runPacketWords counts the words of "packet ...": hex and its bytes, an
// @FILE, or an expression (or $NAME/LAYER...) as far as its words join;
// none when the next word is another option.
func runPacketWords(after []string) int {
	switch {
	case len(after) == 0 || (runKeywords[after[0]] && after[0] != "hex"):
		return 0
	case after[0] == "hex":
		return 1 + runHexWords(after[1:])
	case strings.HasPrefix(after[0], "@"):
		return 1
	}
	return packet.ExprWords(after)
}

// runHexWords counts hex's words: up to the next keyword.
func runHexWords(after []string) int {
	n := 0
	for n < len(after) && !runKeywords[after[n]] {
		n++
	}
	return n
}

// runCtxWords counts ctx's words: one literal, or hex and its bytes.
func runCtxWords(after []string) int {
	switch {
	case len(after) == 0 || runKeywords[after[0]] && after[0] != "hex":
		return 0
	case after[0] == "hex":
		return 1 + runHexWords(after[1:])
	}
	return 1
}

// runKeywords end a run of hex words.
var runKeywords = map[string]bool{
	"packet": true, "hex": true, "ctx": true, "repeat": true, "bench": true, "cpu": true, "flags": true, "live": true, "batch": true,
	"map": true, "sockets": true, "from": true, "wait": true, "notrace": true, "nomaps": true, "allmaps": true,
}

func runRun(s *Session, args []string) (Result, error) {
	ref, rest, err := bpf.ParseRef(args, s.PinRoot)
	if err != nil {
		return nil, Usagef("run needs a program first: %v", err)
	}
	// The program, and the maps it writes, stay open for the next run
	// of a script (Session.Held).
	hp, err := s.Held().Program(ref)
	if err != nil {
		return nil, err
	}
	defer hp.Done()
	opts, cleanup, err := parseRunOptions(s, rest)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	opts.Program, opts.ProgramID = hp.Prog, hp.ID
	if hp.Held {
		opts.Held = s.Held()
	}
	opts.Context = s.Context()
	opts.Learner = runLearner(s)
	opts.WriteCheck = runWriteCheck(s)
	opts.StreamCheck = runStreamCheck(s)
	s.AtExit("trace", testrun.CloseTrace)
	o, err := testrun.Run(opts)
	var optErr *testrun.OptionsError
	switch {
	case errors.As(err, &optErr):
		return nil, Usagef("run %s: %v", ref, err)
	case err != nil:
		return nil, fmt.Errorf("run %s: %w", ref, err)
	}
	return &RunResult{Outcome: o, View: &Text{Body: formatOutcome(o, s.Verbose), JSON: outcomeJSON{o}}}, nil
}

// outcomeJSON is a run's -j object, made only when it is written: a
// script of runs shown as text would build it for nothing.
type outcomeJSON struct{ o *testrun.Outcome }

func (j outcomeJSON) MarshalJSON() ([]byte, error) { return json.Marshal(j.o.JSON()) }

// parseRunOptions reads what follows REF. cleanup closes any map it opened.
func parseRunOptions(s *Session, words []string) (testrun.Options, func(), error) {
	var opts testrun.Options
	var closers []func()
	cleanup := func() {
		for _, c := range closers {
			c()
		}
	}
	setData := func(words []string) error {
		if opts.Data != nil {
			return Usagef("run takes one packet; %q starts a second", words[0])
		}
		p, err := inputPacket("run", words, s.Vars)
		if err != nil {
			return err
		}
		opts.Data = p.Data
		if opts.Data == nil {
			opts.Data = []byte{}
		}
		return nil
	}
	sp := runArgs
	sp.Other = func(words []string) (int, error) {
		w := words[0]
		switch {
		case strings.HasPrefix(w, "@"):
			return 1, setData(words[:1])
		case strings.HasPrefix(w, "$"):
			// $NAME, $NAME/LAYER...: as many words as join it.
			n := max(packet.ExprWords(words), 1)
			return n, setData(words[:n])
		case packet.LooksLikeLayer(w):
			return 0, Usagef("unexpected %q: a layer joins the packet before it with '/' (Ether()/IPv4()), and run takes one packet", clipWord(w))
		}
		return 0, Usagef("unknown run option %q; after the program come: packet EXPR (or hex BYTES, @FILE, $NAME), ctx, repeat, bench, cpu, flags, live, batch, map, sockets, from, wait, notrace, nomaps, allmaps", clipWord(w))
	}
	_, err := sp.parse(words, func(w string, v ...string) error {
		switch w {
		case "packet":
			if len(v) == 0 {
				return setData(nil)
			}
			return setData(v)
		case "hex":
			return setData(append([]string{"hex"}, v...))
		case "ctx":
			switch {
			case len(v) == 0:
				return Usagef("ctx needs a value: {field: value, ...}, [u64, ...] or hex BYTES")
			case v[0] == "hex":
				b, _, err := hexWords(v[1:], "ctx hex")
				if err != nil {
					return err
				}
				opts.CtxRaw = b
			default:
				opts.Ctx = v
			}
		case "repeat", "cpu", "batch", "sockets", "from":
			n, err := strconv.ParseUint(v[0], 0, 31)
			if err != nil {
				return Usagef("%s %q: want a whole number", w, v[0])
			}
			switch w {
			case "repeat":
				if n == 0 {
					return Usagef("repeat 0: give 1 or more (repeat N times N runs after the one shown; without repeat the program runs once)")
				}
				opts.Repeat = int(n)
			case "cpu":
				opts.OnCPU, opts.CPU = true, uint32(n)
			case "batch":
				opts.BatchSize = uint32(n)
			case "sockets":
				opts.Harness.Sockets = int(n)
			case "from":
				opts.Harness.From = int(n)
			}
		case "bench":
			opts.Bench = true
		case "live":
			opts.LiveFrames = true
		case "notrace":
			opts.NoTrace = true
		case "nomaps":
			opts.NoMaps = true
		case "allmaps":
			opts.AllMaps = true
		case "flags":
			for _, f := range strings.Split(v[0], ",") {
				fv, err := testrun.ParseFlag(f)
				if err != nil {
					return Usagef("%v", err)
				}
				opts.Flags |= fv
			}
		case "wait":
			d, err := ParseDuration(v[0])
			if err != nil {
				return err
			}
			opts.Harness.Wait = d
		case "map":
			ref, _, err := bpf.ParseRef(v, s.PinRoot)
			if err != nil {
				return Usagef("map needs the sockmap to use: %v", err)
			}
			m, err := bpf.Map(ref)
			if err != nil {
				return err
			}
			closers = append(closers, func() { m.Close() })
			opts.Harness.Map = m
		}
		return nil
	})
	if err != nil {
		return opts, cleanup, err
	}
	// Two flags have options of their own; the runner sets their bits.
	if live, _ := testrun.ParseFlag("live_frames"); opts.Flags&live != 0 {
		opts.LiveFrames, opts.Flags = true, opts.Flags&^live
	}
	if onCPU, _ := testrun.ParseFlag("on_cpu"); opts.Flags&onCPU != 0 {
		opts.OnCPU, opts.Flags = true, opts.Flags&^onCPU
	}
	return opts, cleanup, nil
}

// hexWords reads hex bytes from the front of words ("00 11", "0011",
// "0x00") up to the first keyword, returning the bytes and how many words
// it took.
func hexWords(words []string, what string) ([]byte, int, error) {
	var out []byte
	n := 0
	for _, w := range words {
		if runKeywords[w] {
			break
		}
		b, err := hexbytes.Word(w)
		if err != nil {
			return nil, 0, Usagef("%s: %v", what, err)
		}
		out = append(out, b...)
		n++
	}
	if n == 0 {
		return nil, 0, Usagef("%s needs bytes after it, e.g. %s 00 11 22", what, what)
	}
	return out, n, nil
}

// ParseDuration reads a duration as Go writes them (1s, 500ms, 2m) or a
// plain number of seconds.
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, Usagef("%q is not a duration; write e.g. 5s, 500ms or 2m", s)
	}
	return d, nil
}

// FormatOutcome is a run's outcome as people read it.
func FormatOutcome(o *testrun.Outcome) string { return formatOutcome(o, false) }

// formatOutcome is FormatOutcome; verbose adds the maps left unread.
func formatOutcome(o *testrun.Outcome, verbose bool) string {
	var b strings.Builder
	b.Grow(512)
	line := func(label, format string, args ...any) {
		// "%-9s %s\n" of label and the formatted text, formatted once.
		b.WriteString(label)
		for n := len(label); n < 9; n++ {
			b.WriteByte(' ')
		}
		b.WriteByte(' ')
		if format == "%s" && len(args) == 1 {
			if s, ok := args[0].(string); ok {
				b.WriteString(s)
				b.WriteByte('\n')
				return
			}
		}
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	line("program", "%s (id %d, %s)", o.Program, o.ProgramID, o.TypeName)
	if l := o.Live; l != nil {
		line("harness", "%d bytes sent through key %d of sockmap %s (%s)", l.Sent, l.From, l.Map, l.Attach)
		line("verdict", "%s", l.Summary)
		if l.SendError != "" {
			line("send", "%s", l.SendError)
		}
		for _, a := range l.Arrivals {
			line("arrived", "key %d %s: %d bytes %q", a.Key, a.Side, len(a.Data), truncate(a.Data, 64))
		}
	} else {
		line("retval", "%s (%d)", o.RetvalName, o.Retval)
		if o.Timed {
			line("duration", "%d ns", o.Duration.Nanoseconds())
		}
	}
	if o.DataOut != nil {
		state := "unchanged"
		if o.PacketChanged {
			state = "changed: " + changedRanges(o.DataIn, o.DataOut)
		}
		line("packet", "%d bytes in (%s), %d out, %s", len(o.DataIn), packet.Summary(o.LayersIn), len(o.DataOut), state)
		if o.PacketChanged {
			// The layers that changed, their changed fields marked, then
			// the bytes.
			for _, d := range packet.Diff(o.LayersIn, o.LayersOut) {
				if !d.Changed && d.In != nil && d.Out != nil {
					fmt.Fprintf(&b, "    %s unchanged\n", d.Name)
					continue
				}
				b.WriteString(indent(packet.FormatDiff([]packet.LayerDiff{d}), "  "))
			}
			b.WriteString(hexdump(o.DataOut, o.DataIn))
		}
	}
	if len(o.Meta) > 0 {
		line("metadata", "%s", spacedHex(o.Meta))
	}
	for _, c := range o.Ctx {
		line("ctx", "%s: %s (was %s)", c.Field, c.After, c.Before)
	}
	for _, k := range o.FlowKeys {
		line("flow key", "%s: %s", k.Field, k.After)
	}
	if o.MapRuns > 1 && len(o.Maps) > 0 {
		line("maps", "%s", mapRunsText(o))
	}
	for _, m := range o.Maps {
		key, before, after := clip(m.Key), clip(m.Before), clip(m.After)
		others := ""
		if m.Others {
			others = "  (+others)"
		}
		switch m.Change {
		case "added":
			line("map", "%s: added %s = %s%s", m.Map, key, after, others)
		case "removed":
			line("map", "%s: removed %s (was %s)%s", m.Map, key, before, others)
		default:
			line("map", "%s: %s = %s (was %s)%s", m.Map, key, after, before, others)
		}
	}
	for _, n := range o.MapMethods {
		line("map diff", "%s", n)
	}
	if verbose {
		for _, n := range o.MapsNotRead {
			line("map diff", "%s", n)
		}
	}
	for _, n := range o.MapNotes {
		line("map note", "%s", n)
	}
	for _, t := range o.Trace {
		line("trace", "%s", t.Text)
	}
	for _, s := range o.Streams {
		line(s.Stream, "%s", s.Text)
	}
	if tm := o.Timing; tm != nil {
		b.WriteString(timingTable(tm))
	}
	for _, n := range o.Notes {
		if o.Live != nil && strings.HasPrefix(n, "live harness: ") {
			continue
		}
		line("note", "%s", n)
	}
	return b.String()
}

// mapRunsText says which runs the map changes below it cover.
func mapRunsText(o *testrun.Outcome) string {
	if o.Live != nil || o.Timing == nil {
		return fmt.Sprintf("the changes below are across all %d live frames", o.MapRuns)
	}
	parts := []string{"the run shown"}
	if tm := o.Timing; tm.Runs > 0 {
		parts = append(parts, fmt.Sprintf("%d fresh timed runs", tm.Runs))
	}
	if tm := o.Timing; tm.KernelRepeat > 0 {
		parts = append(parts, fmt.Sprintf("the kernel's repeat of %d", tm.KernelRepeat))
	}
	return fmt.Sprintf("the changes below are across all %d runs (%s); the packet and trace above are the first run's", o.MapRuns, strings.Join(parts, ", "))
}

// timingTable is a run's timing as one small table under "timing": what
// was timed and how, a row each, then the figure per run and where it
// comes from, and each caveat once.
func timingTable(tm *testrun.Timing) string {
	ns := func(d time.Duration) string { return fmt.Sprintf("%d ns", d.Nanoseconds()) }
	rows := [][]string{{"HOW", "RUNS", "MIN", "MEDIAN", "P99", "RETURNED"}}
	if tm.Runs > 0 {
		var rv []string
		for _, r := range tm.Retvals {
			rv = append(rv, fmt.Sprintf("%s x%d", r.Name, r.Count))
		}
		how := "fresh copy of the input each run (" + tm.Clock + " clock)"
		rows = append(rows, []string{how, strconv.Itoa(tm.Runs), ns(tm.Min), ns(tm.Median), ns(tm.P99), strings.Join(rv, ", ")})
	}
	if tm.KernelRepeat > 0 {
		rows = append(rows, []string{"kernel repeat over one buffer (bpftool prog run)", strconv.FormatUint(uint64(tm.KernelRepeat), 10), "", ns(tm.KernelAvg) + " avg", "", "last run " + tm.KernelRetval})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	var b strings.Builder
	for i, r := range rows {
		label := ""
		if i == 0 {
			label = "timing"
		}
		line := fmt.Sprintf("%-9s", label)
		for j, c := range r {
			if j == len(r)-1 {
				line += " " + c
			} else {
				line += fmt.Sprintf(" %-*s ", widths[j], c)
			}
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	fmt.Fprintf(&b, "%-9s %s: %s\n", "per run", ns(tm.PerRun()), tm.PerRunSource())
	if tm.Interrupted {
		made := fmt.Sprintf("%d of %d fresh runs", tm.Runs, tm.Asked)
		if tm.KernelAsked > 0 {
			made += fmt.Sprintf(", %d of %d kernel repeats", tm.KernelRepeat, tm.KernelAsked)
		}
		fmt.Fprintf(&b, "%-9s by Ctrl-C after %s: the figures are of the runs made\n", "stopped", made)
	}
	for _, w := range tm.Warnings {
		fmt.Fprintf(&b, "%-9s %s\n", "caveat", w)
	}
	return b.String()
}

// changedRanges says which byte offsets differ, e.g. "bytes 0-11".
func changedRanges(in, out []byte) string {
	var parts []string
	start := -1
	n := max(len(in), len(out))
	for i := 0; i <= n; i++ {
		diff := i < n && (i >= len(in) || i >= len(out) || in[i] != out[i])
		switch {
		case diff && start < 0:
			start = i
		case !diff && start >= 0:
			if start == i-1 {
				parts = append(parts, strconv.Itoa(start))
			} else {
				parts = append(parts, fmt.Sprintf("%d-%d", start, i-1))
			}
			start = -1
		}
	}
	if len(parts) > 6 {
		parts = append(parts[:6], "...")
	}
	return "bytes " + strings.Join(parts, ", ")
}

// hexdump shows b 16 bytes a line, with bytes that differ from was marked.
func hexdump(b, was []byte) string {
	var sb strings.Builder
	for off := 0; off < len(b); off += 16 {
		fmt.Fprintf(&sb, "  %04x ", off)
		for i := off; i < off+16; i++ {
			if i >= len(b) {
				sb.WriteString("   ")
				continue
			}
			mark := " "
			if i >= len(was) || was[i] != b[i] {
				mark = "*"
			}
			fmt.Fprintf(&sb, "%s%02x", mark, b[i])
		}
		sb.WriteString("  ")
		for i := off; i < min(off+16, len(b)); i++ {
			c := b[i]
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			sb.WriteByte(c)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// clipAt is how much of a key or value a map-change line shows: a
// per-CPU scratch buffer of kilobytes would bury the rest of the run.
// The whole value is in -j output and in map lookup.
const clipAt = 120

// clip shortens text to clipAt characters, saying how much was left out.
func clip(text string) string {
	if len(text) <= clipAt {
		return text
	}
	return fmt.Sprintf("%s ... (%d more characters; -j or map lookup shows all)", text[:clipAt], len(text)-clipAt)
}

// indent puts prefix before every line of text.
func indent(text, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		b.WriteString(prefix + line)
	}
	return b.String()
}

func spacedHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, " ")
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
