// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Context structs across processes
//
// Laying out a context (struct xdp_md, __sk_buff) needs the kernel's BTF,
// and parsing all of vmlinux's BTF costs ~10 ms: more than a script of a
// thousand runs spends on anything else it does once. The struct, and
// the types it refers to, cannot change until the next boot, so the first
// process keeps its BTF (a few hundred bytes) under /run/bpfsh, which is
// emptied at boot, in a directory named by the boot's id and the kernel
// release; later processes load that. Anything wrong with the file (not
// there, unreadable, not holding the struct) sends the caller back to
// the kernel's BTF.

// kernelStructDir is where the structs of this boot are kept ("" when the
// boot cannot be named).
func kernelStructDir() string {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	release := strings.ReplaceAll(unix.ByteSliceToString(u.Release[:]), "/", "_")
	return filepath.Join(structCacheRoot, "kernel-btf", strings.TrimSpace(string(id))+"-"+release)
}

// structCacheRoot is a variable for tests.
var structCacheRoot = "/run/bpfsh"

// cachedKernelStruct is struct name as a process of this boot kept it, or nil.
func cachedKernelStruct(name string) *btf.Struct {
	dir := kernelStructDir()
	if dir == "" {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, name+".btf"))
	if err != nil {
		return nil
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	var st *btf.Struct
	if spec.TypeByName(name, &st) != nil {
		return nil
	}
	return st
}

// cacheKernelStruct keeps st for later processes of this boot; failing
// to is not an error (they parse the kernel's BTF again).
func cacheKernelStruct(name string, st *btf.Struct) {
	dir := kernelStructDir()
	if dir == "" {
		return
	}
	b, err := btf.NewBuilder([]btf.Type{st}, nil)
	if err != nil {
		return
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		return
	}
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	// Written whole under a temporary name, then renamed: a reader sees
	// the old file, none, or the new one.
	f, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return
	}
	_, werr := f.Write(raw)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), filepath.Join(dir, name+".btf")) != nil {
		os.Remove(f.Name())
	}
}
