// SPDX-License-Identifier: Apache-2.0

package bpf

// FormatInsns prints raw instructions (in the host's byte order) in the
// verifier's syntax, one string per 8-byte slot; the second half of a
// 64-bit load is "". The debugger shows the instruction it stands at
// with it.
func FormatInsns(code []byte) []string {
	insns := decodeInsns(code)
	d := &disasm{call: func(in insn) string {
		if in.Src == 0 {
			return helperName(in.Imm)
		}
		return ""
	}}
	out := make([]string, len(insns))
	for i := 0; i < len(insns); i++ {
		out[i] = d.format(insns, i)
		if insns[i].isWide() {
			i++
		}
	}
	return out
}
