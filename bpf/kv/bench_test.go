// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/testrun"
)

// BenchmarkTestRun times requests through xdp_kv with BPF_PROG_TEST_RUN
// the way `bpfsh run kv/xdp_kv packet ... repeat N` does: fresh copies of
// the request, the kernel's clock for each run, the median less the
// timer's own cost reported as kernel-ns/req. SETs run in batches of 400,
// the log ring drained between them, so that every one commits (the ring
// holds about 450 records) rather than timing LOG_FULL.
//
//	go test ./bpf/kv -run '^$' -bench TestRun
func BenchmarkTestRun(b *testing.B) {
	k := load(b, nil)
	value := []byte(strings.Repeat("v", 100))
	k.want(StatusOK, &Message{Op: OpSet, Key: []byte("user:1234"), Value: value})
	for _, c := range []struct {
		name string
		req  *Message
	}{
		{"GET-hit", &Message{Op: OpGet, Key: []byte("user:1234")}},
		{"GET-miss", &Message{Op: OpGet, Key: []byte("user:9999")}},
		{"SET-replace-100B", &Message{Op: OpSet, Key: []byte("user:1234"), Value: value}},
		{"DEL-miss", &Message{Op: OpDel, Key: []byte("user:9999")}},
		{"SCAN-prefix", &Message{Op: OpScan, Key: []byte("user:")}},
	} {
		b.Run(c.name, func(b *testing.B) {
			frame := k.c.Addr.Frame(c.req.Marshal())
			logFull := k.stat(StatStatusBase + int(StatusLogFull))
			var total float64
			n := 0
			for b.Loop() {
				k.drain()
				o, err := testrun.Run(testrun.Options{Program: k.h.Prog, Data: frame, Repeat: 400, NoTrace: true, NoMaps: true})
				if err != nil {
					b.Fatal(err)
				}
				total += float64(o.Timing.PerRun().Nanoseconds())
				n++
			}
			if k.stat(StatStatusBase+int(StatusLogFull)) != logFull {
				b.Fatal("some requests found the log full: the figure is not for the path asked for")
			}
			b.ReportMetric(total/float64(n), "kernel-ns/req")
		})
	}
}
