// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
)

// startBpfshLeg starts bpfsh's proxy (Start) in transaction mode with pool
// server connections in front of c, on a free loopback port, for the
// bench's bpfsh leg and the correctness workloads; stop stops it. Clients
// are admitted as trust (loopback, no user list); the pool logs in as
// postgres to the postgres database.
func startBpfshLeg(ctx context.Context, c *pgcluster.Cluster, pool int) (host string, port int, stop func() error, err error) {
	p, err := Start(ctx, Options{Listen: "127.0.0.1:0", Server: c.Addr(), Pool: pool, Mode: ModeTransaction, User: "postgres", Database: "postgres"})
	if err != nil {
		return "", 0, nil, err
	}
	h, ps, err := net.SplitHostPort(p.Addr())
	if err == nil {
		port, err = strconv.Atoi(ps)
	}
	if err != nil {
		p.Close()
		return "", 0, nil, fmt.Errorf("bpfsh's proxy address %q: %v", p.Addr(), err)
	}
	return h, port, p.Close, nil
}
