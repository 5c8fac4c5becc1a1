package proxy

import (
	"context"
	"errors"

	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
)

// errNotMerged marks the bpfsh leg as not runnable in this build.
var errNotMerged = errors.New("bpfsh's proxy is not merged into this build yet: proxy.Start comes from the proxy-front branch; wire it in bpf/proxy/bench_bpfsh.go (startBpfshLeg)")

// startBpfshLeg starts bpfsh's proxy in transaction mode with pool server
// connections in front of c, on a free loopback port, for the bench's
// bpfsh leg and the correctness workloads; stop stops it.
func startBpfshLeg(ctx context.Context, c *pgcluster.Cluster, pool int) (host string, port int, stop func() error, err error) {
	return "", 0, nil, errNotMerged
}
