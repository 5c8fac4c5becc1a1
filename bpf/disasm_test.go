// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bufio"
	"encoding/binary"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestHelperNames checks the helper names against the kernel's own list in
// the installed UAPI header (the list bpftool's names come from).
func TestHelperNames(t *testing.T) {
	f, err := os.Open("/usr/include/linux/bpf.h")
	if err != nil {
		t.Skipf("skipped: no kernel headers (apt-get install linux-libc-dev): %v", err)
	}
	defer f.Close()
	fn := regexp.MustCompile(`^\s*FN\((\w+)(?:,\s*(\d+))?`)
	sc := bufio.NewScanner(f)
	in, id, checked := false, 0, 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#define __BPF_FUNC_MAPPER(") || strings.HasPrefix(line, "#define ___BPF_FUNC_MAPPER(") {
			in = true
			continue
		}
		if !in {
			continue
		}
		m := fn.FindStringSubmatch(line)
		if m == nil {
			if !strings.HasSuffix(strings.TrimSpace(line), "\\") {
				break
			}
			continue
		}
		if got, want := helperName(int32(id)), "bpf_"+m[1]; got != want {
			t.Errorf("helper %d: %q, want %q", id, got, want)
		}
		id++
		checked++
	}
	if checked < 200 {
		t.Fatalf("checked only %d helpers; is the header's helper list where this test looks?", checked)
	}
	if helperName(-61360) != "" || helperName(maxHelperID) != "" {
		t.Errorf("an id outside the helper list has a name")
	}
}

// raw builds one instruction's 8 bytes (little-endian register nibbles).
func raw(code, dst, src uint8, off int16, imm int32) insn {
	return insn{Code: code, Dst: dst, Src: src, Off: off, Imm: imm}
}

// TestFormatInsn covers instruction forms the fixture programs do not
// contain; the syntax is the kernel verifier's (kernel/bpf/disasm.c), which
// bpftool prints. The forms the fixture has are compared with bpftool
// itself in the command tests.
func TestFormatInsn(t *testing.T) {
	d := &disasm{}
	for _, c := range []struct {
		in   []insn
		want string
	}{
		{[]insn{raw(0x87, 3, 0, 0, 0)}, "(87) r3 = -r3"},
		{[]insn{raw(0x84, 3, 0, 0, 0)}, "(84) w3 = -w3"},
		{[]insn{raw(0xdc, 2, 0, 0, 16)}, "(dc) r2 = be16 r2"},
		{[]insn{raw(0xd4, 2, 0, 0, 64)}, "(d4) r2 = le64 r2"},
		{[]insn{raw(0xd7, 2, 0, 0, 32)}, "(d7) r2 = bswap32 r2"},
		{[]insn{raw(0xbf, 1, 2, 8, 0)}, "(bf) r1 = (s8)r2"},
		{[]insn{raw(0xbc, 1, 2, 16, 0)}, "(bc) w1 = (s16)w2"},
		{[]insn{raw(0x3f, 1, 2, 1, 0)}, "(3f) r1 s/= r2"},
		{[]insn{raw(0x97, 1, 0, 1, 7)}, "(97) r1 s%= 7"},
		{[]insn{raw(0xc7, 1, 0, 0, 3)}, "(c7) r1 s>>= 3"},
		{[]insn{raw(0xbf, 1, 2, 1, 1<<16|2)}, "(bf) r1 = addr_space_cast(r2, 1, 2)"},
		{[]insn{raw(0xbf, 1, 2, -1, 0)}, "(bf) r1 = &(void __percpu *)(r2)"},
		{[]insn{raw(0xc3, 1, 2, -8, 0x01)}, "(c3) r2 = atomic_fetch_add((u32 *)(r1 -8), r2)"},
		{[]insn{raw(0xdb, 1, 2, 0, 0x51)}, "(db) r2 = atomic64_fetch_and((u64 *)(r1 +0), r2)"},
		{[]insn{raw(0xdb, 1, 2, 0, 0xa1)}, "(db) r2 = atomic64_fetch_xor((u64 *)(r1 +0), r2)"},
		{[]insn{raw(0xc3, 1, 2, 4, 0xa0)}, "(c3) lock *(u32 *)(r1 +4) ^= r2"},
		{[]insn{raw(0xc3, 1, 2, 4, 0xe1)}, "(c3) r2 = atomic_xchg((u32 *)(r1 +4), r2)"},
		{[]insn{raw(0xdb, 3, 2, 0, 0x100)}, "(db) r3 = load_acquire((u64 *)(r2 +0))"},
		{[]insn{raw(0xdb, 3, 2, 8, 0x110)}, "(db) store_release((u64 *)(r3 +8), r2)"},
		{[]insn{raw(0x62, 10, 0, -4, -1)}, "(62) *(u32 *)(r10 -4) = -1"},
		{[]insn{raw(0x7a, 10, 0, -16, 7)}, "(7a) *(u64 *)(r10 -16) = 7"},
		{[]insn{raw(0x91, 0, 1, 2, 0)}, "(91) r0 = *(s8 *)(r1 +2)"},
		{[]insn{raw(0x30, 0, 0, 0, 12)}, "(30) r0 = *(u8 *)skb[12]"},
		{[]insn{raw(0x48, 0, 3, 0, 2)}, "(48) r0 = *(u16 *)skb[r3 + 2]"},
		{[]insn{raw(0x05, 0, 0, -3, 0)}, "(05) goto pc-3"},
		{[]insn{raw(0x06, 0, 0, 0, 70000)}, "(06) gotol pc+70000"},
		{[]insn{raw(0xe5, 0, 0, 5, 0)}, "(e5) may_goto pc+5"},
		{[]insn{raw(0x16, 1, 0, 2, -1)}, "(16) if w1 == 0xffffffff goto pc+2"},
		{[]insn{raw(0x7e, 1, 2, -2, 0)}, "(7e) if w1 s>= w2 goto pc-2"},
		{[]insn{raw(0x4d, 1, 2, 1, 0)}, "(4d) if r1 & r2 goto pc+1"},
		{[]insn{raw(0x85, 0, 0, 0, 12)}, "(85) call unknown#12"},
		{[]insn{raw(0x85, 0, 1, 4, 1)}, "(85) call pc+1"},
		{[]insn{raw(0x85, 0, 2, 0, 12345)}, "(85) call kernel-function#12345"},
		{[]insn{raw(0x18, 1, 0, 0, 1), raw(0, 0, 0, 0, 2)}, "(18) r1 = 0x200000001"},
		{[]insn{raw(0x18, 1, 6, 0, 2), raw(0, 0, 0, 0, 8)}, "(18) r1 = map[idx:2]+8"},
		{[]insn{raw(0x18, 2, 4, 0, 5), raw(0, 0, 0, 0, 0)}, "(18) r2 = subprog[+5]"},
	} {
		if got := d.format(c.in, 0); got != c.want {
			t.Errorf("%02x: %q, want %q", c.in[0].Code, got, c.want)
		}
	}
}

// TestDecodeInsns checks the split of the register byte and the signed fields.
func TestDecodeInsns(t *testing.T) {
	b := make([]byte, 8)
	b[0], b[1] = 0x79, 0x12 // r2 = *(u64 *)(r1 -8)
	binary.NativeEndian.PutUint16(b[2:], uint16(0xfff8))
	binary.NativeEndian.PutUint32(b[4:], 0xffffffff)
	in := decodeInsns(b)[0]
	if in.Code != 0x79 || in.Off != -8 || in.Imm != -1 {
		t.Fatalf("decoded %+v", in)
	}
	if little := binary.NativeEndian.Uint16([]byte{1, 0}) == 1; little && (in.Dst != 2 || in.Src != 1) {
		t.Errorf("registers: dst %d src %d, want dst 2 src 1", in.Dst, in.Src)
	}
}
