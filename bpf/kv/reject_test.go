// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// rejectKV makes LoadPrivate load kv with xdp_kv rejected by the
// verifier, as on a kernel whose verifier cannot follow it, until t ends.
func rejectKV(t *testing.T) {
	t.Helper()
	bpftest.RequireRoot(t)
	t.Cleanup(func() { privateSpec = Spec })
	privateSpec = func() (*ebpf.CollectionSpec, error) {
		spec, err := Spec()
		if err != nil {
			return nil, err
		}
		return bpftest.Rejected(t, spec, ProgramName), nil
	}
}

// A kv the verifier rejects: LoadPrivate, the bench and the check return the
// verifier's reason, naming xdp_kv, in one line, and leave nothing behind
// (no namespace, veth, BPF object, redis, WAL directory).
func TestRejectedKVLeavesNothing(t *testing.T) {
	rejectKV(t)
	before := bpftest.TakeLeftovers(t, "")
	h, closeKV, err := LoadPrivate(0)
	if err == nil {
		closeKV()
		t.Fatalf("LoadPrivate loaded a rejected xdp_kv: %v", h)
	}
	bpftest.WantRejected(t, err, ProgramName)

	o := BenchOptions{Clients: 1, Keys: 10, Duration: 200 * time.Millisecond, TestRuns: 10}
	if RedisMissing() != nil {
		o.NoRedis = true
	}
	walDirs, _ := filepath.Glob(filepath.Join(tmpfsDir(), "bpfsh-kv-bench-*"))
	_, err = Bench(context.Background(), o)
	bpftest.WantRejected(t, err, ProgramName)
	t.Logf("kv bench: %v", err)
	bpftest.WantNoneLeft(t, before, bpftest.TakeLeftovers(t, ""))
	if after, _ := filepath.Glob(filepath.Join(tmpfsDir(), "bpfsh-kv-bench-*")); len(after) > len(walDirs) {
		t.Errorf("WAL directories before the bench %q, after %q", walDirs, after)
	}

	walDirs, _ = filepath.Glob(filepath.Join(tmpfsDir(), "bpfsh-kv-check-*"))
	_, err = Check(context.Background(), CheckOptions{Workload: "counter", Duration: 200 * time.Millisecond})
	bpftest.WantRejected(t, err, ProgramName)
	t.Logf("kv check: %v", err)
	bpftest.WantNoneLeft(t, before, bpftest.TakeLeftovers(t, ""))
	if after, _ := filepath.Glob(filepath.Join(tmpfsDir(), "bpfsh-kv-check-*")); len(after) > len(walDirs) {
		t.Errorf("WAL directories before the check %q, after %q", walDirs, after)
	}
}
