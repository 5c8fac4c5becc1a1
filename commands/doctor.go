// SPDX-License-Identifier: Apache-2.0

package commands

import "github.com/bpfsh/bpfsh/bpf"

var doctorCmd = &Command{
	Name:  "doctor",
	Short: "check that this machine has what bpfsh needs, and say how to fix what it lacks",
	Long: "doctor checks the kernel version, BTF, bpffs and tracefs (mounting them when missing and " +
		"run as root, as the commands that need them do), root and capabilities, the JIT, the " +
		"unprivileged BPF setting, the memlock limit (which matters only before Linux 5.11), " +
		"BPF_PROG_TEST_RUN (by running a two-instruction XDP program) and bpftool. Each check " +
		"is ok, missing (bpfsh cannot work without the fix) or warn (degraded or optional), with " +
		"the fix beside it.",
	Example: "doctor",
	Run:     runDoctor,
}

func runDoctor(s *Session, args []string) (Result, error) {
	if len(args) > 0 {
		return nil, Usagef("doctor takes no arguments")
	}
	checks := bpf.Doctor()
	t := &Table{Columns: []string{"check", "status", "detail", "fix"}, JSON: checks}
	for _, c := range checks {
		t.Rows = append(t.Rows, []string{c.Check, c.Status, c.Detail, c.Fix})
	}
	return t, nil
}
