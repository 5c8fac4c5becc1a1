// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/bpf"
)

var loadCmd = &Command{
	Name:  "load",
	Usage: "FILE.o|BUILTIN [name NAME] [set VAR=VALUE ...] [only PROG[,PROG...]] [--verbose]",
	Short: "load an ELF's maps and programs and pin them under the pin root",
	Long: "load creates every map and program of a BPF ELF object in the kernel and pins them flat " +
		"under <pin-root>/NAME/ (NAME defaults to the file's name without .o, .bpf.o or _bpfel.o), " +
		"then lists what it pinned. It is all or nothing: if the verifier rejects a program, or " +
		"anything else fails, nothing stays pinned; a rejection shows the verifier's reason and the " +
		"last lines of its log (all of it with --verbose). A NAME that is already loaded is refused. " +
		"bpffs is mounted when needed. Maps marked LIBBPF_PIN_BY_NAME are pinned in NAME/ with the rest. " +
		"FILE may also be the name of an object built into bpfsh (kv, cache). " +
		"'set VAR=VALUE ...' sets global variables before loading, typically a program's " +
		"`volatile const` settings, each value typed by the variable's BTF like a map value; " +
		"an unknown VAR is refused with the list of the object's variables. " +
		"'only PROG,...' loads just those programs (every map is still created), for an object one of " +
		"whose programs this kernel rejects: the rejection names the program and says what to type. " +
		"Objects that a command family knows get more after they are pinned: for kv (the built-in under any NAME, " +
		"or an object with its program and maps) load replays the WAL of <pin-root>/NAME into the fresh store, " +
		"reporting any torn tail it cut, and starts the session's WAL writer (see 'help kv wal').",
	Example: "load kv set kv_port=7000",
	Args:    []ArgKind{ArgObject},
	Run:     runLoad,
}

var unloadCmd = &Command{
	Name:  "unload",
	Usage: "NAME",
	Short: "remove what load pinned as NAME",
	Long: "unload removes the pins that 'load ... name NAME' made under <pin-root>/NAME/, as recorded " +
		"when it loaded them, and the directory when that leaves it empty. A pin is removed only " +
		"while it still holds the object load pinned there; anything else in the directory (pinned " +
		"by another tool, or replaced since) is left alone and listed. Objects nothing else holds " +
		"are freed by the kernel. For kv, unload first flushes the log ring into the WAL and stops the writer; " +
		"the WAL is kept for the next load. For cache, unload first detaches it from the interfaces 'cache attach' put it on.",
	Example: "unload counter",
	Args:    []ArgKind{ArgLoaded},
	Run:     runUnload,
}

// loadArgs reads load's words (see loadCmd's Usage); the one positional
// word is FILE.
var loadArgs = argSpec{
	Flags:  []string{"--verbose", "-v"},
	Valued: []string{"name", "only"},
	Many:   []string{"set"},
	Need: map[string]string{"name": "a NAME after it", "only": "program names after it, e.g. only xdp_count,tc_count",
		"set": "VAR=VALUE after it, e.g. set kv_port=7000"},
}

func runLoad(s *Session, args []string) (Result, error) {
	var (
		file, name string
		vars       []bpf.VarSetting
		only       []string
	)
	verbose := s.Verbose
	rest, err := loadArgs.parse(args, func(w string, v ...string) error {
		switch w {
		case "--verbose", "-v":
			verbose = true
		case "name":
			name = v[0]
		case "only":
			for _, p := range strings.Split(v[0], ",") {
				if p == "" {
					return Usagef("only %q: an empty program name; separate names with single commas", v[0])
				}
				only = append(only, p)
			}
		case "set":
			for _, a := range v {
				vs, err := bpf.ParseVarSetting(a)
				if err != nil {
					return Usagef("set: %v", err)
				}
				vars = append(vars, vs)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case len(rest) > 1:
		return nil, Usagef("unexpected %q after %s", clipWord(rest[1]), rest[0])
	case len(rest) == 1:
		file = rest[0]
	}
	if file == "" {
		return nil, Usagef("load needs an ELF object file")
	}
	l, err := bpf.LoadFile(file, bpf.LoadOptions{
		PinRoot:  s.PinRoot,
		Name:     name,
		StateDir: s.StateDir,
		Verbose:  verbose,
		Vars:     vars,
		Only:     only,
	})
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: []string{"kind", "name", "type", "id", "path"}, JSON: l.Objects}
	for _, o := range l.Objects {
		t.Rows = append(t.Rows, []string{o.Kind, o.Name, o.Type, strconv.FormatUint(uint64(o.ID), 10), o.Path})
	}
	for _, p := range l.Skipped {
		t.Rows = append(t.Rows, []string{"program", p, "-", "-", "not loaded (only)"})
	}
	// What a family does with objects it knows (kv replays its WAL) is
	// shown after the table; if it fails, nothing stays loaded.
	more, err := afterLoad(s, l)
	if err != nil {
		return nil, err
	}
	if len(more) > 0 {
		return append(List{t}, more...), nil
	}
	return t, nil
}

func runUnload(s *Session, args []string) (Result, error) {
	if len(args) != 1 {
		return nil, Usagef("unload takes one NAME, as given to load")
	}
	more, err := beforeUnload(s, args[0])
	if err != nil {
		return nil, err
	}
	u, err := bpf.Unload(s.StateDir, s.PinRoot, args[0])
	if err != nil {
		return nil, err
	}
	msg := &Message{Text: u.Summary(), Data: u}
	if len(more) > 0 {
		return append(List{msg}, more...), nil
	}
	return msg, nil
}
