// SPDX-License-Identifier: Apache-2.0

// Command kernels is the kernel matrix: it runs bpfsh's tests inside
// Debian's own kernels under qemu, one guest per kernel listed in
// scripts/kernels.list, and prints the same summary as 'make test' for
// each, then a table. The host's kernel is not booted: 'make test' has
// run the whole suite on it already.
//
// Per kernel: the package is fetched with apt-get download into a cache
// and unpacked with dpkg-deb; the guest boots it with an initramfs of
// busybox, static test binaries, a static bpfsh, the repository's files
// and the network modules the tests need; its /init (init.sh) runs each
// test binary and writes the output to a serial port of its own; here
// that output goes through go tool test2json and scripts/testsum.
//
// Run it through scripts/kernels.sh (make test-kernels), which installs
// qemu and busybox-static first.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// guestPatterns are the packages whose tests run in the guests: loading
// and verifying every object (bpf, commands' load tests, each program's
// package), every test-run test (testrun), the shell's tests, the lessons'
// solutions and checks (commands' TestLabLessons), and the programs'
// live tests on veth pairs. Tests that need a server to compare with
// (memcached, redis, PostgreSQL, PgBouncer), bpftool or the go command
// skip there (BPFSH_GUEST, see bpf/bpftest) and run on the host only.
// bench/ (throughput figures against the peers) is host only.
var guestPatterns = []string{
	"./testrun/...",
	"./shell",
	"./commands",
	"./bpf",
	"./bpf/kv",
	"./bpf/cache",
	"./bpf/proxy",
	"./bpf/vethns",
	"./tutorials",
}

// guestModules are the modules the guests load (with what they depend
// on): Debian builds them as modules; the host's kernel has them built in.
// A guest has no modprobe for the kernel to call on demand.
//   - veth: every live test's veth pair (vethns, kv serve, cache live,
//     commands' net and lab tests).
//   - sch_ingress, cls_bpf: commands' net tests attach TC programs the
//     old way, a clsact qdisc (sch_ingress provides it) with cls_bpf
//     filters, for 'net show' to find beside tcx links.
var guestModules = []string{"veth", "sch_ingress", "cls_bpf"}

// guestPackage is one test binary the guests run.
type guestPackage struct {
	ImportPath string
	Dir        string // relative to the repository
	Binary     string // name under /tests
	Timeout    string // its -test.timeout
}

func main() {
	var (
		list      = flag.String("list", "scripts/kernels.list", "the kernel list: one Debian package name a line")
		cache     = flag.String("cache", envOr("BPFSH_KERNEL_CACHE", defaultCache()), "where kernel packages are downloaded and unpacked (env BPFSH_KERNEL_CACHE)")
		only      = flag.String("only", "", "run only these kernels (comma-separated package names or releases)")
		pkgsFlag  = flag.String("pkgs", "", "comma-separated packages to run in the guests instead of the usual set")
		run       = flag.String("run", "", "passed to the test binaries as -test.run")
		accelFlag = flag.String("accel", envOr("BPFSH_QEMU_ACCEL", "auto"), "kvm, tcg, or auto: KVM when a probe guest runs under it (env BPFSH_QEMU_ACCEL)")
		jobs      = flag.Int("jobs", 2, "guests run at the same time (2 by measurement: see the comment in matrix)")
		pkgTime   = flag.Duration("pkg-timeout", 10*time.Minute, "-test.timeout of each test binary in a guest")
		guestTime = flag.Duration("timeout", 20*time.Minute, "how long a guest may run before it counts as hung")
		appendArg = flag.String("append", "", "more kernel command line for the guests (e.g. mitigations=off, for experiments)")
		keep      = flag.Bool("keep", false, "keep the work directory (initramfs, consoles, raw output)")
	)
	flag.Parse()
	kernelAppend = *appendArg
	if err := matrix(*list, *cache, *only, *pkgsFlag, *run, *accelFlag, *jobs, *pkgTime, *guestTime, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "kernel matrix:", err)
		os.Exit(1)
	}
}

// errFailed says some kernel failed; its details are printed already.
var errFailed = errors.New("tests failed or a guest did not finish on at least one kernel")

func matrix(list, cache, only, pkgsFlag, run, accelWant string, jobs int, pkgTime, guestTime time.Duration, keep bool) error {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	names, err := readList(list)
	if err != nil {
		return err
	}
	var kernels []*kernel
	for _, n := range names {
		k, err := fetch(cache, n)
		if err != nil {
			return err
		}
		if only == "" || slices.Contains(strings.Split(only, ","), n) || slices.Contains(strings.Split(only, ","), k.Release) {
			kernels = append(kernels, k)
		}
	}
	if len(kernels) == 0 {
		return fmt.Errorf("no kernel of %s matches -only %q", list, only)
	}

	work, err := os.MkdirTemp("", "bpfsh-kernels-")
	if err != nil {
		return err
	}
	failed := true
	defer func() {
		switch {
		case keep:
			fmt.Printf("work directory: %s\n", work)
		case failed:
			// Keep what explains the failure (consoles, raw output), not
			// the quarter gigabyte of binaries and initramfs.
			os.RemoveAll(filepath.Join(work, "bin"))
			for _, pattern := range []string{"*.cpio", "*/*.cpio", "*/initrd"} {
				files, _ := filepath.Glob(filepath.Join(work, pattern))
				for _, f := range files {
					os.Remove(f)
				}
			}
			fmt.Printf("the guests' consoles and raw output are in %s\n", work)
		default:
			os.RemoveAll(work)
		}
	}()

	patterns := guestPatterns
	if pkgsFlag != "" {
		patterns = strings.Split(pkgsFlag, ",")
	}
	start := time.Now()
	bindir := filepath.Join(work, "bin")
	pkgs, err := build(bindir, patterns, pkgTime)
	if err != nil {
		return err
	}
	testflags := ""
	if run != "" {
		testflags = "-test.run=" + run
	}
	common := filepath.Join(work, "common.cpio")
	if err := commonArchive(common, repo, bindir, pkgs, testflags); err != nil {
		return err
	}
	fmt.Printf("built %d test binaries, bpfsh and the initramfs in %s\n", len(pkgs), since(start))

	a, why := chooseAccel(accelWant, kernels[0], work)
	fmt.Printf("qemu: %s\n", why)

	// Two guests at a time, by measurement on a 2-core machine (TCG, two
	// other workers booting qemu too, load 5-8): both kernels one after
	// the other took 7m56s, side by side 7m32s. The whole run kept 0.8
	// host cores busy on average one after the other (its tests are
	// mostly serial), so on an idle CI machine the overlap gains more.
	// Kernels start in list order; each report is printed whole when its
	// guest ends.
	results := make([]*kernelResult, len(kernels))
	next := make(chan int, len(kernels))
	for i := range kernels {
		next <- i
	}
	close(next)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(max(jobs, 1), len(kernels)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := runKernel(kernels[i], a, work, common, bindir, guestTime)
				mu.Lock()
				fmt.Print(r.report)
				mu.Unlock()
				results[i] = r
			}
		}()
	}
	wg.Wait()

	printTable(results, a, since(start))
	for _, r := range results {
		if !r.ok {
			return errFailed
		}
	}
	failed = false
	return nil
}

// build compiles the test binaries of the guest packages and a bpfsh,
// all static (CGO_ENABLED=0): the guests have no C library. -s -w drops
// the symbol table and DWARF, about a quarter of each binary, which the
// tests do not read (stack traces come from pclntab, which stays).
func build(bindir string, patterns []string, timeout time.Duration) ([]guestPackage, error) {
	args := append([]string{"list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}} {{.Name}}{{end}}"}, patterns...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w", strings.Join(patterns, " "), stderrOf(err))
	}
	repo, _ := os.Getwd()
	var pkgs []guestPackage
	var paths []string
	byBinary := map[string]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		rel, err := filepath.Rel(repo, f[1])
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("package %s is outside the repository", f[0])
		}
		bin := f[2] + ".test"
		if other, dup := byBinary[bin]; dup {
			// go test -c -o DIR/ names each binary after its package.
			return nil, fmt.Errorf("packages %s and %s are both named %s: give one a different name or run it on the host only", other, f[0], f[2])
		}
		byBinary[bin] = f[0]
		pkgs = append(pkgs, guestPackage{ImportPath: f[0], Dir: rel, Binary: bin, Timeout: timeout.String()})
		paths = append(paths, f[0])
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("no package with tests in %s", strings.Join(patterns, " "))
	}
	if err := os.MkdirAll(bindir, 0o755); err != nil {
		return nil, err
	}
	ld := "-ldflags=-s -w"
	for _, cmd := range []*exec.Cmd{
		exec.Command("go", append([]string{"test", "-c", ld, "-o", bindir + "/"}, paths...)...),
		exec.Command("go", "build", ld, "-o", filepath.Join(bindir, "bpfsh"), "."),
		exec.Command("go", "build", "-o", filepath.Join(bindir, "testsum"), "./scripts/testsum"),
	} {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	return pkgs, nil
}

// kernelResult is one kernel's outcome.
type kernelResult struct {
	k                       *kernel
	passed, failed, skipped int
	wall                    time.Duration
	finished, counted, ok   bool
	report                  string // printed when the kernel is done
	note                    string // for the table: why it failed to finish
}

// runKernel boots k with the tests and reads what they said.
func runKernel(k *kernel, a accel, work, common, bindir string, limit time.Duration) *kernelResult {
	r := &kernelResult{k: k}
	var rep strings.Builder
	defer func() { r.report = rep.String() }()
	label := "kernel " + k.Release
	fmt.Fprintf(&rep, "\n== %s (%s)\n", label, k.Package)
	fmt.Fprintln(&rep, "(tests needing memcached, redis, PostgreSQL, PgBouncer, bpftool, dpkg, kernel headers or the go command skip here: they run on the host kernel)")

	dir := filepath.Join(work, k.Package)
	os.MkdirAll(dir, 0o755)
	mods := filepath.Join(dir, "modules.cpio")
	initrd := filepath.Join(dir, "initrd")
	if err := kernelArchive(mods, k); err != nil {
		fmt.Fprintf(&rep, "initramfs: %v\n", err)
		r.note = "no initramfs"
		return r
	}
	if err := concat(initrd, common, mods); err != nil {
		fmt.Fprintf(&rep, "initramfs: %v\n", err)
		r.note = "no initramfs"
		return r
	}
	fmt.Printf("booting %s under %s\n", label, strings.ToUpper(a.Name))
	start := time.Now()
	raw, bootErr := boot(context.Background(), a, k, initrd, dir, limit)
	r.wall = time.Since(start)
	os.WriteFile(filepath.Join(dir, "results.raw"), raw, 0o644)

	g := parseResults(raw)
	r.finished = bootErr == nil && g.Done
	if g.Release != "" && g.Release != k.Release {
		fmt.Fprintf(&rep, "warning: the guest says it runs %s, not %s\n", g.Release, k.Release)
	}
	for _, m := range g.Insmod {
		fmt.Fprintf(&rep, "insmod failed: %s\n", m)
	}
	var stream bytes.Buffer
	var times []string
	for _, s := range g.Segments {
		js, err := s.toJSON()
		if err != nil {
			fmt.Fprintf(&rep, "%v\n", err)
			continue
		}
		stream.Write(js)
		if s.Exited {
			times = append(times, fmt.Sprintf("%s %.0fs", strings.TrimPrefix(s.Pkg, "github.com/bpfsh/bpfsh/"), s.Seconds))
		}
	}
	sum := exec.Command(filepath.Join(bindir, "testsum"), "-label", label)
	sum.Stdin = &stream
	out, _ := sum.CombinedOutput()
	rep.Write(out)
	r.passed, r.failed, r.skipped, r.counted = counts(string(out))
	// testsum exits 1 on a failed package as well as a failed test; the
	// table counts tests, and ok is whether testsum was content.
	r.ok = r.finished && sum.ProcessState != nil && sum.ProcessState.Success()
	if len(times) > 0 {
		fmt.Fprintf(&rep, "time per package in the guest: %s\n", strings.Join(times, ", "))
	}
	if !r.finished {
		switch {
		case errors.Is(bootErr, errTimeout):
			r.note = fmt.Sprintf("did not finish in %s", limit)
		case bootErr != nil:
			r.note = "qemu failed"
		default:
			r.note = "the guest stopped early (panic?)"
		}
		running := ""
		if n := len(g.Segments); n > 0 && !g.Segments[n-1].Exited {
			running = " while " + g.Segments[n-1].Pkg + " ran"
		}
		fmt.Fprintf(&rep, "%s: %s%s", label, r.note, running)
		if bootErr != nil && !errors.Is(bootErr, errTimeout) {
			fmt.Fprintf(&rep, " (%v)", bootErr)
		}
		fmt.Fprintf(&rep, "\nthe end of its test output (%s):\n%s\n", filepath.Join(dir, "results.raw"), tail(raw, 20))
		fmt.Fprintf(&rep, "the end of its console (%s):\n%s\n", filepath.Join(dir, "console.log"), consoleTail(dir, 40))
	}
	fmt.Fprintf(&rep, "%s: guest wall time %s\n", label, r.wall.Round(time.Second))
	return r
}

// printTable prints one line per kernel, the host's first.
func printTable(results []*kernelResult, a accel, total string) {
	fmt.Printf("\n== kernel matrix (qemu %s, %s vCPUs, %s MiB)\n", strings.ToUpper(a.Name), guestCPUs, guestMem)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "kernel\tpassed\tfailed\tskipped\twall\tresult\t")
	fmt.Fprintf(tw, "%s (host)\t\t\t\t\tmake test\t\n", hostRelease())
	for _, r := range results {
		res := "ok"
		if !r.ok {
			res = "FAIL"
			if r.note != "" {
				res += ": " + r.note
			}
		}
		p, f, s := "-", "-", "-"
		if r.counted {
			p, f, s = fmt.Sprint(r.passed), fmt.Sprint(r.failed), fmt.Sprint(r.skipped)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.k.Release, p, f, s, r.wall.Round(time.Second), res)
	}
	tw.Flush()
	fmt.Printf("the host kernel is covered by 'make test' (not re-run here); total %s\n", total)
}

func hostRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return strings.TrimSpace(string(b))
}

// defaultCache is /var/cache/bpfsh/kernels for root (CI), and the user's
// cache directory otherwise, which they can write.
func defaultCache() string {
	if os.Geteuid() != 0 {
		if dir, err := os.UserCacheDir(); err == nil {
			return filepath.Join(dir, "bpfsh", "kernels")
		}
	}
	return "/var/cache/bpfsh/kernels"
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func since(t time.Time) string { return time.Since(t).Round(time.Second).String() }

func stderrOf(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}
