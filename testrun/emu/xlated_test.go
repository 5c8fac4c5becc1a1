// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/cache"
	"github.com/bpfsh/bpfsh/bpf/fixture"
	"github.com/bpfsh/bpfsh/bpf/kv"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
)

// xlatedCase is a program loaded as another tool would load it (no object
// bpfsh is told about), pinned, and inputs to debug it on.
type xlatedCase struct {
	name   string
	spec   func() (*ebpf.CollectionSpec, error)
	prog   string
	inputs [][]byte
}

// TestXlatedRebuild rebuilds programs from the kernel's translated
// instructions alone (ctx accesses, inlined array, per-CPU array and hash
// lookups, inlined bpf_loop, helper addresses and the timer callback's
// hidden argument undone), runs them in the emulator and checks each run
// against the kernel: the rebuilt program loaded again on clones of its
// maps must agree with the emulator, and with the program as it was
// loaded, run on its own maps.
func TestXlatedRebuild(t *testing.T) {
	bpftest.RequireRoot(t)
	kvFrame := func(m *kv.Message) []byte { return kv.DefaultAddressing().Frame(m.Marshal()) }
	udp := func(payload string) []byte {
		return l4Frame(t, false, clientMAC, serverMAC, clientIP, serverIP, 40000, 6390, []byte(payload))
	}
	cacheGet := func(id uint16, text string) []byte {
		return l4Frame(t, false, clientMAC, serverMAC, clientIP, serverIP, 40000, cache.Port, append(cache.FrameHeader(id, 0, 1, 0), text...))
	}
	cases := []xlatedCase{
		{"fixture", fixture.LoadFixture, "xdp_count", [][]byte{udp("ping"), udp("")}},
		{"kv", kv.Spec, "xdp_kv", [][]byte{
			kvFrame(&kv.Message{Op: kv.OpSet, Key: []byte("a"), Value: []byte("1")}),
			kvFrame(&kv.Message{Op: kv.OpGet, Key: []byte("a")}),
			kvFrame(&kv.Message{Op: kv.OpGet, Key: []byte("nope")}),
			kvFrame(&kv.Message{Op: kv.OpBegin}),
		}},
		{"fixture_tc", fixture.LoadFixture, "tc_count", [][]byte{udp("ping")}},
		{"cache", cache.Spec, cache.RxProgram, [][]byte{cacheGet(7, "get foo\r\n"), cacheGet(8, "set foo 0 0 3\r\nbar\r\n")}},
		{"cache_fill", cache.Spec, cache.FillProgram, [][]byte{
			l4Frame(t, false, serverMAC, clientMAC, serverIP, clientIP, cache.Port, 40000, append(cache.FrameHeader(7, 0, 1, 0), "VALUE foo 0 3\r\nbar\r\nEND\r\n"...)),
		}},
		{"cache_resp", cache.Spec, cache.RESPProgram, [][]byte{
			l4Frame(t, true, clientMAC, serverMAC, clientIP, serverIP, 40002, cache.RedisPort, cache.RESPArray("GET", "foo")),
		}},
	}
	root := bpftest.PinRoot(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := c.spec()
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := spec.Variables[kv.VarTxnTimeout]; ok && c.name == "kv" {
				v.Set(uint64(time.Hour))
			}
			coll, err := ebpf.NewCollection(spec)
			if err != nil {
				t.Skipf("skipped: this kernel cannot load %s: %v", c.name, err)
			}
			defer coll.Close()
			pin := filepath.Join(root, c.name+"_"+c.prog)
			if err := coll.Programs[c.prog].Pin(pin); err != nil {
				t.Fatal(err)
			}
			defer coll.Programs[c.prog].Unpin()
			prog, err := ebpf.LoadPinnedProgram(pin, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer prog.Close()
			p, maps, err := emu.FromKernel(prog)
			if err != nil {
				t.Fatalf("rebuild %s: %v", c.prog, err)
			}
			defer maps.Close()
			if !p.Rebuilt() || p.Name != c.prog {
				t.Errorf("rebuilt program %q, rebuilt=%v", p.Name, p.Rebuilt())
			}
			if _, ok := p.LineAt(0); !ok {
				t.Errorf("no source line at the first instruction: the kernel's line info was not used")
			}
			for i, in := range c.inputs {
				kc, err := emu.CheckInKernel(p, maps, testrun.Options{Data: in}, nil)
				if err != nil {
					t.Fatalf("input %d: kernel check: %v", i, err)
				}
				if !kc.Case.Agree() {
					t.Errorf("input %d: %s", i, kc.Case)
				}
				// The program as it was loaded, on its own maps (this
				// test's), must answer as the rebuilt one did.
				o, err := testrun.Run(testrun.Options{Program: prog, Data: in})
				if err != nil {
					t.Fatal(err)
				}
				if o.Retval != kc.Outcome.Retval || !bytes.Equal(o.DataOut, kc.Outcome.DataOut) {
					t.Errorf("input %d: the loaded program returned %d (%d bytes out), the rebuilt one %d (%d bytes)", i, o.Retval, len(o.DataOut), kc.Outcome.Retval, len(kc.Outcome.DataOut))
				}
				t.Logf("input %d: %s, %d instructions", i, kc.Case, kc.Case.Steps)
			}
		})
	}
}

// TestXlatedNotUndone: a context rewrite the debugger cannot map back is
// one clear error that names the instruction.
func TestXlatedNotUndone(t *testing.T) {
	bpftest.RequireRoot(t)
	spec := &ebpf.ProgramSpec{Name: "xl_sock", Type: ebpf.CGroupSock, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Imm(asm.R0, 1),
		asm.LoadMem(asm.R2, asm.R1, 4, asm.Word), // ctx->family
		asm.Return(),
	}}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		t.Skipf("skipped: this kernel cannot load a cgroup/sock program: %v", err)
	}
	defer prog.Close()
	_, _, err = emu.FromKernel(prog)
	if !errors.Is(err, emu.ErrNotRebuilt) || !strings.HasPrefix(err.Error(), "instruction 1: reads the context of a cgroup_sock program") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v", err)
	}
	t.Log(err)
}

// TestXlatedDifferentialFixtures and TestXlatedDifferentialSuites run
// those differential tests on programs rebuilt from the kernel's
// translated instructions: the kernel runs each program as it was
// loaded, the emulator what bpfsh rebuilt of it. (BPFSH_EMU_XLATED=1 runs
// every differential test so: go test -run Differential ./testrun/emu.)
func TestXlatedDifferentialFixtures(t *testing.T) {
	t.Setenv("BPFSH_EMU_XLATED", "1")
	TestDifferentialFixtures(t)
}

func TestXlatedDifferentialSuites(t *testing.T) {
	t.Setenv("BPFSH_EMU_XLATED", "1")
	TestDifferentialSuites(t)
}

// reloadCheck makes run (the differential tests' test runs) also rebuild
// the program from the kernel's translated instructions and check it in
// the kernel as debug does: loaded again on clones of its maps, where it
// must agree with the emulator and answer as the program as loaded does.
var reloadCheck bool

func rebuiltCheck(t *testing.T, o testrun.Options) *emu.KernelCheck {
	t.Helper()
	p, maps, err := emu.FromKernel(o.Program)
	if err != nil {
		t.Errorf("rebuild: %v", err)
		return nil
	}
	defer maps.Close()
	kc, err := emu.CheckInKernel(p, maps, o, nil)
	if err != nil {
		t.Errorf("%s: kernel check of the rebuilt program: %v", p.Name, err)
		return nil
	}
	if !kc.Case.Agree() {
		t.Errorf("rebuilt %s", kc.Case)
	}
	return kc
}

// TestXlatedReloadFixtures: every fixture program (one of each
// test-runnable type) rebuilt, loaded again and checked, run by run.
func TestXlatedReloadFixtures(t *testing.T) {
	reloadCheck = true
	defer func() { reloadCheck = false }()
	TestDifferentialFixtures(t)
}

// TestXlatedSkbFields: __sk_buff fields a TC program reads and writes,
// whose rewrites follow pointers (ifindex is skb->dev->ifindex, with a
// NULL check) or go into the qdisc's cb (wire_len, tc_classid), come back
// and agree with the kernel.
func TestXlatedSkbFields(t *testing.T) {
	bpftest.RequireRoot(t)
	const (
		offLen, offMark, offVlanTCI, offIngress, offIfindex, offClassid, offWireLen = 0, 8, 24, 36, 40, 72, 160
	)
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1), asm.LoadMem(asm.R0, asm.R6, offLen, asm.Word)}
	for _, off := range []int16{offIfindex, offIngress, offWireLen, offVlanTCI, offMark} {
		insns = append(insns, asm.LoadMem(asm.R2, asm.R6, off, asm.Word), asm.Add.Reg(asm.R0, asm.R2))
	}
	insns = append(insns,
		asm.StoreMem(asm.R6, offMark, asm.R0, asm.Word),
		asm.Mov.Imm(asm.R2, 7),
		asm.StoreMem(asm.R6, offClassid, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xl_skb", Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	p, maps, err := emu.FromKernel(prog)
	if err != nil {
		if x, err := bpf.DumpXlated(prog); err == nil {
			for _, in := range x {
				t.Log(in.Text)
			}
		}
		t.Fatalf("rebuild: %v", err)
	}
	defer maps.Close()
	frame := l4Frame(t, false, clientMAC, serverMAC, clientIP, serverIP, 40000, 6390, []byte("skb"))
	for _, ctx := range []string{"{mark: 5, ingress_ifindex: 1, wire_len: 100}", "{mark: 9}"} {
		kc, err := emu.CheckInKernel(p, maps, testrun.Options{Data: frame, Ctx: []string{ctx}}, nil)
		if err != nil {
			t.Fatalf("%s: %v", ctx, err)
		}
		if !kc.Case.Agree() {
			t.Errorf("%s: %s", ctx, kc.Case)
		}
		o, err := testrun.Run(testrun.Options{Program: prog, Data: frame, Ctx: []string{ctx}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(o.CtxOut, kc.Outcome.CtxOut) {
			t.Errorf("%s: ctx out differs from the program as loaded:\n%x\n%x", ctx, o.CtxOut, kc.Outcome.CtxOut)
		}
	}
}
