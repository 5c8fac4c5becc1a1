// SPDX-License-Identifier: Apache-2.0

package pgcluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/bpf/internal/cpustat"
)

// CPU accounting for a bench phase: the whole machine from /proc/stat
// (user, system, softirq: an in-kernel proxy's redirects run in softirq
// and in other processes' system calls, not in the proxy's own time) and
// named processes from /proc/PID/stat (bpf/internal/cpustat reads both).

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
	machine cpustat.Sample
	procs   map[string]uint64
}

// CPU is the CPU time spent between two samples, in CPU-seconds: the
// machine's (user, system, softirq, irq, idle, busy, capacity, wall) and
// the named processes' user + system times in Procs.
type CPU struct {
	cpustat.Usage
	Procs map[string]float64 `json:"procs,omitempty"`
}

// ReadCPU samples /proc/stat and the processes' times. A process that is
// gone counts as 0 (its time since the last sample is lost).
func ReadCPU(procs ...Proc) (CPUSample, error) {
	m, err := cpustat.Read()
	if err != nil {
		return CPUSample{}, err
	}
	s := CPUSample{machine: m, procs: map[string]uint64{}}
	for _, p := range procs {
		if p.Tree {
			s.procs[p.Name] += cpustat.Tree(p.Pid)
		} else if t, err := cpustat.Process(p.Pid); err == nil {
			s.procs[p.Name] += t.Own()
		}
	}
	return s, nil
}

// Since is the CPU time spent from before to s.
func (s CPUSample) Since(before CPUSample) CPU {
	c := CPU{Usage: s.machine.Since(before.machine)}
	if len(s.procs) > 0 {
		c.Procs = map[string]float64{}
		for name, t := range s.procs {
			c.Procs[name] = cpustat.Seconds(t, before.procs[name])
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
