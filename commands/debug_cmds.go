// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// debugTable is the commands of a debug session (Session.Mode): gdb's
// words, each short form a command of its own so that it is exact.
var debugTable []*Command

func init() {
	type def struct {
		names []string
		usage string
		short string
		run   func(d *debugSession, args []string) (Result, error)
	}
	move := func(f func(d *debugSession, args []string) (emu.Stop, error)) func(d *debugSession, args []string) (Result, error) {
		return func(d *debugSession, args []string) (Result, error) {
			if d.s.Done() {
				return nil, fmt.Errorf("the program has returned; go back with reverse-step or reverse-continue, or quit")
			}
			st, err := f(d, args)
			if err != nil {
				return nil, err
			}
			return d.stopResult(st), nil
		}
	}
	back := func(f func(d *debugSession, args []string) (emu.Stop, error)) func(d *debugSession, args []string) (Result, error) {
		return func(d *debugSession, args []string) (Result, error) {
			st, err := f(d, args)
			if err != nil {
				return nil, err
			}
			if st.Reason == emu.StopStart || st.Step == 0 {
				var b strings.Builder
				d.shown = len(d.s.Events())
				b.WriteString("at the start of the program\n")
				d.showPlace(&b, st.PC, st.Step, st.Func, st.Line)
				return &Text{Body: strings.TrimRight(b.String(), "\n"), JSON: st}, nil
			}
			d.shown = len(d.s.Events())
			return d.stopResult(st), nil
		}
	}
	defs := []def{
		{[]string{"step", "s"}, "", "run to the next source line, into calls and callbacks", move(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.Step(), nil })},
		{[]string{"next", "n"}, "", "run to the next source line, over calls", move(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.Next(), nil })},
		{[]string{"stepi", "si"}, "[N]", "run one instruction (or N)", move(func(d *debugSession, a []string) (emu.Stop, error) {
			n, err := countArg(a)
			if err != nil {
				return emu.Stop{}, err
			}
			return d.s.StepInsn(n), nil
		})},
		{[]string{"nexti", "ni"}, "[N]", "run one instruction (or N), over calls", move(func(d *debugSession, a []string) (emu.Stop, error) {
			n, err := countArg(a)
			if err != nil {
				return emu.Stop{}, err
			}
			return d.s.NextInsn(n), nil
		})},
		{[]string{"continue", "c"}, "", "run to a breakpoint, a watchpoint or the end", move(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.Continue(), nil })},
		{[]string{"finish"}, "", "run until the current function returns", move(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.Finish() })},
		{[]string{"until", "u"}, "[LINE]", "run to a later line of this function (out of a loop), or to LINE", move(func(d *debugSession, a []string) (emu.Stop, error) {
			if len(a) == 0 {
				return d.s.Until(), nil
			}
			loc, err := emu.ParseLocation(strings.Join(a, " "))
			if err != nil {
				return emu.Stop{}, Usagef("%v", err)
			}
			return d.s.Advance(loc)
		})},
		{[]string{"advance"}, "LOC", "run to LOC (FILE:LINE, LINE, FUNC, *INSN)", move(func(d *debugSession, a []string) (emu.Stop, error) {
			loc, err := emu.ParseLocation(strings.Join(a, " "))
			if err != nil {
				return emu.Stop{}, Usagef("%v", err)
			}
			return d.s.Advance(loc)
		})},
		{[]string{"reverse-step", "rs"}, "", "go back to the previous source line", back(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.ReverseStep() })},
		{[]string{"reverse-next", "rn"}, "", "go back to the previous source line, over calls", back(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.ReverseNext() })},
		{[]string{"reverse-stepi", "rsi"}, "[N]", "go back one instruction (or N)", back(func(d *debugSession, a []string) (emu.Stop, error) {
			n, err := countArg(a)
			if err != nil {
				return emu.Stop{}, err
			}
			return d.s.ReverseStepInsn(n)
		})},
		{[]string{"reverse-continue", "rc"}, "", "go back to the previous breakpoint (or the start)", back(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.ReverseContinue() })},
		{[]string{"reverse-finish"}, "", "go back to where the current function was called", back(func(d *debugSession, _ []string) (emu.Stop, error) { return d.s.ReverseFinish() })},
		{[]string{"break", "b"}, "FILE:LINE | LINE | FUNC | *INSN [if EXPR]", "stop before a line, function or instruction", debugBreak},
		{[]string{"delete", "d"}, "[N]", "delete breakpoint or watchpoint N (all without N)", debugDelete},
		{[]string{"watch"}, "EXPR", "stop when the value at EXPR changes", debugWatch},
		{[]string{"regs"}, "", "the registers and where they point", debugRegs},
		{[]string{"print", "p"}, "EXPR", "a value: register, memory, C variable, field", debugPrint},
		{[]string{"x"}, "EXPR [N]", "N bytes (16) at the address EXPR, in hex", debugExamine},
		{[]string{"list", "l"}, "[LINE]", "the source around the current line", debugList},
		{[]string{"backtrace", "bt"}, "", "the frames, innermost first", debugBacktrace},
		{[]string{"events"}, "", "helper calls and printk lines so far", debugEvents},
		{[]string{"packet"}, "", "the packet as it is now, decoded, the bytes changed so far marked", debugPacket},
		{[]string{"set"}, "rN = V | *(TYPE *)(rN + OFF) = V | VAR = V", "change a register or memory", debugSet},
		{[]string{"check"}, "", "the kernel's verdict on this input", func(d *debugSession, _ []string) (Result, error) {
			return &Message{Text: d.verdict()}, nil
		}},
	}
	for _, df := range defs {
		for _, name := range df.names {
			run := df.run
			debugTable = append(debugTable, &Command{Name: name, Usage: df.usage, Short: df.short, Long: df.short + " (inside a debug session; see help debug)", Example: name,
				Run: func(s *Session, args []string) (Result, error) {
					d, err := debugNeed(s)
					if err != nil {
						return nil, err
					}
					return run(d, args)
				}})
		}
	}
	info := &Command{Name: "info", Usage: "breakpoints | watchpoints | locals | registers | maps | frame", Short: "breakpoints, watchpoints, locals, registers, maps",
		Long: "info shows the session's breakpoints, watchpoints, C variables in scope (info locals), registers or maps.", Example: "info locals"}
	for _, sub := range []struct {
		name string
		run  func(d *debugSession, args []string) (Result, error)
	}{
		{"breakpoints", debugInfoBreaks}, {"watchpoints", debugInfoBreaks}, {"locals", debugLocals}, {"args", debugLocals},
		{"registers", debugRegs}, {"maps", debugInfoMaps}, {"frame", debugBacktrace},
	} {
		run := sub.run
		info.Subs = append(info.Subs, &Command{Name: sub.name, Short: "info " + sub.name, Long: "info " + sub.name + " (inside a debug session)", Example: "info " + sub.name,
			Run: func(s *Session, args []string) (Result, error) {
				d, err := debugNeed(s)
				if err != nil {
					return nil, err
				}
				return run(d, args)
			}})
	}
	quit := &Command{Name: "quit", Short: "end the debug session", Long: "quit ends the debug session and shows the kernel's verdict when the program has returned.", Example: "quit",
		Run: func(s *Session, _ []string) (Result, error) {
			d, err := debugNeed(s)
			if err != nil {
				return nil, err
			}
			msg := "debug session of " + d.ref + " ended"
			if d.s.Done() {
				msg += ": " + d.verdict()
			}
			if d.commit {
				msg += "\n" + d.commitChanges()
			}
			debugEnd(s)
			return &Message{Text: msg}, nil
		}}
	q := *quit
	q.Name = "q"
	debugTable = append(debugTable, info, quit, &q)
}

func debugBreak(d *debugSession, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("break needs a location: FILE:LINE, LINE, FUNC or *INSN")
	}
	locWords, condWords := args, []string(nil)
	for i, a := range args {
		if a == "if" {
			locWords, condWords = args[:i], args[i+1:]
			break
		}
	}
	loc, err := emu.ParseLocation(strings.Join(locWords, " "))
	if err != nil {
		return nil, Usagef("%v", err)
	}
	var cond func(*emu.Session) bool
	condText := strings.Join(condWords, " ")
	if len(condWords) > 0 {
		if cond, err = d.condition(condText); err != nil {
			return nil, err
		}
	}
	bp, err := d.s.Break(loc, cond, condText)
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf("breakpoint %d at %s (instruction %s)", bp.ID, loc, joinInts(bp.PCs))
	if condText != "" {
		text += " if " + condText
	}
	return &Message{Text: text, Data: bp}, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func debugDelete(d *debugSession, args []string) (Result, error) {
	if len(args) == 0 {
		for _, bp := range d.s.Breakpoints() {
			d.s.DeleteBreakpoint(bp.ID)
		}
		for _, w := range d.s.Watches() {
			d.s.DeleteWatch(w.ID)
		}
		return &Message{Text: "deleted every breakpoint and watchpoint"}, nil
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return nil, Usagef("delete takes a breakpoint number, got %q", args[0])
	}
	if err := d.s.DeleteBreakpoint(n); err != nil {
		if werr := d.s.DeleteWatch(n); werr != nil {
			return nil, err
		}
	}
	return &Message{Text: fmt.Sprintf("deleted %d", n)}, nil
}

func debugWatch(d *debugSession, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("watch needs an expression: *(u32 *)(r6 + 4), r7->packets, a variable")
	}
	v, err := d.eval(strings.Join(args, " "))
	if err != nil {
		return nil, err
	}
	if !v.lvalue {
		return nil, fmt.Errorf("watch %s: the value is in a register, not memory; watch a memory location (*(u32 *)(rN + OFF), rN->field)", strings.Join(args, " "))
	}
	w, err := d.s.WatchAddr(v.addr, v.size, nil, "")
	if err != nil {
		return nil, err
	}
	return &Message{Text: fmt.Sprintf("watchpoint %d: %s (%s)", w.ID, strings.Join(args, " "), w.Text), Data: w}, nil
}

func debugInfoBreaks(d *debugSession, _ []string) (Result, error) {
	t := &Table{Columns: []string{"id", "what", "where", "hits", "condition"}}
	for _, bp := range d.s.Breakpoints() {
		t.Rows = append(t.Rows, []string{strconv.Itoa(bp.ID), "breakpoint", bp.Loc.String() + " (insn " + joinInts(bp.PCs) + ")", strconv.Itoa(bp.Hits), bp.CondText})
	}
	for _, w := range d.s.Watches() {
		t.Rows = append(t.Rows, []string{strconv.Itoa(w.ID), "watchpoint", w.Text, strconv.Itoa(w.Hits), w.CondText})
	}
	if len(t.Rows) == 0 {
		return &Message{Text: "no breakpoints or watchpoints"}, nil
	}
	return t, nil
}

func debugRegs(d *debugSession, _ []string) (Result, error) {
	t := &Table{Columns: []string{"reg", "value", "points to"}}
	for _, r := range d.s.Regs() {
		where := ""
		if r.Ptr != nil {
			where = r.Ptr.Text
		}
		t.Rows = append(t.Rows, []string{r.Name, fmt.Sprintf("%#x (%d)", r.Value, int64(r.Value)), where})
	}
	t.JSON = d.s.Regs()
	return t, nil
}

func debugLocals(d *debugSession, _ []string) (Result, error) {
	vars, err := d.s.Locals(0)
	if err != nil {
		return nil, err
	}
	if len(vars) == 0 {
		return &Message{Text: "no C variables in scope here"}, nil
	}
	t := &Table{Columns: []string{"name", "type", "value", "where"}}
	for _, v := range vars {
		name := v.Name
		if v.Inlined != "" {
			// Inlined functions bring their own data, len, ...: say
			// whose each one is.
			name += " (" + v.Inlined + ", inlined)"
		}
		t.Rows = append(t.Rows, []string{name, v.TypeName, d.varText(v), v.Where})
	}
	t.JSON = vars
	return t, nil
}

func debugInfoMaps(d *debugSession, _ []string) (Result, error) {
	t := &Table{Columns: []string{"map", "kind", "bound to"}}
	for _, m := range d.prog.Maps() {
		kind, bound := "", "private to the session"
		if m.Spec != nil {
			kind = m.Spec.Type.String()
		}
		if km := d.maps.ByName[m.Name]; km != nil {
			bound = km.String() + " (read; the session's writes stay in the session)"
		}
		t.Rows = append(t.Rows, []string{m.Name, kind, bound})
	}
	return t, nil
}

func debugBacktrace(d *debugSession, _ []string) (Result, error) {
	var b strings.Builder
	for _, f := range d.s.Backtrace() {
		fmt.Fprintf(&b, "#%d  %s", len(d.s.Backtrace())-1-f.Depth, f.Func)
		if f.Line != nil {
			fmt.Fprintf(&b, " at %s:%d", filepath.Base(f.Line.File), f.Line.Line)
		}
		fmt.Fprintf(&b, " (insn %d)", f.PC)
		if f.Callback != "" {
			fmt.Fprintf(&b, ", called back by %s", f.Callback)
		}
		b.WriteByte('\n')
	}
	return &Text{Body: strings.TrimRight(b.String(), "\n"), JSON: d.s.Backtrace()}, nil
}

func debugEvents(d *debugSession, _ []string) (Result, error) {
	var b strings.Builder
	for _, e := range d.s.Events() {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return &Message{Text: "no helper calls or printk lines yet"}, nil
	}
	return &Text{Body: strings.TrimRight(b.String(), "\n"), JSON: d.s.Events()}, nil
}

func debugList(d *debugSession, args []string) (Result, error) {
	lines := map[int]string{}
	file := d.listFile
	p := d.s.Running()
	for pc := 0; pc < p.Len(); pc++ {
		if l, ok := p.LineAt(pc); ok && (file == "" || l.File == file) {
			file = l.File
			lines[l.Line] = l.Text
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("list: %s has no source line info (BTF line info)", p.Name)
	}
	center := d.listLine
	if len(args) > 0 {
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return nil, Usagef("list takes a line number, got %q", args[0])
		}
		center = n
	}
	cur := d.listLine
	nums := make([]int, 0, len(lines))
	for n := range lines {
		if n >= center-5 && n <= center+5 {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	var b strings.Builder
	fmt.Fprintf(&b, "%s (lines the program has code for)\n", filepath.Base(file))
	for _, n := range nums {
		mark := "  "
		if n == cur {
			mark = "=>"
		}
		fmt.Fprintf(&b, "%s %5d\t%s\n", mark, n, strings.TrimRight(lines[n], " \t"))
	}
	return &Text{Body: strings.TrimRight(b.String(), "\n")}, nil
}

func debugPrint(d *debugSession, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("print needs an expression: r6, *(u32 *)(r6 + 4), r7->packets, a variable")
	}
	text := strings.Join(args, " ")
	v, err := d.eval(text)
	if err != nil {
		return nil, err
	}
	out := text + " = " + d.valueText(v)
	data := map[string]any{"value": v.v, "text": d.valueText(v)}
	if v.note != "" {
		out += "  <" + v.note + ">"
		data["note"] = v.note
	}
	return &Message{Text: out, Data: data}, nil
}

func debugExamine(d *debugSession, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("x needs an address: r6, r10 - 16, a pointer variable")
	}
	n := 16
	words := args
	if len(args) > 1 {
		if k, err := strconv.Atoi(args[len(args)-1]); err == nil && k > 0 {
			n, words = k, args[:len(args)-1]
		}
	}
	v, err := d.eval(strings.Join(words, " "))
	if err != nil {
		return nil, err
	}
	data, err := d.s.Read(v.v, n)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("%d bytes at %#x", n, v.v)
	if p, ok := d.s.Describe(v.v); ok {
		head += " (" + p.Text + ")"
	}
	return &Text{Body: head + "\n" + strings.TrimRight(packet.Hexdump(data), "\n"), JSON: data}, nil
}

func debugSet(d *debugSession, args []string) (Result, error) {
	text := strings.Join(args, " ")
	lhs, rhs, ok := strings.Cut(text, "=")
	if !ok {
		return nil, Usagef("set takes TARGET = VALUE: set r0 = 1, set *(u32 *)(r6 + 4) = 7")
	}
	lhs, rhs = strings.TrimSpace(lhs), strings.TrimSpace(rhs)
	val, err := d.eval(rhs)
	if err != nil {
		return nil, err
	}
	if r, ok := regNumber(lhs); ok {
		if err := d.s.SetReg(r, val.v); err != nil {
			return nil, err
		}
		return &Message{Text: fmt.Sprintf("r%d = %d (%#x)", r, int64(val.v), val.v)}, nil
	}
	target, err := d.eval(lhs)
	if err != nil {
		return nil, err
	}
	if target.reg >= 0 {
		if err := d.s.SetReg(target.reg, val.v); err != nil {
			return nil, err
		}
		return &Message{Text: fmt.Sprintf("%s (r%d) = %d", lhs, target.reg, int64(val.v))}, nil
	}
	if !target.lvalue || target.size > 8 {
		return nil, fmt.Errorf("set %s: not a register or a scalar in memory", lhs)
	}
	b := make([]byte, target.size)
	for i := range b {
		b[i] = byte(val.v >> (8 * i))
	}
	if err := d.s.Write(target.addr, b); err != nil {
		return nil, err
	}
	return &Message{Text: fmt.Sprintf("%s = %d", lhs, int64(val.v))}, nil
}

func debugPacket(d *debugSession, _ []string) (Result, error) {
	res := d.s.Result()
	if res.Packet == nil {
		return nil, fmt.Errorf("a %s program has no packet", d.prog.Type)
	}
	in := d.packetIn
	if in == nil {
		in = res.Packet
	}
	var b strings.Builder
	layersIn, layersNow := packet.Decode(in, "Ether"), packet.Decode(res.Packet, "Ether")
	fmt.Fprintf(&b, "packet %d bytes now (%s), %d in", len(res.Packet), packet.Summary(layersNow), len(in))
	if string(in) == string(res.Packet) {
		b.WriteString(", unchanged so far\n")
	} else {
		fmt.Fprintf(&b, ", changed: %s\n", changedRanges(in, res.Packet))
		for _, df := range packet.Diff(layersIn, layersNow) {
			b.WriteString(indent(packet.FormatDiff([]packet.LayerDiff{df}), "  "))
		}
	}
	if len(res.Meta) > 0 {
		fmt.Fprintf(&b, "metadata %d bytes: % x\n", len(res.Meta), res.Meta)
	}
	b.WriteString(hexdump(res.Packet, in))
	return &Text{Body: strings.TrimRight(b.String(), "\n"), JSON: map[string]any{"packet": res.Packet, "meta": res.Meta}}, nil
}
