// SPDX-License-Identifier: Apache-2.0

// Command startup measures how long bpfsh takes to show its prompt on a
// terminal (the bar: under 100 ms), by starting the built binary
// on a pseudo-terminal many times and timing the first "bpfsh>" it prints.
//
//	go run ./bench/startup [-runs 20]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/creack/pty"
)

func main() {
	runs := flag.Int("runs", 20, "how many starts to time")
	flag.Parse()
	dir, err := os.MkdirTemp("", "bpfsh-startup-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bpfsh")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fail(fmt.Errorf("go build: %v\n%s", err, out))
	}
	var times []time.Duration
	for range *runs {
		d, err := timePrompt(bin, dir)
		if err != nil {
			fail(err)
		}
		times = append(times, d)
	}
	slices.Sort(times)
	fmt.Printf("prompt shown after: min %v, median %v, max %v over %d starts (bar: 100ms)\n",
		times[0].Round(10*time.Microsecond), times[len(times)/2].Round(10*time.Microsecond),
		times[len(times)-1].Round(10*time.Microsecond), len(times))
}

// timePrompt starts bin on a new terminal and returns when it printed its
// prompt, then leaves it with Ctrl-D.
func timePrompt(bin, stateDir string) (time.Duration, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+stateDir)
	start := time.Now()
	tty, err := pty.Start(cmd)
	if err != nil {
		return 0, err
	}
	defer tty.Close()
	var seen []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(seen, []byte("bpfsh>")) {
		tty.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := tty.Read(buf)
		if err != nil {
			return 0, fmt.Errorf("no prompt: %v (got %q)", err, seen)
		}
		seen = append(seen, buf[:n]...)
	}
	d := time.Since(start)
	tty.Write([]byte{4})
	return d, cmd.Wait()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "startup:", err)
	os.Exit(1)
}
