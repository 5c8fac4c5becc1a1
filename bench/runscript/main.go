// SPDX-License-Identifier: Apache-2.0

// Command runscript compares a script of `run` lines in bpfsh with the same
// test runs through `bpftool batch file` (issue 14 item 1): 1,000 runs of
// the fixture's xdp_count on one 46-byte UDP frame, bpfsh with its full
// report (decoded packet, diff, map changes, bpf_printk lines), bpftool
// with its return value and duration. Both are started as processes on a
// script file, output to /dev/null; the best of -rounds rounds counts (the
// machine is shared). It prints both, per run, and the ratio.
//
//	sudo go run ./bench/runscript [-runs 1000] [-rounds 5]
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// frame is Ethernet 0a:..:01 -> 02:..:02, IPv4 10.0.0.1 -> 10.0.0.2,
// UDP 40000 -> 7777, payload "ping" (46 bytes).
const frame = "020000000002 0a0000000001 0800 " +
	"4500 0020 0000 0000 4011 66cb 0a000001 0a000002 " +
	"9c40 1e61 000c 0000 70696e67"

func main() {
	runs := flag.Int("runs", 1000, "run lines in each script")
	rounds := flag.Int("rounds", 5, "rounds of each; the fastest counts")
	bpftool := flag.String("bpftool", "bpftool", "bpftool to compare with")
	flag.Parse()
	if err := run(*runs, *rounds, *bpftool); err != nil {
		fmt.Fprintln(os.Stderr, "runscript:", err)
		os.Exit(1)
	}
}

func run(runs, rounds int, bpftool string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root (loading and test-running programs): sudo go run ./bench/runscript")
	}
	tool, err := exec.LookPath(bpftool)
	if err != nil {
		return fmt.Errorf("bpftool not found (Debian package bpftool)")
	}
	work, err := os.MkdirTemp("", "bpfsh-runscript-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "bpfsh")
	fmt.Println("building bpfsh ...")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/bpfsh/bpfsh").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	root, err := os.MkdirTemp("/sys/fs/bpf", "bpfsh-runscript-")
	if err != nil {
		return fmt.Errorf("pin root: %w (is bpffs mounted?)", err)
	}
	defer os.RemoveAll(root)
	obj, err := filepath.Abs("testrun/fixture/progs_bpfel.o")
	if err != nil {
		return err
	}
	if out, err := exec.Command(bin, "--pin-root", root, "-c", "load "+obj+" name fx").CombinedOutput(); err != nil {
		return fmt.Errorf("load the fixture (run from the repository root): %v\n%s", err, out)
	}
	pkt := filepath.Join(work, "frame.bin")
	b, _ := hex.DecodeString(strings.ReplaceAll(frame, " ", ""))
	if err := os.WriteFile(pkt, b, 0o600); err != nil {
		return err
	}
	prog := filepath.Join(root, "fx", "xdp_count")
	batch := filepath.Join(work, "runs.batch")
	script := filepath.Join(work, "runs.bsh")
	if err := os.WriteFile(batch, []byte(strings.Repeat("prog run pinned "+prog+" data_in "+pkt+"\n", runs)), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(script, []byte(strings.Repeat("run fx/xdp_count @"+pkt+"\n", runs)), 0o600); err != nil {
		return err
	}
	// One line of each, to show what each prints per run.
	one, _ := exec.Command(bin, "--pin-root", root, "-c", "run fx/xdp_count @"+pkt).CombinedOutput()
	fmt.Printf("bpfsh prints per run:\n%s\n", one)
	one, _ = exec.Command(tool, "prog", "run", "pinned", prog, "data_in", pkt).CombinedOutput()
	fmt.Printf("bpftool prints per run:\n%s\n", one)

	best := func(cmd ...string) (time.Duration, error) {
		var min time.Duration
		for range rounds {
			c := exec.Command(cmd[0], cmd[1:]...)
			began := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				return 0, fmt.Errorf("%s: %v\n%s", strings.Join(cmd, " "), err, tail(out))
			}
			if d := time.Since(began); min == 0 || d < min {
				min = d
			}
		}
		return min, nil
	}
	tb, err := best(tool, "batch", "file", batch)
	if err != nil {
		return err
	}
	sb, err := best(bin, "--pin-root", root, "-f", script)
	if err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("%d runs of xdp_count, one process each, fastest of %d rounds (load average %s)\n",
		runs, rounds, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("  %-40s %10s %12s\n", "", "total", "per run")
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.1f us", float64(d.Nanoseconds())/float64(runs)/1e3)
	}
	fmt.Printf("  %-40s %10v %12s\n", "bpftool batch file (prog run ... data_in)", tb.Round(time.Millisecond), per(tb))
	fmt.Printf("  %-40s %10v %12s\n", "bpfsh -f (run ... full report)", sb.Round(time.Millisecond), per(sb))
	fmt.Printf("  bpfsh / bpftool: %.1fx per run\n", float64(sb)/float64(tb))
	return nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
