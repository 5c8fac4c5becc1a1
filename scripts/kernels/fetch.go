// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// kernel is one Debian kernel package, fetched and unpacked.
type kernel struct {
	Package string // linux-image-6.1.0-57-amd64
	Release string // 6.1.0-57-amd64, what uname -r says in the guest
	Dir     string // the unpacked package (boot/, lib/modules/)
	Vmlinuz string
}

// readList reads the kernel list: one package name a line, # comments.
func readList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel list: %w", err)
	}
	defer f.Close()
	var pkgs []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.ContainsAny(line, " \t/") || !strings.HasPrefix(line, "linux-image-") {
			return nil, fmt.Errorf("%s:%d: %q is not a Debian kernel package name (linux-image-...)", path, n, line)
		}
		pkgs = append(pkgs, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel list: %w", err)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("%s lists no kernel", path)
	}
	return pkgs, nil
}

// aptUpdated makes fetch run 'apt-get update' at most once, and only when
// a download failed: a fresh CI machine may have no package lists, but a
// warm cache must not need the network at all.
var aptUpdated sync.Once

// fetch returns the kernel package pkg unpacked under cache, downloading
// and unpacking it on first use. The .deb is kept, so that a cache that
// lost its unpacked tree does not download again.
func fetch(cache, pkg string) (*kernel, error) {
	dir := filepath.Join(cache, pkg)
	// The marker is written last: a tree without it is a half-done unpack.
	done := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(done); err != nil {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return nil, fmt.Errorf("kernel cache: %w", err)
		}
		deb, err := download(cache, pkg)
		if err != nil {
			return nil, err
		}
		fmt.Printf("unpacking %s\n", filepath.Base(deb))
		os.RemoveAll(dir)
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("kernel %s: dpkg-deb -x %s: %v\n%s", pkg, deb, err, out)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return nil, fmt.Errorf("kernel %s: %w", pkg, err)
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return nil, fmt.Errorf("kernel %s: %w", pkg, err)
		}
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return nil, fmt.Errorf("kernel %s: want one boot/vmlinuz-* in %s, found %d", pkg, dir, len(vmlinuz))
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	if _, err := os.Stat(filepath.Join(dir, "lib", "modules", release, "kernel")); err != nil {
		return nil, fmt.Errorf("kernel %s: no modules for %s: %w", pkg, release, err)
	}
	return &kernel{Package: pkg, Release: release, Dir: dir, Vmlinuz: vmlinuz[0]}, nil
}

// download returns the cached .deb of pkg, or fetches it with apt-get
// download (which verifies it against the archive's signed index).
func download(cache, pkg string) (string, error) {
	if debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb")); len(debs) > 0 {
		return debs[len(debs)-1], nil
	}
	fmt.Printf("fetching %s with apt-get download\n", pkg)
	get := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "download", "-q", pkg)
		cmd.Dir = cache
		return cmd.CombinedOutput()
	}
	out, err := get()
	if err != nil {
		// The package lists may be missing or stale: refresh them once.
		aptUpdated.Do(func() {
			fmt.Println("apt-get download failed; running apt-get update and trying again")
			if upd, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
				fmt.Printf("apt-get update: %v\n%s", err, upd)
			}
		})
		out, err = get()
	}
	if err != nil {
		return "", fmt.Errorf("cannot fetch kernel package %s: apt-get download: %v\n%s"+
			"(Debian's security archive drops a kernel once a newer ABI replaces it: "+
			"'apt-cache search --names-only ^linux-image-' lists the current ones; "+
			"update scripts/kernels.list)", pkg, err, indent(out))
	}
	debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
	if len(debs) == 0 {
		return "", fmt.Errorf("cannot fetch kernel package %s: apt-get download left no %s_*.deb in %s", pkg, pkg, cache)
	}
	return debs[len(debs)-1], nil
}

// module is a kernel module ready for the initramfs.
type module struct {
	Name string
	ELF  []byte // decompressed: busybox's insmod hands it to init_module(2)
}

// modules resolves the module names the guests load to their files in k,
// dependencies first. Debian's packages ship no modules.dep (depmod makes
// it at install time), so the dependencies come from each module's own
// .modinfo "depends=" entry, the field depmod reads. A name built into k
// (modules.builtin) needs no file.
func (k *kernel) modules(names []string) ([]module, error) {
	base := filepath.Join(k.Dir, "lib", "modules", k.Release)
	files := map[string]string{} // module name -> its file
	err := filepath.WalkDir(filepath.Join(base, "kernel"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			files[moduleName(path)] = path
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Release, err)
	}
	builtin, _ := os.ReadFile(filepath.Join(base, "modules.builtin"))
	isBuiltin := map[string]bool{}
	for line := range strings.Lines(string(builtin)) {
		isBuiltin[moduleName(strings.TrimSpace(line))] = true
	}

	var order []module
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		path, ok := files[name]
		if !ok {
			if isBuiltin[name] {
				return nil
			}
			return fmt.Errorf("kernel %s has no module %s (neither a file under %s nor built in)", k.Release, name, base)
		}
		body, err := readModule(path)
		if err != nil {
			return err
		}
		deps, err := moduleDepends(body)
		if err != nil {
			return fmt.Errorf("module %s: %w", path, err)
		}
		for _, d := range deps {
			if err := visit(moduleName(d)); err != nil {
				return err
			}
		}
		order = append(order, module{Name: name, ELF: body})
		return nil
	}
	for _, n := range names {
		if err := visit(moduleName(n)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads "depends=a,b" from a module's .modinfo section
// (NUL-separated key=value strings).
func moduleDepends(body []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// moduleName is the module's name as the kernel spells it: the file's base
// name without .ko[.xz|.zst|.gz], with - as _.
func moduleName(file string) string {
	name := filepath.Base(file)
	if i := strings.Index(name, ".ko"); i >= 0 {
		name = name[:i]
	}
	return strings.ReplaceAll(name, "-", "_")
}

// readModule returns a module file's contents, decompressed: busybox's
// insmod passes the bytes to init_module(2), which wants a plain ELF.
func readModule(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.xz"):
		out, err := exec.Command("xz", "-dc", path).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return nil, fmt.Errorf("xz -dc %s: %v: %s", path, err, ee.Stderr)
			}
			return nil, fmt.Errorf("xz -dc %s: %w (apt-get install xz-utils)", path, err)
		}
		return out, nil
	case strings.HasSuffix(path, ".ko.zst"):
		out, err := exec.Command("zstd", "-dc", path).Output()
		if err != nil {
			return nil, fmt.Errorf("zstd -dc %s: %w (apt-get install zstd)", path, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("module %s: unknown compression", path)
}

func indent(b []byte) string {
	var s strings.Builder
	for line := range strings.Lines(string(b)) {
		s.WriteString("  " + line)
	}
	if s.Len() > 0 && !strings.HasSuffix(s.String(), "\n") {
		s.WriteString("\n")
	}
	return s.String()
}
