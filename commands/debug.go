// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
)

var debugCmd = &Command{
	Name:  "debug",
	Usage: "REF [object FILE.o | xlated] [packet EXPR | hex BYTES... | @FILE | $NAME] [ctx {FIELD: VALUE, ...} | ctx hex BYTES...] [cpu N] [--commit]",
	Short: "step through a program line by line, forwards and backwards, checked against the kernel",
	Long: "debug starts a debugging session of a loaded program on the input run takes (a packet, a ctx) and stops before its first " +
		"instruction, showing the C source line (from the object's BTF line info) and the instruction. The prompt becomes " +
		"(debug REF) until quit; scripts (-c, -f, piped lines) drive a session the same way, line by line. " +
		"The program runs in bpfsh's BPF interpreter on a copy-on-write view of the real maps: nothing the session does reaches " +
		"them. Before the session starts, the same input goes through the kernel (BPF_PROG_TEST_RUN) on a private instance of the " +
		"program (its maps cloned with their contents, the program loaded again, removed afterwards), and when the program returns, " +
		"or on check, the session says \"the kernel agrees\" or names the first difference (retval, output packet, ctx, map entries, " +
		"ring buffer records, trace lines; what depends on the time or random numbers is named and left out). " +
		"The program's instructions, BTF and line info come from its object: a built-in, a file bpfsh loaded (its load manifest " +
		"names it), or object FILE.o. A program someone else loaded (bpftool, another loader) needs no object: it is rebuilt " +
		"from what the kernel keeps of it, its translated instructions with their BTF line and func info and map ids, undoing " +
		"the verifier's rewrites (ctx field accesses back to struct xdp_md / __sk_buff through vmlinux BTF, inlined array, " +
		"per-CPU array and hash lookups, inlined bpf_loop, bpf_get_smp_processor_id and bpf_jiffies64, helper calls made " +
		"relative to __bpf_call_base, map ids); the kernel check then loads the rebuilt program again on clones of its maps. " +
		"Source lines, list and step by line work from the kernel's line info; C variables need the object. A rewrite that " +
		"cannot be undone is named with its instruction (then give object FILE.o). xlated rebuilds from the kernel's " +
		"instructions even when bpfsh knows the object: it debugs exactly what the kernel runs. " +
		"cpu N runs the program as if on CPU N (per-CPU maps, bpf_get_smp_processor_id), the kernel's run too. " +
		"With --commit, quit writes the map entries the session changed to the real maps (once the program has returned; " +
		"ring buffer records and queue values are not written).\n\n" +
		"Commands inside a session (gdb's words and short forms):\n" +
		"  moving:     step/s (next source line, into calls and bpf_loop callbacks), next/n (over calls), stepi/si [N], nexti/ni [N],\n" +
		"              continue/c, finish (out of the current function), until [LINE], advance LOC\n" +
		"  going back: reverse-step/rs, reverse-next/rn, reverse-stepi/rsi [N], reverse-continue/rc (to the previous breakpoint),\n" +
		"              reverse-finish\n" +
		"  stopping:   break/b FILE:LINE | LINE | FUNC | *INSN [if EXPR], delete [N], watch EXPR (stops when the value changes),\n" +
		"              info breakpoints | watchpoints\n" +
		"  looking:    regs (info registers), print/p EXPR, x EXPR [N] (N bytes in hex), list/l [LINE], backtrace/bt,\n" +
		"              info locals (C variables, from DWARF: objects built with clang -g), info maps, events (helper calls, printk),\n" +
		"              packet (the packet now, decoded, the bytes changed so far marked)\n" +
		"  changing:   set rN = V, set *(u32 *)(r6 + 4) = V, set VAR = V; at a helper the debugger cannot emulate, set r0 = V then stepi\n" +
		"  checking:   check (the kernel's verdict now), quit (ends the session; shows the verdict when the program has returned)\n" +
		"EXPR is a register (r0..r10), a number, *(TYPE *)(rN + OFF) with TYPE u8..u64 or s8..s64, a C variable by name, and " +
		"field and element access through BTF where the type is known: r7->packets when r7 points into a map value, st->bytes for a variable, " +
		"t->r[0].version, arr[i + 1], ptr[2] (an index is an EXPR; arrays are bounds checked); " +
		"a struct prints with its field names. A variable DWARF says is optimized out here shows the register that still holds its " +
		"value, when one does (its last known location, not written since, or the next, reached by straight-line code). Registers show where they point (pkt+34, &counters[0] (u64), ctx (struct xdp_md), " +
		"stack frame 0 -8). Conditions compare two EXPRs with == != < <= > >=.\n\n" +
		"Helpers the debugger emulates: " + strings.Join(emu.SupportedHelpers(), ", ") + ". " +
		"A call to any other stops the session at the call and names it.",
	Example: `debug fixture/xdp_count packet Ether()/IPv4()/UDP(dport=6390)/Raw("ping")`,
	Args:    []ArgKind{ArgProgRef},
	Run:     debugStart,
}

// debugVar is the session variable holding the running debug session.
const debugVar = "debug.session"

// debugSession is one debug session's state in the shell.
type debugSession struct {
	ref   string
	s     *emu.Session
	prog  *emu.Program
	maps  *emu.Maps
	typ   ebpf.ProgramType
	check *emu.KernelCheck
	// why the kernel could not check this session (check nil).
	checkErr error
	// opts is the input, kept for checking again with the user's answers
	// when the run reaches a call the emulator does not emulate.
	opts testrun.Options
	// answered are the answers the current check used.
	answered []uint64
	// shown is how many events have been shown.
	shown int
	// ctx is the context's address (r1 at the start): print ctx->FIELD.
	ctx uint64
	// packetIn is the packet the session started with.
	packetIn []byte
	// commit asks quit to write the session's map changes to the real
	// maps (debug --commit).
	commit bool
	// listLine is where list goes on from.
	listLine int
	listFile string
}

func debugState(s *Session) *debugSession {
	d, _ := s.Vars[debugVar].(*debugSession)
	return d
}

func debugStart(s *Session, args []string) (Result, error) {
	if d := debugState(s); d != nil {
		return nil, fmt.Errorf("a debug session of %s is running; quit it first", d.ref)
	}
	ref, rest, err := bpf.ParseRef(args, s.PinRoot)
	if err != nil {
		return nil, Usagef("debug needs a program first: %v", err)
	}
	kprog, err := bpf.Program(ref)
	if err != nil {
		return nil, err
	}
	defer kprog.Close()
	commit := false
	if i := slices.Index(rest, "--commit"); i >= 0 {
		commit, rest = true, slices.Delete(slices.Clone(rest), i, i+1)
	}
	xlated := false
	if i := slices.Index(rest, "xlated"); i >= 0 {
		xlated, rest = true, slices.Delete(slices.Clone(rest), i, i+1)
	}
	var objs []*emu.Object
	if i := slices.Index(rest, "object"); i >= 0 {
		if xlated {
			return nil, Usagef("debug takes object FILE.o or xlated, not both")
		}
		if i+1 >= len(rest) {
			return nil, Usagef("object needs the ELF the program was loaded from: object FILE.o")
		}
		data, err := os.ReadFile(rest[i+1])
		if err != nil {
			return nil, fmt.Errorf("debug %s: %w", ref, err)
		}
		obj, err := emu.LoadObject(rest[i+1], data)
		if err != nil {
			return nil, fmt.Errorf("debug %s: %w", ref, err)
		}
		objs = append(objs, obj)
		rest = slices.Delete(slices.Clone(rest), i, i+2)
	}
	opts, cleanup, err := parseRunOptions(s, rest)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	if opts.Repeat > 0 || opts.Bench || opts.LiveFrames || opts.Flags != 0 || opts.Harness.Map != nil {
		return nil, Usagef("debug takes a packet, a ctx and cpu N; not repeat, bench, live, flags or a harness")
	}
	var prog *emu.Program
	var maps *emu.Maps
	err = emu.ErrUnknownProgram
	if !xlated {
		prog, maps, err = emu.ForProgram(kprog, objs...)
	}
	if errors.Is(err, emu.ErrUnknownProgram) && len(objs) == 0 && !xlated && registerLoadedObjects(s) {
		prog, maps, err = emu.ForProgram(kprog)
	}
	rebuilt := false
	if errors.Is(err, emu.ErrUnknownProgram) && len(objs) == 0 {
		// Loaded by someone else: rebuild it from what the kernel keeps.
		prog, maps, err = emu.FromKernel(kprog)
		switch {
		case err != nil && xlated:
			return nil, fmt.Errorf("debug %s xlated: the kernel's translated instructions cannot be turned back into the program: %v; debug it from its object: debug %s object FILE.o ...", ref, err, ref)
		case err != nil:
			return nil, fmt.Errorf("debug %s: bpfsh does not know the object this program came from, and its translated instructions cannot be turned back into it: %v; give the object it was loaded from: debug %s object FILE.o ...", ref, err, ref)
		}
		rebuilt = true
	}
	if errors.Is(err, emu.ErrUnknownProgram) {
		return nil, fmt.Errorf("debug %s: %v", ref, err)
	}
	if err != nil {
		return nil, fmt.Errorf("debug %s: %w", ref, err)
	}
	info, err := kprog.Info()
	if err != nil {
		maps.Close()
		return nil, fmt.Errorf("debug %s: read the program's info: %w", ref, err)
	}
	if info.Type == ebpf.SkSKB || info.Type == ebpf.SkMsg || info.Type == ebpf.SockOps {
		maps.Close()
		return nil, fmt.Errorf("debug %s: %s programs cannot be test-run by the kernel, so a session could not be checked; debug takes programs run can test-run", ref, bpf.ProgTypeName(uint32(info.Type)))
	}
	d := &debugSession{ref: ref.String(), prog: prog, maps: maps, typ: info.Type, commit: commit, opts: opts}
	var cfg emu.Config
	s.AtExit("trace", testrun.CloseTrace)
	if kc, err := checkOnCPU(prog, maps, opts, info.Type, nil); err == nil {
		d.check = kc
		cfg = kc.Case.Config
	} else {
		d.checkErr = err
		ctxIn, cerr := testrun.ContextIn(kprog, opts)
		if cerr != nil {
			maps.Close()
			return nil, fmt.Errorf("debug %s: %w", ref, cerr)
		}
		cfg = emu.Config{Program: prog, Packet: opts.Data, Ctx: ctxIn, CPU: int(opts.CPU)}
		switch info.Type {
		case ebpf.Syscall, ebpf.RawTracepoint, ebpf.SkLookup:
			cfg.Packet = nil
		}
	}
	cfg.Maps, cfg.NoJournal = maps, false
	sess, err := emu.NewSession(cfg)
	if err != nil {
		maps.Close()
		return nil, fmt.Errorf("debug %s: %w", ref, err)
	}
	d.s, d.ctx = sess, sess.Reg(1)
	if cfg.Packet != nil {
		d.packetIn = cfg.Packet
		if len(cfg.Ctx) >= 4 && info.Type == ebpf.XDP {
			// XDP metadata comes first in data_in when ctx says data > 0.
			if off := int(uint32(cfg.Ctx[0]) | uint32(cfg.Ctx[1])<<8 | uint32(cfg.Ctx[2])<<16 | uint32(cfg.Ctx[3])<<24); off > 0 && off < len(cfg.Packet) {
				d.packetIn = cfg.Packet[off:]
			}
		}
	}
	if s.Vars == nil {
		s.Vars = map[string]any{}
	}
	s.Vars[debugVar] = d
	s.Mode = &Mode{Prompt: "(debug " + d.ref + ") ", Table: debugTable}
	s.AtExit("debug", func() error { debugEnd(s); return nil })

	var b strings.Builder
	input := "no packet"
	if cfg.Packet != nil {
		input = fmt.Sprintf("a %d-byte packet", len(cfg.Packet))
	}
	fmt.Fprintf(&b, "debugging %s (%s, %d instructions) on %s; quit ends the session\n", d.ref, bpf.ProgTypeName(uint32(info.Type)), prog.Len(), input)
	if rebuilt {
		fmt.Fprintf(&b, "no object: rebuilt from the kernel's translated instructions (ctx accesses, inlined map lookups and helper addresses undone); C variables need the object: debug %s object FILE.o\n", d.ref)
	}
	if d.check != nil {
		fmt.Fprintf(&b, "the kernel ran the same input on a private copy of the program and its maps: %s\n", testrun.RetvalName(info.Type, uint32(d.check.Case.Emu.Retval)))
	} else if call, line := unemulatedCall(d.checkErr); call != "" {
		fmt.Fprintf(&b, "this input reaches %s%s, which the debugger does not emulate: the session stops there; give its result with set r0 = V, then stepi, and the kernel checks the session with your answer\n", call, line)
	} else {
		fmt.Fprintf(&b, "not checked against the kernel: %v\n", d.checkErr)
	}
	d.showStop(&b, emu.Stop{Reason: emu.StopStart, PC: sess.PC(), Step: 0, Line: lineAt(prog, sess.PC()), Func: funcAt(prog, sess.PC())})
	return &Text{Body: strings.TrimRight(b.String(), "\n"), JSON: map[string]any{"program": d.ref, "pc": sess.PC(), "checked": d.check != nil, "rebuilt": rebuilt}}, nil
}

func lineAt(p *emu.Program, pc int) *emu.SourceLine {
	if l, ok := p.LineAt(pc); ok {
		return &l
	}
	return nil
}

func funcAt(p *emu.Program, pc int) string {
	if f, ok := p.FuncAt(pc); ok {
		return f.Name
	}
	return ""
}

// debugEnd closes the session and leaves the mode.
func debugEnd(s *Session) {
	d := debugState(s)
	if d == nil {
		return
	}
	d.s.Close()
	d.maps.Close()
	delete(s.Vars, debugVar)
	s.Mode = nil
}

// registerLoadedObjects makes the objects bpfsh loaded from files (their
// load manifests name them) known to the debugger; it reports whether
// it found any.
func registerLoadedObjects(s *Session) bool {
	if s.StateDir == "" {
		return false
	}
	found := false
	for _, m := range bpf.ReadManifests(s.StateDir, s.PinRoot) {
		if m.Source == "" {
			continue
		}
		data, err := os.ReadFile(m.Source)
		if err != nil {
			continue
		}
		obj, err := emu.LoadObject(m.Source, data)
		if err != nil {
			continue
		}
		emu.RegisterObject(obj)
		found = true
	}
	return found
}

// showStop writes where the session stands: why it stopped, the events
// since the last stop, the source line and the instruction.
func (d *debugSession) showStop(b *strings.Builder, st emu.Stop) {
	evs := d.s.Events()
	if d.shown > len(evs) {
		d.shown = len(evs)
	}
	for _, e := range evs[d.shown:] {
		switch e.Kind {
		case emu.EventPrintk:
			fmt.Fprintf(b, "  printk: %s\n", strings.TrimRight(e.Text, "\n"))
		default:
			fmt.Fprintf(b, "  %s\n", eventLine(e))
		}
	}
	d.shown = len(evs)
	switch st.Reason {
	case emu.StopBreakpoint:
		fmt.Fprintf(b, "breakpoint %d\n", st.Breakpoint)
	case emu.StopWatch:
		if w := st.Watch; w != nil {
			fmt.Fprintf(b, "watchpoint %d: %s\n  old: %s\n  new: %s\n", w.ID, w.Text, watchBytes(w.Old, w.OldPresent), watchBytes(w.New, w.NewPresent))
		}
	case emu.StopFault:
		fmt.Fprintf(b, "emulator fault (the emulator is wrong here, not the program): %s\n", st.Message)
	case emu.StopUnknownHelper:
		fmt.Fprintf(b, "stopped at a call the debugger cannot emulate: %s (set r0 = V, then stepi)\n", st.Message)
	case emu.StopHelper:
		fmt.Fprintf(b, "stopped: %s\n", st.Message)
	case emu.StopLimit:
		fmt.Fprintf(b, "stopped: the instruction limit was reached\n")
	case emu.StopExit:
		fmt.Fprintf(b, "the program returned %s after %d instructions\n", testrun.RetvalName(d.typ, uint32(st.Retval)), st.Step)
		fmt.Fprintf(b, "%s\n", d.verdict())
		return
	}
	d.showPlace(b, st.PC, st.Step, st.Func, st.Line)
}

func (d *debugSession) showPlace(b *strings.Builder, pc int, step uint64, fn string, line *emu.SourceLine) {
	running := d.s.Running()
	if fn == "" {
		fn = running.Name
	}
	if line != nil {
		fmt.Fprintf(b, "%s at %s:%d (step %d)\n", fn, filepath.Base(line.File), line.Line, step)
		fmt.Fprintf(b, "%6d\t%s\n", line.Line, strings.TrimSpace(line.Text))
		d.listFile, d.listLine = line.File, line.Line
	} else {
		fmt.Fprintf(b, "%s (no source line; step %d)\n", fn, step)
	}
	fmt.Fprintf(b, "=> %d: %s\n", pc, running.Insn(pc))
}

func watchBytes(b []byte, present bool) string {
	if !present {
		return "(no entry)"
	}
	return fmt.Sprintf("% x", b)
}

func eventLine(e emu.Event) string {
	s := e.String()
	// Drop the "#step pc N" prefix: the stop shows where.
	if i := strings.Index(s, " pc "); i >= 0 {
		if j := strings.IndexByte(s[i+4:], ' '); j >= 0 {
			return s[i+4+j+1:]
		}
	}
	return s
}

// unemulatedCall names the call err stopped at when it is one the
// emulator does not emulate, with its source line (" at FILE:LINE").
func unemulatedCall(err error) (call, line string) {
	var re *emu.RunError
	if !errors.As(err, &re) || re.Stop.Reason != emu.StopUnknownHelper {
		return "", ""
	}
	if l := re.Stop.Line; l != nil {
		line = fmt.Sprintf(" at %s:%d", filepath.Base(l.File), l.Line)
	}
	return re.Stop.Call, line
}

// recheck runs the kernel check again when the first one stopped at a
// call the emulator does not emulate and the user has answered calls
// since (or answered them differently): the emulated run takes the
// answers, the kernel makes the real calls.
func (d *debugSession) recheck() {
	answers := d.s.Answers()
	if len(answers) == 0 || slices.Equal(answers, d.answered) {
		return
	}
	if d.check == nil {
		if call, _ := unemulatedCall(d.checkErr); call == "" {
			return
		}
	} else if d.answered == nil {
		return // checked without needing answers
	}
	d.answered = answers
	kc, err := checkOnCPU(d.prog, d.maps, d.opts, d.typ, answers)
	d.check, d.checkErr = kc, err
}

// verdict is the kernel's word on the session: agrees, or the first
// difference.
func (d *debugSession) verdict() string {
	d.recheck()
	if d.check == nil {
		if call, _ := unemulatedCall(d.checkErr); call != "" {
			if len(d.answered) > 0 {
				return fmt.Sprintf("not checked against the kernel: the run reaches %s again, which needs an answer too (set r0 = V, then stepi)", call)
			}
			return fmt.Sprintf("not checked against the kernel: the run calls %s, which the debugger does not emulate; answer it with set r0 = V when the session stops there", call)
		}
		return fmt.Sprintf("not checked against the kernel: %v", d.checkErr)
	}
	c := d.check.Case
	if !c.Agree() {
		if c.Comparison == nil {
			return "the kernel's run could not be compared: " + c.String()
		}
		summary := c.Comparison.Summary()
		if len(d.answered) > 0 {
			summary += fmt.Sprintf(" (the checked run used the %s you gave for calls the debugger does not emulate: the kernel's results may differ from them)", plural(len(d.answered), "answer"))
		}
		if d.s.Done() {
			if diff := emu.SameRun(d.s.Result(), c.Emu); diff != "" {
				summary += "; this session's own run differs from the checked one too (changed with set, or the maps changed): " + diff
			}
		}
		return summary
	}
	summary := c.Comparison.Summary() + " (compared: " + strings.Join(c.Comparison.Checked, ", ") + ")"
	if len(d.answered) > 0 {
		summary += fmt.Sprintf("; with the %s you gave for calls the debugger does not emulate", plural(len(d.answered), "answer"))
	}
	for _, n := range d.check.Notes {
		summary += "; " + n
	}
	if d.s.Done() {
		if diff := emu.SameRun(d.s.Result(), c.Emu); diff != "" {
			return "this session's run differs from the run the kernel checked (changed with set, or the maps changed): " + diff + "; on the unchanged run " + summary
		}
	}
	return summary
}

// Helpers for the session's commands.

func debugNeed(s *Session) (*debugSession, error) {
	d := debugState(s)
	if d == nil {
		return nil, errors.New("no debug session: start one with debug REF packet EXPR")
	}
	return d, nil
}

// stopResult renders a stop.
func (d *debugSession) stopResult(st emu.Stop) Result {
	var b strings.Builder
	d.showStop(&b, st)
	return &Text{Body: strings.TrimRight(b.String(), "\n"), JSON: st}
}

func countArg(args []string) (int, error) {
	if len(args) == 0 {
		return 1, nil
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return 0, Usagef("want a count of instructions, got %q", args[0])
	}
	return n, nil
}

// commitChanges writes the map entries the session changed to the real
// maps (debug --commit) and says what it did.
func (d *debugSession) commitChanges() string {
	if !d.s.Done() {
		return "nothing written to the maps: the program has not returned (--commit writes a finished run)"
	}
	res := d.s.Result()
	n, skipped := 0, 0
	var failed []string
	for _, c := range res.Maps {
		m := d.maps.ByName[c.Map]
		if m == nil {
			skipped++
			continue
		}
		var err error
		switch {
		case c.After == nil:
			err = m.Delete(c.Key)
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				err = nil
			}
		case bpf.IsPerCPU(m.Type()):
			vs := int(m.ValueSize())
			vals := make([][]byte, len(c.After)/vs)
			for i := range vals {
				vals[i] = c.After[i*vs : (i+1)*vs]
			}
			err = m.Update(c.Key, vals, ebpf.UpdateAny)
		default:
			err = m.Update(c.Key, c.After, ebpf.UpdateAny)
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s key %x: %v", c.Map, c.Key, err))
			continue
		}
		n++
	}
	msg := fmt.Sprintf("wrote %d map entr%s to the real maps", n, map[bool]string{true: "y", false: "ies"}[n == 1])
	if skipped > 0 {
		msg += fmt.Sprintf(" (%d change(s) to maps private to the session left out)", skipped)
	}
	if len(res.Rings) > 0 || len(res.Queues) > 0 {
		msg += "; ring buffer records and queue values are not written"
	}
	if len(failed) > 0 {
		msg += "; failed: " + strings.Join(failed, "; ")
	}
	return msg
}

// checkOnCPU runs the kernel check, on CPU N when cpu N was given: the
// thread is pinned there, and the check's emulated run takes that CPU.
func checkOnCPU(prog *emu.Program, maps *emu.Maps, opts testrun.Options, t ebpf.ProgramType, answers []uint64) (*emu.KernelCheck, error) {
	if !opts.OnCPU || t == ebpf.RawTracepoint {
		return emu.CheckInKernel(prog, maps, opts, answers)
	}
	cpu := int(opts.CPU)
	opts.OnCPU, opts.CPU = false, 0
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("read the CPU affinity: %w", err)
	}
	if !old.IsSet(cpu) {
		return nil, fmt.Errorf("cpu %d: this process may not run there (it may use CPUs %s)", cpu, cpuList(&old))
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("run on CPU %d: %w", cpu, err)
	}
	defer unix.SchedSetaffinity(0, &old)
	return emu.CheckInKernel(prog, maps, opts, answers)
}

func cpuList(set *unix.CPUSet) string {
	var cpus []string
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, strconv.Itoa(i))
		}
	}
	return strings.Join(cpus, ",")
}
