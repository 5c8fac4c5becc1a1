// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"debug/elf"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The guest's root file system is an initramfs made of two cpio archives
// one after the other (the kernel unpacks them in turn): a common one,
// built once, with busybox, the static test binaries, a static bpfsh and
// the repository's files; and a small one per kernel with that kernel's
// modules. It is not compressed: under TCG the kernel inflates slowly.
// Measured with the full set (123 MB plain, 53 MB with gzip -1), from
// qemu's start to power-off with no test run: 7 s plain, 112-175 s gzip.

//go:embed init.sh
var initScript []byte

// busyboxPath is Debian's busybox-static; it must be static, since the
// guest has no shared libraries at all.
const busyboxPath = "/bin/busybox"

// commonArchive writes the part of the initramfs that all kernels share.
func commonArchive(out, repo, bindir string, pkgs []guestPackage, testflags string) error {
	if err := checkStatic(busyboxPath, "busybox (apt-get install busybox-static)"); err != nil {
		return err
	}
	applets, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, d := range []string{"/proc", "/sys", "/dev"} {
		if repo == d || strings.HasPrefix(repo, d+"/") {
			return fmt.Errorf("the repository is under %s, which the guest mounts over; check it out elsewhere", d)
		}
	}
	files, err := repoFiles(repo)
	if err != nil {
		return err
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	c := newCpio(f)
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "root"} {
		c.Dir(d)
	}
	c.File("init", 0o755, initScript)
	c.CopyFile("bin/busybox", busyboxPath)
	for _, a := range strings.Fields(string(applets)) {
		if _, carried := hostTools[a]; a != "busybox" && !carried {
			c.Symlink("bin/"+a, "busybox")
		}
	}
	for name, path := range hostTools {
		if err := addDynamic(c, "bin/"+name, path); err != nil {
			return err
		}
	}
	// Go's resolver reads /etc/hosts for "localhost"; user lookups read
	// passwd and group.
	c.File("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n"))
	c.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	c.File("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))

	c.CopyFile("bin/bpfsh", filepath.Join(bindir, "bpfsh"))
	var list strings.Builder
	for _, p := range pkgs {
		c.CopyFile("tests/"+p.Binary, filepath.Join(bindir, p.Binary))
		fmt.Fprintf(&list, "%s %s %s %s\n", p.ImportPath, p.Dir, p.Binary, p.Timeout)
	}
	c.File("matrix/packages", 0o644, []byte(list.String()))
	// The repository sits at the same absolute path as on the host: tests
	// find their testdata relative to the package directory, and a few
	// find sources through runtime.Caller, which names the host's path.
	c.File("matrix/config", 0o644, []byte(fmt.Sprintf("REPO=%s\nTESTFLAGS=%s\n", shellQuote(repo), shellQuote(testflags))))
	for _, rel := range files {
		c.CopyFile(filepath.Join(repo, rel), filepath.Join(repo, rel))
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return f.Close()
}

// kernelArchive writes the per-kernel part: the modules, decompressed,
// and their load order.
func kernelArchive(out string, k *kernel) error {
	mods, err := k.modules(guestModules)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	c := newCpio(f)
	var order strings.Builder
	for _, m := range mods {
		name := "lib/modules/" + m.Name + ".ko"
		c.File(name, 0o644, m.ELF)
		fmt.Fprintf(&order, "/%s\n", name)
	}
	c.File("matrix/modules", 0o644, []byte(order.String()))
	if err := c.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return f.Close()
}

// repoFiles lists the repository's files as git sees them (tracked, plus
// new files not ignored), relative to repo; outside git, every file but
// .git's.
func repoFiles(repo string) ([]string, error) {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = repo
	var files []string
	if out, err := cmd.Output(); err == nil {
		for _, f := range strings.Split(string(out), "\x00") {
			if fi, err := os.Lstat(filepath.Join(repo, f)); f != "" && err == nil && fi.Mode().IsRegular() {
				files = append(files, f)
			}
		}
		return files, nil
	}
	err := filepath.WalkDir(repo, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && !strings.HasSuffix(path, ".test") {
			rel, _ := filepath.Rel(repo, path)
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// hostTools are Debian's own programs the guests carry, with their shared
// libraries, where busybox's are not enough: the kv tests read 'ip netns
// list', which busybox's ip does not have.
var hostTools = map[string]string{"ip": "/usr/sbin/ip"}

// addDynamic adds the program at path as name, and every shared library
// ldd names for it (the loader included) at the path ldd gives, so the
// loader's default search finds them without an ld.so.cache.
func addDynamic(c *cpioWriter, name, path string) error {
	out, err := exec.Command("ldd", path).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w (apt-get install iproute2?)", path, err)
	}
	c.CopyFile(name, path)
	for line := range strings.Lines(string(out)) {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
		f := strings.Fields(line)
		lib := ""
		switch {
		case len(f) >= 3 && f[1] == "=>":
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		}
		if lib != "" && !c.has(lib) {
			c.CopyFile(lib, lib) // follows symlinks: the file lands under the name asked for
		}
	}
	return nil
}

// checkStatic fails when the ELF at path asks for a dynamic loader.
func checkStatic(path, what string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: %s is dynamically linked; the guests have no shared libraries", what, path)
		}
	}
	return nil
}

// concat writes the files one after the other into out.
func concat(out string, parts ...string) error {
	var buf bytes.Buffer
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
