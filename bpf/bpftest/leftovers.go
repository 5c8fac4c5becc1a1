// SPDX-License-Identifier: Apache-2.0

package bpftest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"

	"github.com/bpfsh/bpfsh/bpf"
)

// Rejected is spec with program prog's instructions replaced by a read
// through R2, a register the verifier has not seen written: every kernel
// rejects it ("R2 !read_ok"). The rest (maps, the other programs) is
// spec's, so a load gets as far as the kernel's verifier.
func Rejected(t testing.TB, spec *ebpf.CollectionSpec, prog string) *ebpf.CollectionSpec {
	t.Helper()
	ps, ok := spec.Programs[prog]
	if !ok {
		t.Fatalf("the spec has no program %s", prog)
	}
	ps.Instructions = asm.Instructions{
		asm.LoadMem(asm.R0, asm.R2, 0, asm.DWord).WithSymbol(prog),
		asm.Return(),
	}
	return spec
}

// WantRejected fails t unless err is one line that names prog and the
// verifier's reason for Rejected's program.
func WantRejected(t testing.TB, err error, prog string) {
	t.Helper()
	var ve *bpf.VerifierError
	switch {
	case err == nil:
		t.Fatalf("%s was not rejected", prog)
	case !errors.As(err, &ve) || ve.Program != prog:
		t.Errorf("error %q is not the verifier's rejection of %s", err, prog)
	case !strings.Contains(err.Error(), prog) || !strings.Contains(err.Error(), "R2 !read_ok"):
		t.Errorf("error %q does not name %s and the verifier's reason (R2 !read_ok)", err, prog)
	case strings.Contains(err.Error(), "\n"):
		t.Errorf("error of more than one line:\n%s", err)
	}
}

// Leftovers is what a call may leave behind: the named network namespaces
// and devices named for this process (bpfsh-WHAT-PID-N, WHAT<PID>h<N>),
// this process's BPF objects (open file descriptors by kind), its child
// processes, and the entries under a pin root. Tests compare one taken
// before a call with one taken after: other processes' objects on the
// machine do not count.
type Leftovers struct {
	Namespaces []string
	Devices    []string
	FDs        map[string]int // "bpf-prog", "bpf-map", "bpf_link", ...
	Children   []string       // "PID COMMAND"
	Pins       []string
}

// TakeLeftovers looks at what is there now; pinRoot may be "".
func TakeLeftovers(t testing.TB, pinRoot string) Leftovers {
	t.Helper()
	pid := strconv.Itoa(os.Getpid())
	var l Leftovers
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.Contains(e.Name(), "-"+pid+"-") {
			l.Namespaces = append(l.Namespaces, e.Name())
		}
	}
	devs, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("list devices: %v", err)
	}
	for _, d := range devs {
		if strings.Contains(d.Attrs().Name, pid) {
			l.Devices = append(l.Devices, d.Attrs().Name)
		}
	}
	l.FDs = map[string]int{}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if kind, ok := strings.CutPrefix(target, "anon_inode:"); err == nil && ok && strings.HasPrefix(kind, "bpf") {
			l.FDs[kind]++
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		stat, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if f := strings.Fields(s[i+1:]); i > 0 && len(f) > 1 && f[1] == pid {
			l.Children = append(l.Children, p.Name()+" "+s[strings.IndexByte(s, '(')+1:i])
		}
	}
	if pinRoot != "" {
		filepath.WalkDir(pinRoot, func(path string, d os.DirEntry, err error) error {
			if err == nil && path != pinRoot {
				l.Pins = append(l.Pins, path)
			}
			return nil
		})
	}
	slices.Sort(l.Pins)
	return l
}

// WantNoneLeft fails t when after holds anything before did not.
func WantNoneLeft(t testing.TB, before, after Leftovers) {
	t.Helper()
	more := func(what string, b, a []string) {
		var extra []string
		for _, x := range a {
			if !slices.Contains(b, x) {
				extra = append(extra, x)
			}
		}
		if len(extra) > 0 {
			t.Errorf("%s left behind: %q", what, extra)
		}
	}
	more("namespaces", before.Namespaces, after.Namespaces)
	more("devices", before.Devices, after.Devices)
	more("child processes", before.Children, after.Children)
	more("pins", before.Pins, after.Pins)
	for kind, n := range after.FDs {
		if n > before.FDs[kind] {
			t.Errorf("%d more open %s file descriptors than before", n-before.FDs[kind], kind)
		}
	}
}

// String lists what l holds, for messages.
func (l Leftovers) String() string {
	return fmt.Sprintf("namespaces %q, devices %q, fds %v, children %q, pins %q", l.Namespaces, l.Devices, l.FDs, l.Children, l.Pins)
}
