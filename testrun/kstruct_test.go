// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// A context struct kept for later processes lays out as the kernel's
// own: same size, same fields at the same offsets, same type names; a
// damaged file sends kernelStruct back to the kernel's BTF.
func TestKernelStructKept(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF")
	}
	root := structCacheRoot
	structCacheRoot = t.TempDir()
	defer func() { structCacheRoot = root }()
	forget := func(name string) {
		kernelStructsMu.Lock()
		delete(kernelStructs, name)
		kernelStructsMu.Unlock()
	}
	layout := func(st *btf.Struct) string {
		size, _ := btf.Sizeof(st)
		out := fmt.Sprintf("size %d", size)
		for _, f := range fields(st, 0) {
			out += fmt.Sprintf("; %s +%d %d %s be=%v", f.Name, f.Offset, f.Size, f.Type.TypeName(), f.BigEndian)
		}
		return out
	}
	for _, name := range []string{"xdp_md", "__sk_buff", "bpf_sk_lookup", "bpf_flow_keys"} {
		forget(name)
		fromKernel, err := kernelStruct(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		file := filepath.Join(kernelStructDir(), name+".btf")
		if _, err := os.Stat(file); err != nil {
			t.Fatalf("%s was not kept: %v", name, err)
		}
		forget(name)
		kept := cachedKernelStruct(name)
		if kept == nil {
			t.Fatalf("%s: the kept file does not load", name)
		}
		if a, b := layout(fromKernel), layout(kept); a != b {
			t.Errorf("%s laid out from the kernel:\n%s\nfrom the kept file:\n%s", name, a, b)
		}
		if err := os.WriteFile(file, []byte("not BTF"), 0o600); err != nil {
			t.Fatal(err)
		}
		forget(name)
		if st, err := kernelStruct(name); err != nil || layout(st) != layout(fromKernel) {
			t.Errorf("%s after the kept file was damaged: %v", name, err)
		}
	}
}
