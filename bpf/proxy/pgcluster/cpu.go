package pgcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting for a bench phase: the whole machine from /proc/stat
// (user, system, softirq: an in-kernel proxy's redirects run in softirq
// and in other processes' system calls, not in the proxy's own time) and
// named processes from /proc/PID/stat.

// Proc names a process whose CPU time is counted. With Tree, its live
// children and the children it has reaped count too (PostgreSQL: the
// postmaster and its backends, the ones that came and went included).
type Proc struct {
	Name string
	Pid  int
	Tree bool
}

// CPUSample is a reading of the counters, in clock ticks.
type CPUSample struct {
	at                                             time.Time
	user, system, idle, irq, softirq, steal, total uint64
	cpus                                           int
	procs                                          map[string]uint64
}

// CPU is the CPU time spent between two samples, in CPU-seconds.
type CPU struct {
	// Machine-wide, from /proc/stat.
	User    float64 `json:"user"` // user and nice
	System  float64 `json:"system"`
	Softirq float64 `json:"softirq"`
	Irq     float64 `json:"irq"`
	Idle    float64 `json:"idle"` // idle and iowait
	// Busy is everything but idle; Capacity the CPUs times Wall.
	Busy     float64 `json:"busy"`
	Capacity float64 `json:"capacity"`
	Wall     float64 `json:"wall"`
	// Procs are the named processes' user + system times.
	Procs map[string]float64 `json:"procs,omitempty"`
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ReadCPU samples /proc/stat and the processes' times. A process that is
// gone counts as 0 (its time since the last sample is lost).
func ReadCPU(procs ...Proc) (CPUSample, error) {
	s := CPUSample{at: time.Now(), procs: map[string]uint64{}}
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
	var children map[int][]int
	for _, p := range procs {
		own, reaped := procTicks(p.Pid)
		t := own
		if p.Tree {
			if children == nil {
				children = childrenOf()
			}
			t += reaped
			for _, c := range children[p.Pid] {
				o, r := procTicks(c)
				t += o + r
			}
		}
		s.procs[p.Name] += t
	}
	return s, nil
}

// procTicks is a process's own utime + stime and its reaped children's
// cutime + cstime; zeros when it is gone.
func procTicks(pid int) (own, reaped uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	f := statFields(b)
	if len(f) < 15 {
		return 0, 0
	}
	// Fields 14-17 of proc(5): utime stime cutime cstime.
	var v [4]uint64
	for i := range v {
		v[i], _ = strconv.ParseUint(f[11+i], 10, 64)
	}
	return v[0] + v[1], v[2] + v[3]
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

// childrenOf maps each pid to its children's pids.
func childrenOf() map[int][]int {
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

// Since is the CPU time spent from before to s.
func (s CPUSample) Since(before CPUSample) CPU {
	sec := func(a, b uint64) float64 {
		if a < b {
			return 0
		}
		return float64(a-b) / clockTicks
	}
	wall := s.at.Sub(before.at).Seconds()
	c := CPU{
		User: sec(s.user, before.user), System: sec(s.system, before.system), Softirq: sec(s.softirq, before.softirq),
		Irq: sec(s.irq, before.irq), Idle: sec(s.idle, before.idle), Wall: wall, Capacity: float64(s.cpus) * wall,
	}
	c.Busy = sec(s.total, before.total) - c.Idle
	if len(s.procs) > 0 {
		c.Procs = map[string]float64{}
		for name, t := range s.procs {
			c.Procs[name] = sec(t, before.procs[name])
		}
	}
	return c
}

// Pid is the postmaster's process id, from its pid file (0 when it is
// not running).
func (c *Cluster) Pid() int {
	b, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	return pid
}
