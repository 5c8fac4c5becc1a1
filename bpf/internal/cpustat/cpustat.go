// SPDX-License-Identifier: Apache-2.0

// Package cpustat reads CPU time for the live benches: the whole machine
// from /proc/stat (user, system, irq, softirq, idle: in-kernel data paths
// such as XDP or sk_skb redirects run in softirq and in other processes'
// system calls, not in the bench's own time) and processes from
// /proc/PID/stat, alone or with their children.
package cpustat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const ClockTicks = 100

// Sample is a reading of /proc/stat's machine-wide counters, in clock
// ticks.
type Sample struct {
	at                                             time.Time
	user, system, idle, irq, softirq, steal, total uint64
	cpus                                           int
}

// Usage is the machine's CPU time between two samples, in CPU-seconds.
type Usage struct {
	User    float64 `json:"user"` // user and nice
	System  float64 `json:"system"`
	Softirq float64 `json:"softirq"`
	Irq     float64 `json:"irq"`
	Idle    float64 `json:"idle"` // idle and iowait
	// Busy is everything but idle; Capacity the CPUs times Wall, the
	// wall time between the samples.
	Busy     float64 `json:"busy"`
	Capacity float64 `json:"capacity"`
	Wall     float64 `json:"wall"`
}

// Read samples /proc/stat.
func Read() (Sample, error) {
	s := Sample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, fmt.Errorf("read /proc/stat: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			s.cpus++
			continue
		}
		var v [10]uint64
		for i := 1; i < len(f) && i <= 10; i++ {
			v[i-1], _ = strconv.ParseUint(f[i], 10, 64)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice
		// (guest time is already in user).
		s.user, s.system, s.idle, s.irq, s.softirq, s.steal = v[0]+v[1], v[2], v[3]+v[4], v[5], v[6], v[7]
		s.total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]
	}
	return s, nil
}

// Since is the machine's CPU time from before to s.
func (s Sample) Since(before Sample) Usage {
	wall := s.at.Sub(before.at).Seconds()
	u := Usage{
		User: Seconds(s.user, before.user), System: Seconds(s.system, before.system), Softirq: Seconds(s.softirq, before.softirq),
		Irq: Seconds(s.irq, before.irq), Idle: Seconds(s.idle, before.idle), Wall: wall, Capacity: float64(s.cpus) * wall,
	}
	u.Busy = Seconds(s.total, before.total) - u.Idle
	return u
}

// Seconds is the CPU-seconds between two readings in clock ticks (0 when
// the counter went back: a process that is gone reads 0).
func Seconds(after, before uint64) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / ClockTicks
}

// Times are a process's CPU times from /proc/PID/stat, in clock ticks:
// its own (all its threads) and its reaped children's.
type Times struct {
	User, System           uint64
	ChildUser, ChildSystem uint64
}

// Own is the process's user + system time.
func (t Times) Own() uint64 { return t.User + t.System }

// Reaped is its reaped children's user + system time.
func (t Times) Reaped() uint64 { return t.ChildUser + t.ChildSystem }

// Process reads a process's times.
func Process(pid int) (Times, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Times{}, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	f := statFields(b)
	if len(f) < 15 {
		return Times{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// Fields 14-17 of proc(5): utime stime cutime cstime.
	var v [4]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[11+i], 10, 64); err != nil {
			return Times{}, fmt.Errorf("/proc/%d/stat: field %d %q is not a tick count", pid, 14+i, f[11+i])
		}
	}
	return Times{User: v[0], System: v[1], ChildUser: v[2], ChildSystem: v[3]}, nil
}

// Tree is the CPU time of a process, of the children it has reaped, and
// of its live children and theirs (PostgreSQL: the postmaster and its
// backends, the ones that came and went included), in clock ticks; 0
// when it is gone.
func Tree(pid int) uint64 {
	t, err := Process(pid)
	if err != nil {
		return 0
	}
	sum := t.Own() + t.Reaped()
	for _, c := range children()[pid] {
		if ct, err := Process(c); err == nil {
			sum += ct.Own() + ct.Reaped()
		}
	}
	return sum
}

// statFields are /proc/PID/stat's fields after the command name (which
// may hold spaces and parentheses): field 3 (state) first.
func statFields(b []byte) []string {
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// children maps each pid to its children's pids.
func children() map[int][]int {
	m := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		f := statFields(b)
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		m[ppid] = append(m[ppid], pid)
	}
	return m
}
