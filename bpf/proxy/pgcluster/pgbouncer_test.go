// SPDX-License-Identifier: Apache-2.0

package pgcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func startPgBouncer(t *testing.T, c *Cluster, o PgBouncerOptions) *PgBouncer {
	t.Helper()
	if err := PgBouncerMissing(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (scripts/deps.sh installs it in CI)", err)
		}
		t.Skipf("skipped: %v", err)
	}
	b, err := StartPgBouncer(context.Background(), c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("stop pgbouncer: %v", err)
		}
		if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
			t.Errorf("%s left behind", b.Dir)
		}
	})
	return b
}

// pgbench runs through PgBouncer in transaction mode with more clients
// than servers: every transaction is logged, none fails, and PostgreSQL
// sees no more backends than the pool (plus the one asking).
func TestPgBouncerPgbench(t *testing.T) {
	c := start(t, Options{})
	b := startPgBouncer(t, c, PgBouncerOptions{Mode: "transaction", Pool: 2})
	ctx := context.Background()
	if err := PgbenchInit(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	before, err := ReadCPU(Proc{Name: "postgres", Pid: c.Pid(), Tree: true}, Proc{Name: "pgbouncer", Pid: b.Pid()})
	if err != nil {
		t.Fatal(err)
	}
	for _, selectOnly := range []bool{false, true} {
		r, err := Pgbench(ctx, c, PgbenchOptions{Host: b.Host, Port: b.Port, Clients: 6, Jobs: 2, Transactions: 50, SelectOnly: selectOnly})
		if err != nil {
			t.Fatal(err)
		}
		if r.Transactions != 300 || r.Failed != 0 || r.Logged != 300 || r.TPS <= 0 || r.LatencyAvg <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 || r.ClientCPU < 0 {
			t.Errorf("select-only %v: %+v", selectOnly, *r)
		}
	}
	after, err := ReadCPU(Proc{Name: "postgres", Pid: c.Pid(), Tree: true}, Proc{Name: "pgbouncer", Pid: b.Pid()})
	if err != nil {
		t.Fatal(err)
	}
	cpu := after.Since(before)
	if cpu.Capacity <= 0 || cpu.Busy <= 0 || cpu.Procs["postgres"] <= 0 {
		t.Errorf("CPU: %+v", cpu)
	}
	out, err := c.SQL(ctx, "select count(*) from pg_stat_activity where backend_type = 'client backend' and application_name <> 'psql'")
	if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || n < 1 || n > 2 {
		t.Errorf("backends besides psql: %q, %v; want 1 or 2 (pool 2)", out, err)
	}
}

// psql gets its answer through PgBouncer; a bad mode is refused.
func TestPgBouncerPsql(t *testing.T) {
	c := start(t, Options{Auth: "md5", Users: map[string]string{"bob": `pa"ss`}})
	b := startPgBouncer(t, c, PgBouncerOptions{Auth: "md5", Users: map[string]string{"bob": `pa"ss`}, Pool: 1})
	cmd := exec.Command(c.Bin("psql"), "-X", "-At", "-h", b.Host, "-p", fmt.Sprint(b.Port), "-U", "bob", "-d", "postgres", "-c", "select current_user, 6*7")
	cmd.Env = append(os.Environ(), `PGPASSWORD=pa"ss`, "PGCONNECT_TIMEOUT=5")
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "bob|42" {
		t.Fatalf("psql through pgbouncer: %q, %v", out, err)
	}
	if _, err := StartPgBouncer(context.Background(), c, PgBouncerOptions{Mode: "sometimes"}); err == nil || !strings.Contains(err.Error(), "want transaction, session or statement") {
		t.Errorf("mode sometimes: %v", err)
	}
}

// The directory of a PgBouncer whose bpfsh is gone is removed by the next
// start.
func TestPgBouncerReapsLeftovers(t *testing.T) {
	c := start(t, Options{})
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-test", pgbouncerPrefix, dead.Process.Pid))
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(left)
	startPgBouncer(t, c, PgBouncerOptions{})
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("%s not reaped: %v", left, err)
	}
}

func TestPgbenchRefusesBadOptions(t *testing.T) {
	c := &Cluster{Host: "127.0.0.1", Port: 1}
	for _, o := range []PgbenchOptions{{Mode: "fast"}, {Clients: 2, Jobs: 3}, {Duration: 500 * time.Millisecond}, {Transactions: -1}} {
		if _, err := Pgbench(context.Background(), c, o); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
