// SPDX-License-Identifier: Apache-2.0

// Command mapdump compares "bpfsh map dump" with "bpftool map dump" on a
// 1,000,000-entry u32 -> u64 hash map, in the same run on the same map.
//
// It builds bpfsh from this module, creates and pins the map under a
// temporary directory in bpffs, times each dump written to a file (text
// and JSON; the fastest of -runs runs, since file writes are noisy),
// prints the times, peak memory and the ratios, and
// removes the map and its files. Run it as root from the repository root:
//
//	go run ./bench/mapdump
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

func main() {
	entries := flag.Int("entries", 1_000_000, "entries in the map")
	bpftool := flag.String("bpftool", "/usr/sbin/bpftool", "bpftool to compare with")
	runs := flag.Int("runs", 3, "runs of each dump; the fastest counts (writing files is noisy)")
	flag.Parse()
	if err := run(*entries, *bpftool, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "mapdump:", err)
		os.Exit(1)
	}
}

func run(n int, bpftool string, runs int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the benchmark creates and pins a map")
	}
	if _, err := os.Stat(bpftool); err != nil {
		return fmt.Errorf("bpftool not found at %s (Debian package bpftool)", bpftool)
	}
	work, err := os.MkdirTemp("", "bpfsh-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "bpfsh")
	fmt.Println("building bpfsh ...")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/bpfsh/bpfsh").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	pinDir, err := os.MkdirTemp("/sys/fs/bpf", "bpfsh-bench-")
	if err != nil {
		return fmt.Errorf("make a directory in bpffs: %w", err)
	}
	defer os.RemoveAll(pinDir)
	pin := filepath.Join(pinDir, "big")
	if err := fill(pin, n); err != nil {
		return err
	}
	fmt.Printf("map: %d entries, u32 -> u64 hash, pinned at %s\n\n", n, pin)

	type result struct {
		name  string
		took  time.Duration
		cpu   time.Duration
		size  int64
		maxrs int64
	}
	var results []result
	for _, c := range []struct {
		name string
		args []string
	}{
		{"bpftool map dump", []string{bpftool, "map", "dump", "pinned", pin}},
		{"bpfsh map dump", []string{bin, "map", "dump", pin}},
		{"bpftool -j map dump", []string{bpftool, "-j", "map", "dump", "pinned", pin}},
		{"bpfsh -j map dump", []string{bin, "-j", "map", "dump", pin}},
	} {
		best := result{name: c.name}
		for i := range max(runs, 1) {
			out := filepath.Join(work, "out")
			os.Remove(out)
			took, cpu, size, maxrss, err := timeToFile(c.args, out)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if got, err := countEntries(out); err != nil || got != n {
				return fmt.Errorf("%s wrote %d entries of %d (%v): not a whole dump", c.name, got, n, err)
			}
			if i == 0 || took < best.took {
				best.took, best.size = took, size
			}
			if i == 0 || cpu < best.cpu {
				best.cpu = cpu
			}
			best.maxrs = max(best.maxrs, maxrss)
		}
		results = append(results, best)
		fmt.Printf("%-22s %7.3f s wall  %7.3f s cpu  %6.1f MB out  peak RSS %5.1f MB\n",
			c.name, best.took.Seconds(), best.cpu.Seconds(), float64(best.size)/1e6, float64(best.maxrs)/1024)
	}
	fmt.Println()
	ratio := func(what string, bpftool, bpfsh result) {
		fmt.Printf("%s: bpfsh takes %.3f of bpftool's wall time (%.1fx faster), %.3f of its CPU time\n", what,
			bpfsh.took.Seconds()/bpftool.took.Seconds(), bpftool.took.Seconds()/bpfsh.took.Seconds(), bpfsh.cpu.Seconds()/bpftool.cpu.Seconds())
	}
	ratio("text", results[0], results[1])
	ratio("JSON", results[2], results[3])
	return nil
}

// fill creates the map, fills it with key i -> value 3*i in batches of
// 100k, and pins it. The map lives on through its pin until removed.
func fill(pin string, n int) error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bench_big", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: uint32(n)})
	if err != nil {
		return fmt.Errorf("create map: %w", err)
	}
	defer m.Close()
	const chunk = 100_000
	keys := make([]uint32, 0, chunk)
	vals := make([]uint64, 0, chunk)
	for i := 0; i < n; i++ {
		keys = append(keys, uint32(i))
		vals = append(vals, uint64(i)*3)
		if len(keys) == chunk || i == n-1 {
			if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
				return fmt.Errorf("fill map: %w", err)
			}
			keys, vals = keys[:0], vals[:0]
		}
	}
	return m.Pin(pin)
}

// timeToFile runs args with stdout to path and reports the wall time, the
// CPU time (user + system), the output's size and the child's peak
// resident memory in KiB.
func timeToFile(args []string, path string) (wall, cpu time.Duration, size, maxrss int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer f.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = f
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, 0, 0, err
	}
	wall = time.Since(start)
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxrss = ru.Maxrss
		cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	}
	return wall, cpu, fi.Size(), maxrss, nil
}

// countEntries counts the entries in a dump, so that a dump that stopped
// early is not timed as a fast one: each has one "key" in JSON, one line
// in text (which has a header line as well: bpfsh's column names first,
// bpftool's "Found N elements" last).
//
// It reads in small pieces: a child's peak RSS as the kernel reports it
// starts from its parent's, so this process must stay small.
func countEntries(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sep := []byte("\n")
	buf := make([]byte, 256*1024)
	n, count, first := 0, 0, true
	for {
		k, err := f.Read(buf[n:])
		data := buf[:n+k]
		if first && len(data) > 0 {
			if data[0] == '[' {
				sep = []byte(`"key":`)
			}
			first = false
		}
		count += bytes.Count(data, sep)
		// Keep a tail shorter than sep: a separator may straddle reads.
		n = copy(buf, data[max(0, len(data)-len(sep)+1):])
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if sep[0] == '\n' {
		count-- // the header line
	}
	return count, nil
}
