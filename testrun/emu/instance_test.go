// SPDX-License-Identifier: Apache-2.0

package emu_test

import (
	"bytes"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/emu"
	"github.com/bpfsh/bpfsh/testrun/fixture"
)

// TestCheckInKernel runs an input through a private instance of a loaded
// program: the kernel agrees with the emulator, and the real maps are
// left as they were.
func TestCheckInKernel(t *testing.T) {
	bpftest.RequireRoot(t)
	var p fixture.ProgsObjects
	if err := fixture.LoadProgsObjects(&p, nil); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	defer p.Close()
	prog, maps, err := emu.ForProgram(p.XdpCount, repoObjects(t)...)
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	for range 3 {
		kc, err := emu.CheckInKernel(prog, maps, testrun.Options{Data: udpFrame("ping")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !kc.Case.Agree() {
			t.Fatalf("the kernel differs: %s", kc.Case)
		}
		t.Logf("%s; notes %v", kc.Case, kc.Notes)
	}
	// The real maps are untouched: a session on them sees no counts.
	s, err := emu.NewSession(emu.Config{Program: prog, Maps: maps, Packet: udpFrame("ping")})
	if err != nil {
		t.Fatal(err)
	}
	s.Run()
	for _, c := range s.Result().Maps {
		if len(bytes.Trim(c.Before, "\x00")) != 0 {
			t.Errorf("map %s key %x had a value before the session: the check wrote the real map", c.Map, c.Key)
		}
	}
}
