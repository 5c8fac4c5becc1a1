// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
)

var progCmd = &Command{
	Name:    "prog",
	Short:   "list, show, dump and pin loaded programs",
	Long:    "The prog commands inspect the programs loaded in the kernel, whoever loaded them: list them, show one by id, pinned path, name or tag, dump its translated instructions with the C source lines they came from, and pin it under bpffs.",
	Example: "prog show name xdp_count",
	Subs:    []*Command{progListCmd, progShowCmd, progDumpCmd, progPinCmd, progAttachCmd, progDetachCmd, progLoadCmd, progRunCmd},
}

var progListCmd = &Command{
	Name:    "list",
	Short:   "list every loaded program",
	Long:    "prog list shows every program loaded in the kernel, one per row, with the fields 'bpftool prog show' prints: id, type, name, tag, load time, the uid that loaded it, translated and JITed sizes, locked memory, the ids of the maps it uses and its BTF id. With -j it prints bpftool's JSON objects.",
	Example: "prog list",
	Run: func(s *Session, args []string) (Result, error) {
		if len(args) > 0 {
			return nil, Usagef("prog list takes no arguments; to show one program: prog show REF")
		}
		return progTable()
	},
}

var progShowCmd = &Command{
	Name:    "show",
	Usage:   "[REF]",
	Short:   "show one program (or all, like prog list)",
	Long:    "prog show REF shows one program in detail: id, type, name, tag, whether its license is GPL-compatible, when and by whom it was loaded, its sizes, locked memory, the maps it uses (with their names) and its BTF id, plus run time and run count while kernel.bpf_stats_enabled is 1. REF is 'id N', 'pinned PATH', 'name NAME', 'tag HEX' or NAME/OBJ under the pin root; a name or tag that matches several programs shows each. Without REF it lists every program. With -j the fields are bpftool's.",
	Example: "prog show pinned /sys/fs/bpf/bpfsh/fixture/xdp_count",
	Args:    []ArgKind{ArgProgRef},
	Run:     runProgShow,
}

var progDumpCmd = &Command{
	Name:  "dump",
	Usage: "[xlated|jited] REF [linum] [opcodes]",
	Short: "print a program's translated instructions (or JIT-compiled machine code) with its C source lines",
	Long: "prog dump prints the instructions the kernel runs for a program (after verification and rewriting), numbered, in the syntax of 'bpftool prog dump xlated': each function's prototype above its first instruction, and each C source line, with file:line:col as 'linum' shows them, above the first instruction it produced. Map references print as map[id:N] followed by the map's name; calls name the helper or function. 'opcodes' adds each instruction's raw bytes. The words 'xlated' and 'linum' are accepted for bpftool habits. With -j each instruction is an object {insn, text, line: {file, line, col, src}}. " +
		"'prog dump jited REF' prints the machine code the JIT compiled instead, disassembled in GNU syntax for this machine (x86-64, arm64), function by function under its kernel symbol, with the C source lines (line info needs root) above the instructions they became; -j gives [{name, proto, arch, insns: [{pc, text, line, opcodes}]}].",
	Example: "prog dump name xdp_count",
	Args:    []ArgKind{ArgProgRef},
	Run:     runProgDump,
}

var progPinCmd = &Command{
	Name:    "pin",
	Usage:   "ID|REF PATH",
	Short:   "pin a loaded program at PATH on bpffs",
	Long:    "prog pin pins a program, named by its id or any REF, at PATH, so that it stays loaded after every file descriptor to it is closed and bpftool or bpfsh can find it there. PATH must be on a bpf file system and must not exist yet; a relative PATH is under the pin root. Directories missing above PATH are made, and nothing is left behind if pinning fails.",
	Example: "prog pin 42 /sys/fs/bpf/mine/xdp",
	Args:    []ArgKind{ArgProgRef, ArgPinPath},
	Run:     runProgPin,
}

// parseProgRef reads a program reference, accepting a bare number as an id
// (as "prog pin 42 PATH" does). A malformed reference is a usage error.
func parseProgRef(s *Session, args []string, bareID bool) (bpf.Ref, []string, error) {
	if bareID && len(args) > 0 {
		if _, err := strconv.ParseUint(args[0], 10, 32); err == nil {
			return bpf.Ref{Kind: bpf.RefID, Value: args[0], Typed: "id " + args[0]}, args[1:], nil
		}
	}
	ref, rest, err := bpf.ParseRef(args, s.PinRoot)
	if err != nil {
		return ref, rest, &UsageError{Msg: err.Error()}
	}
	return ref, rest, nil
}

func progTable() (Result, error) {
	progs, err := bpf.ListPrograms()
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: []string{"id", "type", "name", "tag", "loaded_at", "uid", "xlated", "jited", "memlock", "map_ids", "btf_id"}}
	js := make([]any, 0, len(progs))
	for _, p := range progs {
		loaded, uid := "", ""
		if !p.LoadedAt.IsZero() {
			loaded, uid = p.LoadedAt.Format("2006-01-02T15:04:05-0700"), strconv.FormatUint(uint64(p.UID), 10)
		}
		t.Rows = append(t.Rows, []string{
			strconv.FormatUint(uint64(p.ID), 10), p.Type, p.Name, p.Tag, loaded, uid,
			bytesOrDash(uint64(p.BytesXlated)), bytesOrDash(uint64(p.BytesJited)), bytesOrDash(p.BytesMemlock),
			joinIDs(p.MapIDs, ","), idOrDash(p.BTFID),
		})
		js = append(js, p.JSON())
	}
	t.JSON = js
	return t, nil
}

func runProgShow(s *Session, args []string) (Result, error) {
	if len(args) == 0 {
		return progTable()
	}
	ref, rest, err := parseProgRef(s, args, false)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("unexpected %q after %s", rest[0], ref)
	}
	progs, err := bpf.Programs(ref)
	if err != nil {
		return nil, err
	}
	defer closeAll(progs)
	var list List
	for _, p := range progs {
		info, err := bpf.DescribeProgram(p)
		if err != nil {
			return nil, fmt.Errorf("show program %s: %w", ref, err)
		}
		list = append(list, progRecord(info))
	}
	if len(list) == 1 {
		return list[0], nil
	}
	return list, nil
}

func closeAll(progs []*ebpf.Program) {
	for _, p := range progs {
		p.Close()
	}
}

// progRecord is one program as "prog show" prints it.
func progRecord(p *bpf.ProgInfo) *Record {
	r := &Record{JSON: p.JSON()}
	add := func(name, value string) { r.Fields = append(r.Fields, Field{name, value}) }
	add("id", strconv.FormatUint(uint64(p.ID), 10))
	add("type", p.Type)
	add("name", p.Name)
	add("tag", p.Tag)
	add("gpl", yesNo(p.GPLCompatible))
	if !p.LoadedAt.IsZero() {
		add("loaded_at", p.LoadedAt.Format("2006-01-02T15:04:05-0700"))
		add("uid", strconv.FormatUint(uint64(p.UID), 10))
	}
	add("xlated", fmt.Sprintf("%dB", p.BytesXlated))
	if p.BytesJited > 0 {
		add("jited", fmt.Sprintf("%dB", p.BytesJited))
	} else {
		add("jited", "no")
	}
	if p.BytesMemlock > 0 {
		add("memlock", fmt.Sprintf("%dB", p.BytesMemlock))
	}
	if len(p.MapIDs) > 0 {
		maps := make([]string, len(p.MapIDs))
		for i, id := range p.MapIDs {
			maps[i] = strconv.FormatUint(uint64(id), 10)
			if name := bpf.MapNameByID(id); name != "" {
				maps[i] += " (" + name + ")"
			}
		}
		add("map_ids", strings.Join(maps, ", "))
	}
	if p.BTFID != 0 {
		add("btf_id", strconv.FormatUint(uint64(p.BTFID), 10))
	}
	if p.RunTimeNs != 0 {
		add("run_time_ns", strconv.FormatUint(p.RunTimeNs, 10))
		add("run_cnt", strconv.FormatUint(p.RunCnt, 10))
	}
	if p.RecursionMisses != 0 {
		add("recursion_misses", strconv.FormatUint(p.RecursionMisses, 10))
	}
	if p.VerifiedInsns != 0 {
		add("verified_insns", strconv.FormatUint(uint64(p.VerifiedInsns), 10))
	}
	return r
}

// insnJSON is one instruction in "prog dump -j".
type insnJSON struct {
	Insn    int             `json:"insn"`
	Text    string          `json:"text"`
	Proto   string          `json:"proto,omitempty"`
	Line    *bpf.SourceLine `json:"line,omitempty"`
	Map     *bpf.MapName    `json:"map,omitempty"`
	Opcodes string          `json:"opcodes,omitempty"`
}

func runProgDump(s *Session, args []string) (Result, error) {
	jited := false
	if len(args) > 0 {
		switch args[0] {
		case "xlated":
			args = args[1:]
		case "jited":
			jited, args = true, args[1:]
		}
	}
	if len(args) == 0 {
		return nil, Usagef("prog dump needs a program: id N, pinned PATH, name NAME, tag HEX or NAME/OBJ")
	}
	ref, rest, err := parseProgRef(s, args, false)
	if err != nil {
		return nil, err
	}
	opcodes := false
	for _, w := range rest {
		switch w {
		case "linum":
		case "opcodes":
			opcodes = true
		case "visual", "file":
			return nil, Usagef("prog dump does not do %q; use bpftool prog dump xlated %s %s", w, bpftoolRef(ref), w)
		default:
			return nil, Usagef("unexpected %q after %s; prog dump takes 'linum' and 'opcodes'", w, ref)
		}
	}
	p, err := bpf.Program(ref)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if jited {
		return dumpJited(ref, p, opcodes)
	}
	insns, err := bpf.DumpXlated(p)
	if err != nil {
		return nil, fmt.Errorf("dump program %s: %w", ref, err)
	}
	var b strings.Builder
	js := make([]insnJSON, 0, len(insns))
	for _, in := range insns {
		j := insnJSON{Insn: in.Index, Text: in.Text, Proto: in.Func, Line: in.Line, Map: in.Map}
		if in.Func != "" {
			b.WriteString(in.Func + ":\n")
		}
		if l := in.Line; l != nil {
			fmt.Fprintf(&b, "; %s [file:%s line_num:%d line_col:%d]\n", l.Src, l.File, l.Line, l.Col)
		}
		fmt.Fprintf(&b, "% 4d: %s", in.Index, in.Text)
		if in.Map != nil && in.Map.Name != "" {
			b.WriteString("  // " + in.Map.Name)
		}
		b.WriteByte('\n')
		if opcodes {
			j.Opcodes = hexBytes(in.Raw)
			fmt.Fprintf(&b, "       %s\n", j.Opcodes)
		}
		js = append(js, j)
	}
	return &Text{Body: b.String(), JSON: js}, nil
}

// dumpJited is "prog dump jited": each function's symbol and prototype,
// then its machine instructions at their offsets in hex, each C source
// line above the instructions it produced, as bpftool prints them.
func dumpJited(ref bpf.Ref, p *ebpf.Program, opcodes bool) (Result, error) {
	funcs, err := bpf.DumpJited(p)
	if err != nil {
		return nil, fmt.Errorf("dump program %s: %w", ref, err)
	}
	type insnJSON struct {
		PC      string          `json:"pc"`
		Text    string          `json:"text"`
		Line    *bpf.SourceLine `json:"line,omitempty"`
		Opcodes string          `json:"opcodes,omitempty"`
	}
	type funcJSON struct {
		Name  string     `json:"name"`
		Proto string     `json:"proto,omitempty"`
		Arch  string     `json:"arch"`
		Insns []insnJSON `json:"insns"`
	}
	var b strings.Builder
	js := make([]funcJSON, 0, len(funcs))
	for i, f := range funcs {
		if i > 0 {
			b.WriteByte('\n')
		}
		if f.Proto != "" {
			b.WriteString(f.Proto + ":\n")
		}
		if f.Name != "" {
			b.WriteString(f.Name + ":\n")
		}
		fj := funcJSON{Name: f.Name, Proto: f.Proto, Arch: f.Arch, Insns: make([]insnJSON, 0, len(f.Insns))}
		for _, in := range f.Insns {
			if l := in.Line; l != nil {
				fmt.Fprintf(&b, "; %s [file:%s line_num:%d line_col:%d]\n", l.Src, l.File, l.Line, l.Col)
			}
			fmt.Fprintf(&b, "%4x:\t%s\n", in.Off, in.Text)
			j := insnJSON{PC: fmt.Sprintf("0x%x", in.Off), Text: in.Text, Line: in.Line}
			if opcodes {
				j.Opcodes = hexBytes(in.Raw)
				fmt.Fprintf(&b, "\t%s\n", j.Opcodes)
			}
			fj.Insns = append(fj.Insns, j)
		}
		js = append(js, fj)
	}
	return &Text{Body: b.String(), JSON: js}, nil
}

// bpftoolRef spells ref so that bpftool takes it, for the commands bpfsh
// suggests: bpftool knows id, pinned, name and tag, not the short form
// NAME/OBJ, which becomes "pinned" and its path under the pin root.
func bpftoolRef(ref bpf.Ref) string {
	if ref.Kind == bpf.RefPinned {
		return "pinned " + ref.Value
	}
	return string(ref.Kind) + " " + ref.Value
}

// hexBytes prints raw instruction bytes as bpftool's "opcodes" does.
func hexBytes(raw []byte) string {
	parts := make([]string, len(raw))
	for i, c := range raw {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, " ")
}

func runProgPin(s *Session, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("prog pin needs a program and a path, e.g. prog pin 42 /sys/fs/bpf/mine/xdp")
	}
	ref, rest, err := parseProgRef(s, args, true)
	if err != nil {
		return nil, err
	}
	if len(rest) != 1 {
		return nil, Usagef("prog pin needs one PATH after %s", ref)
	}
	path := pinPath(s, rest[0])
	p, err := bpf.Program(ref)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	info, err := bpf.DescribeProgram(p)
	if err != nil {
		return nil, fmt.Errorf("pin program %s: %w", ref, err)
	}
	if err := bpf.PinFD(p.FD(), path); err != nil {
		return nil, fmt.Errorf("pin program %s: %w", ref, err)
	}
	return &Message{
		Text: fmt.Sprintf("pinned program %d (%s) at %s", info.ID, info.Name, path),
		Data: map[string]any{"id": info.ID, "name": info.Name, "pinned": path},
	}, nil
}

// pinPath makes a PATH argument absolute: a relative one is under the pin
// root, like the NAME/OBJ form of references.
func pinPath(s *Session, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(s.PinRoot, p)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func bytesOrDash(n uint64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatUint(n, 10) + "B"
}

func idOrDash(id uint32) string {
	if id == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(id), 10)
}

func joinIDs(ids []uint32, sep string) string {
	if len(ids) == 0 {
		return "-"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(parts, sep)
}
