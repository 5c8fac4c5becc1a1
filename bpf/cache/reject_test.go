// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// A cache the verifier rejects (either program, as on a kernel whose
// verifier cannot follow it): StartLive and the bench return the
// verifier's reason, naming the program, in one line, and leave nothing
// behind (no namespace, veth, BPF object, memcached).
func TestRejectedCacheLeavesNothing(t *testing.T) {
	bpftest.RequireRoot(t)
	if err := MemcachedMissing(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("skipped: %v", err)
	}
	t.Cleanup(func() { liveSpec = Spec })
	for _, prog := range []string{RxProgram, FillProgram} {
		liveSpec = func() (*ebpf.CollectionSpec, error) {
			spec, err := Spec()
			if err != nil {
				return nil, err
			}
			return bpftest.Rejected(t, spec, prog), nil
		}
		before := bpftest.TakeLeftovers(t, "")
		l, err := StartLive(context.Background(), LiveOptions{})
		if err == nil {
			l.Close()
			t.Fatalf("StartLive loaded a rejected %s", prog)
		}
		bpftest.WantRejected(t, err, prog)
		_, err = Bench(context.Background(), BenchOptions{Clients: 1, Keys: 10, Duration: 200 * time.Millisecond})
		bpftest.WantRejected(t, err, prog)
		t.Logf("cache bench: %v", err)
		bpftest.WantNoneLeft(t, before, bpftest.TakeLeftovers(t, ""))
	}
}
