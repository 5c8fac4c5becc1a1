// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bpfsh/bpfsh/bpf"
)

// prog load and prog run: bpftool's spellings of load and run.

var progLoadCmd = &Command{
	Name:  "load",
	Usage: "FILE.o|BUILTIN [PATH] [name NAME] [set VAR=VALUE ...] [only PROG] [--verbose]",
	Short: "load an object as 'load' does, and pin its program at PATH as bpftool prog load",
	Long: "prog load is 'load' for bpftool's habit 'bpftool prog load OBJ PATH': the object is loaded and pinned under <pin-root>/NAME/ exactly as 'load' does (see 'help load'), and when PATH is given (an absolute path, or one with a '/', under the pin root when relative) its program is pinned at PATH too. " +
		"PATH takes one program: an object with several needs 'only PROG' to say which. The pin at PATH is yours: 'unload NAME' leaves it, so the program stays loaded until you remove it (rm PATH).",
	Example: "prog load xdp_pass.o /sys/fs/bpf/xdp_pass",
	Args:    []ArgKind{ArgObject, ArgPinPath},
	Run:     runProgLoad,
}

var progRunCmd = &Command{
	Name:  "run",
	Usage: "REF [data_in FILE] [data_out FILE] [data_size_out L] [ctx_in FILE] [ctx_out FILE] [ctx_size_out M] [repeat N] [run options...]",
	Short: "test-run a program as 'run' does, with bpftool prog run's words",
	Long: "prog run is 'run' (see 'help run') that also takes the words of 'bpftool prog run': data_in FILE is the packet's raw bytes (as run's @FILE), ctx_in FILE the context's raw bytes (as ctx hex), data_out FILE and ctx_out FILE write the packet and context the program handed back to FILE as raw bytes, and data_size_out and ctx_size_out are accepted and ignored (bpfsh sizes the buffers itself). " +
		"repeat N makes N runs on fresh copies of the input, as run does; bpftool's figure, one buffer rerun by the kernel, is run's 'bench'. Every other option of run can follow.",
	Example: "prog run pinned /sys/fs/bpf/xdp_pass data_in pkt.bin data_out out.bin repeat 100",
	Args:    []ArgKind{ArgProgRef, ArgFile},
	Run:     runProgRun,
}

// progRunArgs are bpftool's words of prog run; every other word goes to run.
var progRunArgs = argSpec{
	Valued: []string{"data_in", "ctx_in", "data_out", "ctx_out", "data_size_out", "ctx_size_out"},
}

func runProgLoad(s *Session, args []string) (Result, error) {
	if len(args) == 0 {
		return nil, Usagef("prog load needs an ELF object file, e.g. prog load xdp_pass.o /sys/fs/bpf/xdp_pass")
	}
	// A second word that looks like a path is bpftool's PATH.
	path := ""
	rest := []string{args[0]}
	if len(args) > 1 && strings.Contains(args[1], "/") {
		path = pinPath(s, args[1])
		rest = append(rest, args[2:]...)
	} else {
		rest = append(rest, args[1:]...)
	}
	if path != "" {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("prog load: %s exists already; choose another PATH or remove it first", path)
		}
	}
	res, err := runLoad(s, rest)
	if err != nil || path == "" {
		return res, err
	}
	t, _ := res.(*Table)
	if l, ok := res.(List); ok && len(l) > 0 {
		t, _ = l[0].(*Table)
	}
	var progs []bpf.Pinned
	if t != nil {
		if objs, ok := t.JSON.([]bpf.Pinned); ok {
			for _, o := range objs {
				if o.Kind == "program" {
					progs = append(progs, o)
				}
			}
		}
	}
	switch len(progs) {
	case 1:
	case 0:
		return nil, fmt.Errorf("prog load: %s has no program to pin at %s (it stays loaded; 'unload' it)", args[0], path)
	default:
		name := filepath.Base(filepath.Dir(progs[0].Path))
		names := make([]string, len(progs))
		for i, p := range progs {
			names[i] = p.Name
		}
		return nil, Usagef("prog load: %s has %d programs (%s) and PATH takes one; add 'only PROG' (what was loaded stays; 'unload %s' removes it)", args[0], len(progs), strings.Join(names, ", "), name)
	}
	p, err := bpf.Program(bpf.Ref{Kind: bpf.RefPinned, Value: progs[0].Path})
	if err != nil {
		return nil, fmt.Errorf("prog load: %w", err)
	}
	defer p.Close()
	if err := bpf.PinFD(p.FD(), path); err != nil {
		return nil, fmt.Errorf("prog load: %w", err)
	}
	msg := &Message{
		Text: fmt.Sprintf("pinned program %d (%s) at %s", progs[0].ID, progs[0].Name, path),
		Data: map[string]any{"id": progs[0].ID, "name": progs[0].Name, "pinned": path},
	}
	return append(List{res}, msg), nil
}

func runProgRun(s *Session, args []string) (Result, error) {
	var io []string
	var dataOut, ctxOut string
	rest, err := progRunArgs.parse(args, func(w string, v ...string) error {
		if v[0] == "-" {
			return Usagef("prog run: %s - (standard input or output) is not supported; give a file", w)
		}
		switch w {
		case "data_in":
			io = append(io, "@"+v[0])
		case "ctx_in":
			b, err := os.ReadFile(v[0])
			if err != nil {
				return fmt.Errorf("prog run: ctx_in: %w", err)
			}
			if len(b) == 0 {
				return Usagef("prog run: ctx_in %s is empty", v[0])
			}
			io = append(io, "ctx", "hex")
			for _, c := range b {
				io = append(io, fmt.Sprintf("%02x", c))
			}
		case "data_out":
			dataOut = v[0]
		case "ctx_out":
			ctxOut = v[0]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The program first, then the input from files, then run's own words.
	_, after, _ := bpf.ParseRef(rest, s.PinRoot)
	words := append(slices.Clone(rest[:len(rest)-len(after)]), io...)
	words = append(words, after...)
	res, err := runRun(s, words)
	if err != nil {
		return nil, err
	}
	r, ok := runOf(res)
	if !ok {
		return res, nil
	}
	for _, out := range []struct {
		word, file string
		b          []byte
	}{{"data_out", dataOut, r.Outcome.DataOut}, {"ctx_out", ctxOut, r.Outcome.CtxOut}} {
		if out.file == "" {
			continue
		}
		if out.b == nil {
			return nil, fmt.Errorf("prog run: %s: the program handed back no %s", out.word, strings.TrimSuffix(out.word, "_out"))
		}
		if err := os.WriteFile(out.file, out.b, 0o644); err != nil {
			return nil, fmt.Errorf("prog run: %s: %w", out.word, err)
		}
	}
	return res, nil
}
