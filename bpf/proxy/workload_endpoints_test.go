// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"os"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
)

// workloadCluster starts PostgreSQL with the pgbench tables for the
// workloads, stopped when the test ends.
func workloadCluster(t *testing.T) *pgcluster.Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (initdb and pg_ctl run as the postgres user)")
	}
	if err := BenchMissing(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (scripts/deps.sh installs it in CI)", err)
		}
		t.Skipf("skipped: %v", err)
	}
	c, err := pgcluster.Start(context.Background(), pgcluster.Options{MaxConnections: 150})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	if err := pgcluster.PgbenchInit(context.Background(), c, 1); err != nil {
		t.Fatal(err)
	}
	return c
}

// The workloads against PostgreSQL itself: they pass where nothing sits
// between client and server.
func TestWorkloadsDirect(t *testing.T) {
	c := workloadCluster(t)
	runWorkloads(t, endpoint{Name: "postgres", Host: c.Host, Port: c.Port, Cluster: c})
}

// The workloads through PgBouncer in transaction mode with 4 servers: a
// proxy that pools correctly passes them.
func TestWorkloadsPgBouncer(t *testing.T) {
	c := workloadCluster(t)
	b, err := pgcluster.StartPgBouncer(context.Background(), c, pgcluster.PgBouncerOptions{Mode: "transaction", Pool: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop() })
	runWorkloads(t, endpoint{Name: "pgbouncer", Host: b.Host, Port: b.Port, Cluster: c, Pool: 4})
}

// The workloads through bpfsh's proxy in transaction mode with 4
// servers.
func TestWorkloadsBpfsh(t *testing.T) {
	c := workloadCluster(t)
	host, port, stop, err := startBpfshLeg(context.Background(), c, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop bpfsh's proxy: %v", err)
		}
	})
	runWorkloads(t, endpoint{Name: "bpfsh", Host: host, Port: port, Cluster: c, Pool: 4})
}
