// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"os"
	"strconv"
)

// kernelSymbols names kernel addresses from /proc/kallsyms. A translated
// program calls helpers and kfuncs by their offset from __bpf_call_base and
// bpf-to-bpf functions by their JITed address; bpftool names both through
// kallsyms, and so does bpfsh.
type kernelSymbols struct {
	data     []byte // the whole of /proc/kallsyms, or nil
	callBase uint64 // address of __bpf_call_base, 0 if unknown
}

// loadKernelSymbols reads /proc/kallsyms once (about 100k lines, a few
// milliseconds). Without it (or with addresses hidden by kptr_restrict)
// calls print as bpftool prints them without symbols.
func loadKernelSymbols() *kernelSymbols {
	data, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		return &kernelSymbols{}
	}
	ks := &kernelSymbols{data: data}
	if addr, ok := ks.addressOf("__bpf_call_base"); ok {
		ks.callBase = addr
	}
	return ks
}

// addressOf finds the address of the symbol called name.
func (ks *kernelSymbols) addressOf(name string) (uint64, bool) {
	for line := range bytes.Lines(ks.data) {
		f := bytes.Fields(line)
		if len(f) >= 3 && string(f[2]) == name {
			addr, err := strconv.ParseUint(string(f[0]), 16, 64)
			return addr, err == nil && addr != 0
		}
	}
	return 0, false
}

// names returns the symbol at each of addrs that has one, in one pass.
func (ks *kernelSymbols) names(addrs map[uint64]bool) map[uint64]string {
	out := make(map[uint64]string, len(addrs))
	if len(addrs) == 0 || len(ks.data) == 0 {
		return out
	}
	for line := range bytes.Lines(ks.data) {
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			continue
		}
		addr, err := strconv.ParseUint(string(line[:sp]), 16, 64)
		if err != nil || !addrs[addr] {
			continue
		}
		if _, seen := out[addr]; seen {
			continue
		}
		if f := bytes.Fields(line); len(f) >= 3 {
			out[addr] = string(f[2])
		}
	}
	return out
}
