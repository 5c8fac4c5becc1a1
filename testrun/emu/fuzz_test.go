// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"sort"
	"sync"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/packet"

	_ "github.com/bpfsh/bpfsh/bpf/cache"
	_ "github.com/bpfsh/bpfsh/bpf/kv"
	_ "github.com/bpfsh/bpfsh/bpf/proxy"
	_ "github.com/bpfsh/bpfsh/commands" // the built-in fixture
)

// shippedPacketProgs loads every XDP and TC program of the built-in
// objects (kv, cache, proxy, fixture), each object's maps fresh and
// private to the test.
var shipped struct {
	once  sync.Once
	progs []*ebpf.Program
	names []string
	colls []*ebpf.Collection
	err   error
}

func shippedPacketProgs(t testing.TB) ([]*ebpf.Program, []string) {
	shipped.once.Do(func() {
		for _, name := range bpf.Builtins() {
			elf, _ := bpf.Builtin(name)
			spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
			if err != nil {
				shipped.err = err
				return
			}
			for pn, ps := range spec.Programs {
				if ps.Type != ebpf.XDP && ps.Type != ebpf.SchedCLS {
					delete(spec.Programs, pn)
				}
			}
			if len(spec.Programs) == 0 {
				continue
			}
			for _, ms := range spec.Maps {
				ms.Pinning = ebpf.PinNone
			}
			coll, err := ebpf.NewCollection(spec)
			if err != nil {
				t.Logf("%s: not loaded here: %v", name, err)
				continue
			}
			shipped.colls = append(shipped.colls, coll)
			pnames := make([]string, 0, len(coll.Programs))
			for pn := range coll.Programs {
				pnames = append(pnames, pn)
			}
			sort.Strings(pnames)
			for _, pn := range pnames {
				shipped.progs = append(shipped.progs, coll.Programs[pn])
				shipped.names = append(shipped.names, name+"/"+pn)
			}
		}
	})
	if shipped.err != nil {
		t.Fatal(shipped.err)
	}
	return shipped.progs, shipped.names
}

// FuzzDifferentialPackets feeds packets to every shipped XDP and TC
// program through the kernel (BPF_PROG_TEST_RUN) and the emulator, on the
// same maps, and fails on any difference. Maps keep what earlier inputs
// left, as they would in the kernel. Run it with the bounded fuzz time:
//
//	go test -run '^$' -fuzz FuzzDifferentialPackets -fuzztime 30s ./testrun/emu/
func FuzzDifferentialPackets(f *testing.F) {
	bpftest.RequireRoot(f)
	for _, seed := range []string{
		`Ether()/IPv4()/UDP(dport=6390)/Raw("K")`,
		`Ether()/IPv4()/UDP()/KV(op=SET, key="a", value="1")`,
		`Ether()/IPv4()/UDP()/KV(op=GET, key="a")`,
		`Ether()/IPv4()/UDP()/KV(op=BEGIN)`,
		`Ether()/IPv4()/UDP(dport=11211)/Raw("\x00\x01\x00\x01\x00\x00\x00\x00get a\r\n")`,
		`Ether()/IPv4()/TCP(dport=11211)/Raw("set a 0 0 1\r\nx\r\n")`,
		`Ether()/IPv4()/TCP(sport=5432)/Raw("Z\x00\x00\x00\x05I")`,
		`Ether()/IPv6()/UDP(dport=6390)/Raw("ping")`,
	} {
		data, err := packet.Build(seed)
		if err != nil {
			f.Fatalf("seed %s: %v", seed, err)
		}
		f.Add(data)
	}
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 14 || len(data) > 1500 {
			t.Skip()
		}
		progs, names := shippedPacketProgs(t)
		if len(progs) == 0 {
			t.Skip("no shipped XDP or TC program loads on this kernel")
		}
		d := &emu.Differential{}
		old := testrun.SetRunObserver(d)
		defer testrun.SetRunObserver(old)
		for i, p := range progs {
			if _, err := testrun.Run(testrun.Options{Program: p, Data: data, NoMaps: true}); err != nil {
				continue // the kernel refused the input (too short for TC, ...)
			}
			cases := d.Cases()
			c := cases[len(cases)-1]
			if testing.Verbose() {
				t.Logf("%s", c)
			}
			switch {
			case c.Agree():
			case c.Comparison == nil && c.Err == nil:
				// not compared (said why); not a difference
			default:
				t.Errorf("%s: %s\n  input % x", names[i], c, data)
			}
		}
	})
}
