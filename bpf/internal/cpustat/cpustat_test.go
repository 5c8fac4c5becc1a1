// SPDX-License-Identifier: Apache-2.0

package cpustat

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The machine's counters move forward and the CPUs are counted.
func TestReadSince(t *testing.T) {
	a, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	spin(3e7)
	b, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	u := b.Since(a)
	if b.cpus < 1 || u.Wall <= 0 || u.Capacity <= 0 || u.Busy < 0 || u.User+u.System > u.Busy+1e-9 {
		t.Errorf("usage %+v over %d CPUs", u, b.cpus)
	}
}

// A process's own time counts its spinning; the time of a child it has
// reaped counts in its tree, not in its own.
func TestProcessAndTree(t *testing.T) {
	before, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tree0 := Tree(os.Getpid())
	spin(3e8)
	if out, err := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done").CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	after, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.Own() <= before.Own() {
		t.Errorf("own time did not move: %+v then %+v", before, after)
	}
	if after.Reaped() <= before.Reaped() {
		t.Errorf("the reaped child's time is not counted: %+v then %+v", before, after)
	}
	if tree := Tree(os.Getpid()); tree < tree0+(after.Own()-before.Own())+(after.Reaped()-before.Reaped()) {
		t.Errorf("tree %d, was %d: does not hold own and reaped time", tree, tree0)
	}
	if _, err := Process(1 << 30); err == nil || !strings.Contains(err.Error(), "read CPU time of process 1073741824") {
		t.Errorf("a missing process: %v", err)
	}
	if Tree(1<<30) != 0 {
		t.Error("a missing process's tree is not 0")
	}
}

// The command name may hold spaces and parentheses: fields count from
// the last ')'.
func TestStatFields(t *testing.T) {
	f := statFields([]byte("42 (a) (b c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0"))
	if len(f) < 15 || f[0] != "S" || f[1] != "1" || f[11] != "7" || f[12] != "3" || f[13] != "2" || f[14] != "1" {
		t.Errorf("fields %q", f)
	}
}

// spin burns CPU in this process.
func spin(n int) {
	x := 0
	for i := range n {
		x ^= i * 31
	}
	if x == -1 {
		println(x)
	}
}
