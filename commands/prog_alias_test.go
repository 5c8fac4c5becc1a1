// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

func TestProgLoadPinsAtPath(t *testing.T) {
	root := bpftest.PinRoot(t)
	path := filepath.Join(root, "mine", "xdp")

	out := bpfshOK(t, root, "prog load fixture "+path+" name pl only xdp_count")
	if !strings.Contains(out, "program  xdp_count") || !strings.Contains(out, "(xdp_count) at "+path) {
		t.Errorf("prog load says:\n%s", out)
	}
	p, err := ebpf.LoadPinnedProgram(path, nil)
	if err != nil {
		t.Fatalf("nothing pinned at %s: %v", path, err)
	}
	info, _ := p.Info()
	p.Close()
	if info.Name != "xdp_count" {
		t.Errorf("pinned at PATH: %s", info.Name)
	}
	// Without PATH it is load.
	if out := bpfshOK(t, root, "prog load fixture name pl2 only tc_count"); !strings.Contains(out, filepath.Join(root, "pl2", "tc_count")) {
		t.Errorf("prog load without PATH:\n%s", out)
	}
	// unload leaves the pin at PATH: it is the user's.
	bpfshOK(t, root, "unload pl")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("unload removed the pin at PATH: %v", err)
	}

	bpfshFails(t, root, "prog load", 2, "needs an ELF object file")
	bpfshFails(t, root, "prog load fixture "+path+" name pl3", 1, "exists already")
	bpfshFails(t, root, "prog load fixture "+filepath.Join(root, "two")+" name pl4", 2, "has 3 programs", "only PROG", "unload pl4")
}

func TestProgRunBpftoolWords(t *testing.T) {
	root, _ := pgFixture(t)
	dir := t.TempDir()
	// Ether, then an IPv4 header (10.0.0.1 > 10.0.0.2, UDP, no payload).
	in := append(bytes.Repeat([]byte{0xff}, 12), 0x08, 0x00,
		0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2)
	dataIn, dataOut := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(dataIn, in, 0o644); err != nil {
		t.Fatal(err)
	}
	// An __sk_buff with mark 7 (offset 8) for the TC program.
	ctx := make([]byte, 192)
	binary.NativeEndian.PutUint32(ctx[8:], 7)
	ctxIn, ctxOut := filepath.Join(dir, "ctx"), filepath.Join(dir, "ctxout")
	if err := os.WriteFile(ctxIn, ctx, 0o644); err != nil {
		t.Fatal(err)
	}

	out := bpfshOK(t, root, fmt.Sprintf("prog run pinned %s data_in %s data_out %s data_size_out 200 repeat 2", filepath.Join(root, "xdp_count"), dataIn, dataOut))
	if !strings.Contains(out, "XDP_PASS") {
		t.Errorf("prog run says:\n%s", out)
	}
	if got, err := os.ReadFile(dataOut); err != nil || !bytes.Equal(got, in) {
		t.Errorf("data_out: %x, %v; want %x", got, err, in)
	}

	bpfshOK(t, root, fmt.Sprintf("prog run %s data_in %s ctx_in %s ctx_out %s ctx_size_out 192", filepath.Join(root, "tc_count"), dataIn, ctxIn, ctxOut))
	got, err := os.ReadFile(ctxOut)
	if err != nil || len(got) < 12 || binary.NativeEndian.Uint32(got[8:]) != 7 {
		t.Errorf("ctx_out: %x, %v; want mark 7 at offset 8", got, err)
	}

	bpfshFails(t, root, "prog run "+filepath.Join(root, "xdp_count")+" data_in", 2, "data_in needs a value")
	bpfshFails(t, root, "prog run "+filepath.Join(root, "xdp_count")+" data_in -", 2, "give a file")
	bpfshFails(t, root, "prog run "+filepath.Join(root, "xdp_count")+" data_in "+dataIn+" ctx_in "+filepath.Join(dir, "none"), 1, "ctx_in")
}
