// SPDX-License-Identifier: Apache-2.0

package shell_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// fixtureRoot is a pin root with the fixture pinned under fx/.
func fixtureRoot(t *testing.T) string {
	t.Helper()
	root := bpftest.PinRoot(t)
	fx := filepath.Join(root, "fx")
	if err := os.Mkdir(fx, 0o700); err != nil {
		t.Fatal(err)
	}
	bpftest.Fixture(t, fx)
	return root
}

const longRun = `run fx/xdp_count packet Ether()/IPv4()/UDP(dport=9)/Raw("abcd") repeat 50000000`

// Ctrl-C stops run ... repeat N within a second at the prompt, and
// the run's report says how many runs were made (issue item 2); a second
// Ctrl-C is not needed.
func TestPTYCtrlCStopsRepeat(t *testing.T) {
	sc := ptyShell(t, fixtureRoot(t), t.TempDir())
	for _, line := range []string{longRun, longRun + " bench"} {
		sc.send(line + "\r")
		time.Sleep(time.Second) // the result shows when the command ends
		if strings.Contains(sc.all()[sc.seen:], "retval") {
			t.Fatalf("%s ended by itself:\n%s", line, tailOf(sc.all(), 2000))
		}
		sent := time.Now()
		sc.send("\x03")
		sc.expect(`stopped\s+by Ctrl-C after \d+ of 50000000 fresh runs`)
		sc.expect(ptyPrompt)
		if took := time.Since(sent); took > time.Second {
			t.Errorf("%s: the prompt came back %v after Ctrl-C, want under a second", line, took)
		}
	}
	if strings.Contains(sc.all(), "has not stopped yet") {
		t.Errorf("bpfsh asked for another Ctrl-C:\n%s", tailOf(sc.all(), 2000))
	}
	sc.send("\x04")
	if st := sc.wait(); st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
}

// SIGINT stops a script's run ... repeat N within a second, and the
// script (exit status 130); its memory does not grow with N.
func TestSIGINTStopsRepeatInAScript(t *testing.T) {
	root := fixtureRoot(t)
	cmd := exec.Command(bpfshBinary(t), "--pin-root", root, "-c", longRun+"; help exit")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rss := func() int {
		data, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(data)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	time.Sleep(time.Second)
	early := rss()
	time.Sleep(2 * time.Second)
	late := rss()
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if took := time.Since(sent); took > time.Second {
		t.Errorf("bpfsh took %v to stop after SIGINT", took)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want 130", err)
	}
	if !strings.Contains(out.String(), "stopped   by Ctrl-C after") || strings.Contains(out.String(), "usage: exit") {
		t.Errorf("output:\n%s", out.String())
	}
	if early == 0 || late > early+8192 {
		t.Errorf("memory grew from %d kB to %d kB in two seconds of runs", early, late)
	}
}
