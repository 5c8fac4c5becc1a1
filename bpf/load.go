// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// LoadOptions says where Load pins an object and how it reports failure.
type LoadOptions struct {
	// PinRoot is the bpffs directory under which NAME/ is made.
	PinRoot string
	// Name is the directory under PinRoot; "" derives it from the source
	// (see DefaultName).
	Name string
	// StateDir is where the manifest of what was pinned is kept, so that
	// Unload removes exactly that (see WriteManifest).
	StateDir string
	// Verbose puts the whole verifier log in a *VerifierError's Detail,
	// not only its tail.
	Verbose bool
	// Vars are global variables to set before loading (see SetVars).
	Vars []VarSetting
	// Only names the programs to load, by their name in the ELF; nil loads
	// them all. Every map is created either way, as libbpf does for
	// programs whose autoload is off, so the object's maps keep their
	// layout whatever subset runs.
	Only []string
}

// Pinned is one program or map that Load pinned.
type Pinned struct {
	Kind string `json:"kind"` // "program" or "map"
	Name string `json:"name"` // its file name under NAME/
	Type string `json:"type"` // bpftool's spelling: "xdp", "percpu_hash"
	ID   uint32 `json:"id"`   // the kernel's id, to recognise it at unload
	Path string `json:"path"` // where it is pinned
}

// Object kinds in Pinned.Kind.
const (
	KindProgram = "program"
	KindMap     = "map"
)

// Loaded is what Load did.
type Loaded struct {
	Name    string   // NAME
	Dir     string   // <pin root>/NAME
	Source  string   // the file, or "builtin NAME"
	Objects []Pinned // programs first, then maps, each by name
	Skipped []string // programs of the ELF left out by LoadOptions.Only, sorted
}

// LoadFile loads the BPF ELF at path; see LoadELF. When no file exists at
// path but a built-in object has that name, the built-in is loaded.
func LoadFile(path string, opts LoadOptions) (*Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if elf, ok := Builtin(path); ok {
				if opts.Name == "" {
					opts.Name = path
				}
				return LoadELF("builtin "+path, elf, opts)
			}
		}
		return nil, fmt.Errorf("load %s: %w", path, explainRead(path, err))
	}
	if opts.Name == "" {
		opts.Name = DefaultName(path)
	}
	return LoadELF(path, data, opts)
}

func explainRead(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		hint := "check the path"
		if names := Builtins(); len(names) > 0 {
			hint += " or load a built-in object: " + strings.Join(names, ", ")
		}
		return fmt.Errorf("no such file; %s", hint)
	case errors.Is(err, unix.EISDIR):
		return fmt.Errorf("is a directory; load wants a BPF object file (.o)")
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot read it: permission denied")
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// LoadELF loads every map and program of the BPF ELF data (named source in
// messages) and pins them flat under <PinRoot>/NAME/, then records what it
// pinned in a manifest. It is all or nothing: when anything fails, nothing
// stays pinned, no directory it made is left and no manifest is written.
//
// A rejected program is a *VerifierError; every other failure is one line
// starting "load SOURCE: ".
func LoadELF(source string, data []byte, opts LoadOptions) (*Loaded, error) {
	name := opts.Name
	if name == "" {
		name = DefaultName(source)
	}
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("load %s: %w; choose one with 'name NAME'", source, err)
	}
	spec, err := readSpec(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	if err := SetVars(spec, opts.Vars); err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	skipped, err := keepOnly(spec, opts.Only)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	plan, err := planPins(spec)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	if err := CheckPrivilege("load"); err != nil {
		return nil, err
	}
	if opts.StateDir == "" {
		return nil, fmt.Errorf("load %s: no state directory to record what is pinned in", source)
	}
	root := filepath.Clean(opts.PinRoot)
	if err := readyPinRoot(root); err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	dir := filepath.Join(root, name)
	if err := checkFree(dir, name); err != nil {
		return nil, err
	}
	raiseMemlock()

	coll, err := loadCollection(spec, source, opts.Verbose)
	if err != nil {
		var ve *VerifierError
		if errors.As(err, &ve) && len(spec.Programs) > 1 {
			ve.Hint = joinHints(ve.Hint, fmt.Sprintf("to load the other programs without it: load %s only %s",
				reloadWord(source, opts), strings.Join(othersThan(spec, ve.Program), ",")))
		}
		return nil, err
	}
	defer coll.Close()

	l := &Loaded{Name: name, Dir: dir, Source: source, Skipped: skipped}
	for _, p := range plan {
		obj, err := describe(coll, p, dir)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", source, err)
		}
		l.Objects = append(l.Objects, obj)
	}
	// The manifest is written before the pins, so that even a crash in
	// between leaves nothing pinned that unload does not know of.
	m := &Manifest{Name: name, PinRoot: root, Dir: dir, Source: source, Load: loadWords(source, name, opts), Objects: l.Objects}
	if err := WriteManifest(opts.StateDir, m); err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	if err := pinAll(coll, plan, l); err != nil {
		os.Remove(ManifestPath(opts.StateDir, root, name))
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	return l, nil
}

// keepOnly removes from spec the programs not named in only (nil keeps
// all) and returns the names it removed, sorted. A name the ELF does not
// have is refused with the list of those it has.
func keepOnly(spec *ebpf.CollectionSpec, only []string) ([]string, error) {
	if only == nil {
		return nil, nil
	}
	keep := map[string]bool{}
	for _, n := range only {
		if _, ok := spec.Programs[n]; !ok {
			return nil, fmt.Errorf("the object has no program %q; its programs: %s", n, strings.Join(programNames(spec), ", "))
		}
		keep[n] = true
	}
	var skipped []string
	for n := range spec.Programs {
		if !keep[n] {
			delete(spec.Programs, n)
			skipped = append(skipped, n)
		}
	}
	slices.Sort(skipped)
	return skipped, nil
}

// programNames lists spec's programs, sorted.
func programNames(spec *ebpf.CollectionSpec) []string {
	names := make([]string, 0, len(spec.Programs))
	for n := range spec.Programs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// othersThan lists spec's programs but name, sorted.
func othersThan(spec *ebpf.CollectionSpec, name string) []string {
	return slices.DeleteFunc(programNames(spec), func(n string) bool { return n == name })
}

// reloadWord is what to type after "load" to load source again: the
// built-in's name or the file, with the NAME it was given.
func reloadWord(source string, opts LoadOptions) string {
	word := strings.TrimPrefix(source, "builtin ")
	if opts.Name != "" && opts.Name != DefaultName(word) {
		word += " name " + opts.Name
	}
	return word
}

// loadWords are the words after "load" that load source as NAME again with
// the same options: a file by its absolute path, a built-in by its name.
func loadWords(source, name string, opts LoadOptions) []string {
	word, builtin := strings.CutPrefix(source, "builtin ")
	if !builtin {
		if abs, err := filepath.Abs(source); err == nil {
			word = abs
		}
	}
	words := []string{word, "name", name}
	if len(opts.Only) > 0 {
		words = append(words, "only", strings.Join(opts.Only, ","))
	}
	if len(opts.Vars) > 0 {
		words = append(words, "set")
		for _, v := range opts.Vars {
			words = append(words, v.Name+"="+v.Value)
		}
	}
	return words
}

func joinHints(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// DefaultName is the NAME a file loads as: its base name without the
// suffixes BPF objects carry (".o", ".bpf.o", bpf2go's "_bpfel.o"), with
// dots, which bpffs refuses in names, turned into '_'.
func DefaultName(path string) string {
	base := filepath.Base(path)
	for _, suffix := range []string{"_bpfel.o", "_bpfeb.o", ".bpf.o", ".o"} {
		if s, ok := strings.CutSuffix(base, suffix); ok && s != "" {
			base = s
			break
		}
	}
	return strings.ReplaceAll(base, ".", "_")
}

// ValidName checks a NAME to pin under: bpffs refuses dots in names, a
// slash would make a path, and anything beyond letters, digits, '_' and
// '-' is trouble in a shell.
// Its error is a *NameError.
func ValidName(name string) error {
	if name == "" {
		return &NameError{"the name is empty"}
	}
	if len(name) > 200 {
		return &NameError{fmt.Sprintf("name %.20q... is longer than 200 bytes", name)}
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return &NameError{fmt.Sprintf("name %q has %q; bpffs names here are letters, digits, '_' and '-' (no dots or slashes)", clipName(name), r)}
		}
	}
	return nil
}

// NameError is a NAME that cannot be pinned under: typed wrong, which the
// shell reports with exit status 2.
type NameError struct{ Msg string }

func (e *NameError) Error() string { return e.Msg }

// TypedWrong marks the error as a mistake in what was typed.
func (e *NameError) TypedWrong() bool { return true }

// clipName shortens a long name for a message.
func clipName(name string) string {
	if len(name) > 60 {
		return name[:60] + "..."
	}
	return name
}

// pinName is the file name an ELF map or program is pinned as. bpffs
// refuses dots, which the loader's own maps have (".rodata", ".data.x"):
// a leading dot is dropped and the others become '_', as libbpf does.
func pinName(name string) string {
	return strings.ReplaceAll(strings.TrimLeft(name, "."), ".", "_")
}

// readSpec parses data as a BPF ELF, saying plainly what is wrong with a
// file that is not one.
func readSpec(data []byte) (*ebpf.CollectionSpec, error) {
	if len(data) < 4 || !bytes.Equal(data[:4], []byte(elf.ELFMAG)) {
		start := data[:min(len(data), 4)]
		return nil, fmt.Errorf("not an ELF file (it starts with %q, not \"\\x7fELF\"); load wants an object compiled with clang -target bpf -c", start)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("corrupt or truncated ELF: %v; rebuild it", err)
	}
	machine := f.Machine
	f.Close()
	if machine != elf.EM_BPF {
		return nil, fmt.Errorf("an ELF for %s, not for BPF; compile it with clang -target bpf -c", strings.TrimPrefix(machine.String(), "EM_"))
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("cannot read the BPF object: %v", err)
	}
	return spec, nil
}

// pinPlan is one object to pin: its name in the spec and under NAME/.
type pinPlan struct {
	kind, spec, pin string
}

// planPins lists what will be pinned, programs then maps, and refuses
// before anything is loaded what cannot work: a program in a section that
// names no program type (cilium/ebpf would skip it silently) and two
// objects that would get the same file name.
func planPins(spec *ebpf.CollectionSpec) ([]pinPlan, error) {
	var progs, maps []pinPlan
	for n, p := range spec.Programs {
		if p.Type == ebpf.UnspecifiedProgram {
			return nil, fmt.Errorf("program %s is in section %q, which names no program type cilium/ebpf can load; use a libbpf section name such as xdp, tc, socket, kprobe/FUNC or tracepoint/CAT/NAME", n, p.SectionName)
		}
		progs = append(progs, pinPlan{KindProgram, n, pinName(n)})
	}
	for n := range spec.Maps {
		maps = append(maps, pinPlan{KindMap, n, pinName(n)})
	}
	// Sorted by the name users see, not the ELF's (".rodata" sorts first).
	byPin := func(a, b pinPlan) int { return strings.Compare(a.pin, b.pin) }
	slices.SortFunc(progs, byPin)
	slices.SortFunc(maps, byPin)
	plan := append(progs, maps...)
	if len(plan) == 0 {
		return nil, errors.New("the object has no programs and no maps")
	}
	seen := map[string]pinPlan{}
	for _, p := range plan {
		if err := ValidName(p.pin); err != nil {
			return nil, fmt.Errorf("%s %s cannot be pinned: %w", p.kind, p.spec, err)
		}
		if q, dup := seen[p.pin]; dup {
			return nil, fmt.Errorf("%s %s and %s %s would both be pinned as %s", q.kind, q.spec, p.kind, p.spec, p.pin)
		}
		seen[p.pin] = p
	}
	return plan, nil
}

// readyPinRoot mounts bpffs at /sys/fs/bpf when the pin root is below it
// and checks that the pin root is (or will be) on a bpffs.
func readyPinRoot(root string) error {
	if root == BPFFSPath || strings.HasPrefix(root, BPFFSPath+"/") {
		if err := EnsureBPFFS(); err != nil {
			return err
		}
	}
	if !OnBPFFS(root) {
		return fmt.Errorf("pin root %s is not on a bpffs; give a --pin-root under %s", root, BPFFSPath)
	}
	return nil
}

// checkFree refuses a NAME whose directory already holds anything.
func checkFree(dir, name string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load: %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s already holds a pinned object; pick another name with 'name NAME'", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("load: %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is already loaded; 'unload %s' first or pick another name", name, name)
	}
	return nil
}

// raiseMemlock lifts RLIMIT_MEMLOCK on kernels before 5.11, which charge
// BPF memory to it; later kernels charge the memory cgroup instead. A
// failure is left for the load to report.
func raiseMemlock() {
	if kernelAtLeast(5, 11) {
		return
	}
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf)
}

// LoadUnpinned creates the maps and programs of spec in the kernel and
// pins nothing: a private copy of a built-in (the benches' kv and cache)
// that goes when the collection is closed. Its errors are load's: a
// rejected program is a *VerifierError naming the program and the
// verifier's reason, with the log as its Detail; source is the built-in's
// name.
func LoadUnpinned(spec *ebpf.CollectionSpec, source string) (*ebpf.Collection, error) {
	raiseMemlock()
	coll, err := loadCollection(spec, source, false)
	var ve *VerifierError
	if errors.As(err, &ve) {
		ve.Hint = joinHints(ve.Hint, fmt.Sprintf("this kernel's verifier refuses %s ('load %s --verbose' shows its whole log)", source, source))
	}
	return coll, err
}

// loadCollection creates the maps and programs of spec in the kernel.
//
// Maps that ask to be pinned by name (LIBBPF_PIN_BY_NAME) are loaded like
// the others and then pinned by pinAll into NAME/ with the rest, which is
// where MapOptions.PinPath = NAME/ would put them. Letting cilium/ebpf pin
// them itself would pin them while the collection is still loading, so a
// verifier error later would leave them behind; and since NAME/ is new
// there is never an existing pin to share.
func loadCollection(spec *ebpf.CollectionSpec, source string, verbose bool) (*ebpf.Collection, error) {
	spec = spec.Copy()
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err == nil {
		return coll, nil
	}
	return nil, explainLoad(err, spec, source, verbose)
}

// explainLoad turns a failed collection load into one line naming the
// program or map at fault. cilium/ebpf prefixes its errors with "program
// NAME: " or "map NAME: ", which is how the culprit is found.
func explainLoad(err error, spec *ebpf.CollectionSpec, source string, verbose bool) error {
	msg := err.Error()
	var prog *ebpf.ProgramSpec
	for n, p := range spec.Programs {
		if strings.HasPrefix(msg, "program "+n+": ") && (prog == nil || len(n) > len(prog.Name)) {
			prog = p
		}
	}
	if prog != nil {
		if ve := asVerifierError(err, source, prog, verbose); ve != nil {
			return ve
		}
	}
	what := "the object"
	if prog != nil {
		what = fmt.Sprintf("program %s (section %s, type %s)", prog.Name, prog.SectionName, ProgTypeName(uint32(prog.Type)))
	} else {
		for n, m := range spec.Maps {
			if strings.HasPrefix(msg, "map "+n+": ") {
				what = fmt.Sprintf("map %s (type %s)", n, MapTypeName(uint32(m.Type)))
			}
		}
	}
	switch {
	case errors.Is(err, unix.EFAULT) && prog != nil:
		// The verifier answers EFAULT when it trips over its own internal
		// checks ("verifier bug: ..." in the kernel log; 6.18.44 does on a
		// bpf_loop callback). cilium/ebpf's hint to grow the log buffer
		// does not apply.
		bug := lastKernelLogLine("verifier bug")
		if bug == "" {
			bug = "see the kernel log (dmesg)"
		} else {
			bug = "the kernel log says: " + bug
		}
		return fmt.Errorf("load %s: the kernel's verifier failed with an internal error (EFAULT) on %s; %s. This is a kernel bug the program runs into: a restructured program or another kernel avoids it", source, what, bug)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("load %s: this kernel cannot load %s: %v", source, what, err)
	case errors.Is(err, fs.ErrPermission) && privileged():
		return fmt.Errorf("load %s: permission denied loading %s, although bpfsh runs as root with CAP_BPF and CAP_SYS_ADMIN; %s", source, what, rootEPERM(err, prog, spec, msg))
	case errors.Is(err, fs.ErrPermission):
		hint := "run bpfsh as root (CAP_BPF and CAP_SYS_ADMIN)"
		if !kernelAtLeast(5, 11) {
			hint += ", and raise the memlock limit (ulimit -l unlimited)"
		}
		return fmt.Errorf("load %s: permission denied loading %s; %s", source, what, hint)
	}
	return fmt.Errorf("load %s: %v", source, err)
}

// describe fills in the Pinned record of one loaded object.
func describe(coll *ebpf.Collection, p pinPlan, dir string) (Pinned, error) {
	obj := Pinned{Kind: p.kind, Name: p.pin, Path: filepath.Join(dir, p.pin)}
	switch p.kind {
	case KindProgram:
		prog := coll.Programs[p.spec]
		info, err := prog.Info()
		if err != nil {
			return obj, fmt.Errorf("program %s: %w", p.spec, err)
		}
		id, _ := info.ID()
		obj.Type, obj.ID = ProgTypeName(uint32(prog.Type())), uint32(id)
	default:
		m := coll.Maps[p.spec]
		info, err := m.Info()
		if err != nil {
			return obj, fmt.Errorf("map %s: %w", p.spec, err)
		}
		id, _ := info.ID()
		obj.Type, obj.ID = MapTypeName(uint32(m.Type())), uint32(id)
	}
	return obj, nil
}

// pinAll makes NAME/ (and the pin root, if missing) and pins every object
// in plan at its path in l.Objects. On failure it removes the pins and
// directories it made.
func pinAll(coll *ebpf.Collection, plan []pinPlan, l *Loaded) error {
	made, err := mkdirs(l.Dir)
	if err != nil {
		return fmt.Errorf("make %s: %w", l.Dir, err)
	}
	// Unpin, not os.Remove: cilium/ebpf remembers where an object is
	// pinned and would treat pinning it there again as already done.
	var pinned []pinner
	undo := func() {
		for _, p := range pinned {
			p.Unpin()
		}
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}
	for i, p := range plan {
		path := l.Objects[i].Path
		var obj pinner
		if p.kind == KindProgram {
			obj = coll.Programs[p.spec]
		} else {
			obj = coll.Maps[p.spec]
		}
		if err := obj.Pin(path); err != nil {
			undo()
			return fmt.Errorf("pin %s %s at %s: %w (nothing was left pinned)", p.kind, p.spec, path, err)
		}
		pinned = append(pinned, obj)
	}
	return nil
}

// pinner is what *ebpf.Map and *ebpf.Program have in common for pinAll.
type pinner interface {
	Pin(path string) error
	Unpin() error
}

// mkdirs is os.MkdirAll that returns the directories it made, outermost
// first, so that a failed load can remove exactly those.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		if err == nil {
			made = append(made, missing[i])
		} else if !errors.Is(err, fs.ErrExist) {
			for j := len(made) - 1; j >= 0; j-- {
				os.Remove(made[j])
			}
			return nil, err
		}
	}
	return made, nil
}

// privileged reports whether this process has what loading needs, so that
// an EPERM cannot be for want of privilege.
func privileged() bool {
	caps, err := EffectiveCaps()
	return err == nil && HasCap(caps, CapSysAdmin) && HasCap(caps, CapBPF)
}

// rootEPERM says what gives EPERM to a process that has every capability
// loading needs: the kernel's lockdown, an attach target the kernel lacks
// or does not let programs attach to, a map type that needs other flags or
// a feature this kernel build lacks; then the kernel's own words, from
// the verifier's log or the kernel log, when there are any.
func rootEPERM(err error, prog *ebpf.ProgramSpec, spec *ebpf.CollectionSpec, msg string) string {
	var why []string
	if b, rerr := os.ReadFile("/sys/kernel/security/lockdown"); rerr == nil {
		if mode := lockdownMode(string(b)); mode != "none" && mode != "" {
			why = append(why, fmt.Sprintf("the kernel is locked down (%s, /sys/kernel/security/lockdown), which refuses BPF that reads kernel memory", mode))
		}
	}
	switch {
	case prog != nil && prog.AttachTo != "":
		target := prog.AttachTo
		if prog.Type == ebpf.LSM {
			target = "bpf_lsm_" + target
		}
		if !kernelHasSymbol(target) {
			why = append(why, fmt.Sprintf("its attach target %s is not in this kernel (not in /proc/kallsyms)", target))
		} else {
			why = append(why, fmt.Sprintf("the kernel does not let %s programs attach to %s (some functions are off limits, and test targets such as bpf_fentry_test* need a kernel built for testing)", ProgTypeName(uint32(prog.Type)), target))
		}
	case prog != nil:
		why = append(why, fmt.Sprintf("this kernel build does not let %s programs be loaded here (a kfunc or helper they call may be reserved, or the type needs a BPF token or a feature it lacks)", ProgTypeName(uint32(prog.Type))))
	default:
		for n, m := range spec.Maps {
			if strings.HasPrefix(msg, "map "+n+": ") {
				why = append(why, fmt.Sprintf("this kernel refuses %s maps as specified (a map type may need other flags, such as arena's mmapable and map_extra, or a feature this kernel build lacks)", MapTypeName(uint32(m.Type))))
			}
		}
	}
	if len(why) == 0 {
		why = append(why, "kernel lockdown, an attach target the kernel lacks, or a map type that needs other flags")
	}
	out := "what gives EPERM here: " + strings.Join(why, "; ")
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) && len(ve.Log) > 0 {
		out += "; the verifier's log ends: " + strings.TrimSpace(ve.Log[len(ve.Log)-1])
	} else if line := lastKernelLogLine("Lockdown:"); line != "" {
		out += "; the kernel log says: " + line
	} else if line := lastKernelLogLine("bpf: "); line != "" {
		out += "; the kernel log's last BPF line (maybe older): " + line
	} else {
		out += "; the kernel logged nothing about it (no verifier log, nothing in dmesg)"
	}
	return out
}

// lockdownMode is the mode in brackets in /sys/kernel/security/lockdown
// ("none [integrity] confidentiality" is integrity).
func lockdownMode(s string) string {
	_, rest, ok := strings.Cut(s, "[")
	if !ok {
		return ""
	}
	mode, _, _ := strings.Cut(rest, "]")
	return mode
}

// kernelHasSymbol reports whether /proc/kallsyms names sym (a function or
// variable of the kernel or a loaded module); true when it cannot be read.
func kernelHasSymbol(sym string) bool {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ADDR TYPE NAME [MODULE]"
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == sym {
			return true
		}
	}
	return false
}
