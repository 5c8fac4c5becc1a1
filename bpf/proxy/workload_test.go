// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Correctness workloads for a PostgreSQL endpoint: PostgreSQL itself,
// PgBouncer, bpfsh's proxy. Each one takes an endpoint and fails the test
// with what it saw; they are first run against PostgreSQL and PgBouncer
// (workload_endpoints_test.go) to prove the workloads, and the same calls
// run them through bpfsh's proxy. runWorkloads runs them all.

// endpoint is where the workloads connect, and the cluster behind it
// (for set-up, pgbench, and the superuser's view: pg_terminate_backend,
// rows counted without the endpoint).
type endpoint struct {
	Name    string
	Host    string
	Port    int
	Cluster *pgcluster.Cluster
	// Pool is the server connections of a transaction-pooling proxy; 0
	// for PostgreSQL itself (a server per client).
	Pool int
}

// dsn is a pgx connection string through the endpoint, as postgres
// (trusted on loopback: the workloads test the data path, not logins).
func (e endpoint) dsn() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=10", e.Host, e.Port)
}

// connect opens a pgx connection through the endpoint with a query mode:
// the simple protocol, or the extended one with unnamed statements
// (QueryExecModeExec: Parse/Bind/Execute/Sync in one round trip, as
// PgBouncer's transaction pooling needs: no named statement outlives a
// transaction).
func (e endpoint) connect(ctx context.Context, mode pgx.QueryExecMode) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(e.dsn())
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = mode
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s (%s:%d): %w", e.Name, e.Host, e.Port, err)
	}
	return c, nil
}

// connectIn connects through the endpoint with the simple protocol and,
// when inTx, opens a transaction (BEGIN).
func (e endpoint) connectIn(ctx context.Context, inTx bool) (*pgx.Conn, error) {
	c, err := e.connect(ctx, pgx.QueryExecModeSimpleProtocol)
	if err != nil || !inTx {
		return c, err
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	return c, nil
}

// admin is a connection to PostgreSQL itself, bypassing the endpoint.
func (e endpoint) admin(t *testing.T, ctx context.Context) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, e.Cluster.DSN("postgres", "", ""))
	if err != nil {
		t.Fatalf("admin connection to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// runWorkloads runs every workload through an endpoint, each as a
// subtest. The pgbench tables must exist (pgcluster.PgbenchInit).
func runWorkloads(t *testing.T, e endpoint) {
	t.Run("crosstalk-simple", func(t *testing.T) { runCrossTalk(t, e, pgx.QueryExecModeSimpleProtocol) })
	t.Run("crosstalk-extended", func(t *testing.T) { runCrossTalk(t, e, pgx.QueryExecModeExec) })
	t.Run("pgbench", func(t *testing.T) { runPgbench(t, e) })
	t.Run("disconnect-mid-transaction", func(t *testing.T) { runDisconnects(t, e) })
	t.Run("terminate-backend", func(t *testing.T) { runTerminate(t, e) })
	t.Run("cancel", func(t *testing.T) { runCancel(t, e) })
	t.Run("malformed", func(t *testing.T) { runMalformed(t, e) })
}

// Cross-talk: many clients (32, or 8 per server of a pool) each run
// transactions that set a value tagged with the client and a sequence
// number, insert a row, and read both back in the same transaction: each
// must see its own, on one backend throughout; every fourth transaction
// is rolled back. Between transactions a tagged query outside any
// transaction must come back with its own tag and no transaction state
// left over. Afterwards every committed (client, seq) is there exactly
// once and no rolled-back one is.
func runCrossTalk(t *testing.T, e endpoint, mode pgx.QueryExecMode) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients, perClient := 32, 20
	table := fmt.Sprintf("xtalk_%d_%d", e.Port, mode)
	admin := e.admin(t, ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (client int, seq int, tag text NOT NULL, pid int NOT NULL, PRIMARY KEY (client, seq))", table, table)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for id := 1; id <= clients; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := crossTalkClient(ctx, e, mode, table, id, perClient); err != nil {
				failed.Add(1)
				t.Errorf("client %d: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		return
	}
	var rows, distinct, negative, wrongTag int64
	err := admin.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), count(DISTINCT (client, seq)), count(*) FILTER (WHERE seq < 0),
		count(*) FILTER (WHERE tag <> 'c' || client || '-s' || seq) FROM %s`, table)).Scan(&rows, &distinct, &negative, &wrongTag)
	if err != nil {
		t.Fatal(err)
	}
	committed := int64(clients * (perClient - perClient/4))
	if rows != committed || distinct != committed || negative != 0 || wrongTag != 0 {
		t.Errorf("%s: %d rows (%d distinct), want %d; %d rolled-back rows present, %d with another's tag", table, rows, distinct, committed, negative, wrongTag)
	}
	admin.Exec(ctx, "DROP TABLE "+table)
}

func crossTalkClient(ctx context.Context, e endpoint, mode pgx.QueryExecMode, table string, id, n int) error {
	c, err := e.connect(ctx, mode)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for seq := 1; seq <= n; seq++ {
		rollback := seq%4 == 0
		row := seq
		if rollback {
			row = -seq
		}
		tag := fmt.Sprintf("c%d-s%d", id, row)
		tx, err := c.Begin(ctx)
		if err != nil {
			return fmt.Errorf("seq %d: begin: %w", seq, err)
		}
		var got string
		var pid, pid2, pid3 int32
		if err := tx.QueryRow(ctx, "SELECT set_config('bpfsh.tag', $1, true), pg_backend_pid()", tag).Scan(&got, &pid); err != nil {
			return fmt.Errorf("seq %d: set: %w", seq, err)
		}
		if got != tag {
			return fmt.Errorf("seq %d: set_config returned %q, want %q (another client's answer)", seq, got, tag)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES ($1, $2, $3, pg_backend_pid())", table), id, row, tag); err != nil {
			return fmt.Errorf("seq %d: insert: %w", seq, err)
		}
		if rand.IntN(4) == 0 {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // hold the server a while, mid-transaction
		}
		var setting, stored string
		if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT current_setting('bpfsh.tag'), pg_backend_pid(), (SELECT tag FROM %s WHERE client = $1 AND seq = $2), (SELECT pid FROM %s WHERE client = $1 AND seq = $2)", table, table),
			id, row).Scan(&setting, &pid2, &stored, &pid3); err != nil {
			return fmt.Errorf("seq %d: read back: %w", seq, err)
		}
		if setting != tag || stored != tag || pid2 != pid || pid3 != pid {
			return fmt.Errorf("seq %d: inside the transaction read setting %q and row %q on backends %d/%d/%d, want %q on one backend", seq, setting, stored, pid, pid2, pid3, tag)
		}
		if rollback {
			err = tx.Rollback(ctx)
		} else {
			err = tx.Commit(ctx)
		}
		if err != nil {
			return fmt.Errorf("seq %d: end the transaction: %w", seq, err)
		}
		// Outside a transaction: its own answer, no tag left over on the
		// backend it lands on (set_config(..., true) ends with the
		// transaction), no transaction open there.
		var echo, left string
		var double int32
		var xid bool
		if err := c.QueryRow(ctx, "SELECT $1::text, $2::int * 2, coalesce(current_setting('bpfsh.tag', true), ''), txid_current_if_assigned() IS NOT NULL", tag, seq).Scan(&echo, &double, &left, &xid); err != nil {
			return fmt.Errorf("seq %d: query outside a transaction: %w", seq, err)
		}
		status := c.PgConn().TxStatus() // from the server's ReadyForQuery
		if echo != tag || double != int32(2*seq) || left != "" || xid || status != 'I' {
			return fmt.Errorf("seq %d: outside a transaction got %q, %d, setting %q, a transaction id %v, status %q; want %q, %d, no setting, none, 'I'", seq, echo, double, left, xid, status, tag, 2*seq)
		}
	}
	return nil
}

// pgbench through the endpoint, TPC-B-like and select-only, more clients
// than a pool's servers: every transaction completes, none fails.
func runPgbench(t *testing.T, e endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, selectOnly := range []bool{false, true} {
		r, err := pgcluster.Pgbench(ctx, e.Cluster, pgcluster.PgbenchOptions{Host: e.Host, Port: e.Port, Clients: 8, Jobs: 2, Transactions: 100, SelectOnly: selectOnly})
		if err != nil {
			t.Errorf("select-only %v: %v", selectOnly, err)
			continue
		}
		if r.Transactions != 800 || r.Failed != 0 || r.Logged != 800 {
			t.Errorf("select-only %v: %d transactions, %d failed, %d logged; want 800, 0, 800", selectOnly, r.Transactions, r.Failed, r.Logged)
		}
	}
}

// background keeps clients running short tagged transactions through an
// endpoint while a test misbehaves beside them; stop says how many
// transactions they completed and fails the test on any error.
type background struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   atomic.Int64
	mu     sync.Mutex
	errs   []error
}

func startBackground(t *testing.T, e endpoint, clients int) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel}
	for id := range clients {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := b.client(ctx, e, id); err != nil && ctx.Err() == nil {
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Errorf("background client %d: %w", id, err))
				b.mu.Unlock()
			}
		}()
	}
	// Each client has done something before the test misbehaves.
	deadline := time.Now().Add(10 * time.Second)
	for b.done.Load() < int64(clients) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(cancel)
	return b
}

func (b *background) client(ctx context.Context, e endpoint, id int) error {
	c, err := e.connect(ctx, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for seq := 0; ctx.Err() == nil; seq++ {
		tag := fmt.Sprintf("bg%d-%d", id, seq)
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var got string
			if err := tx.QueryRow(ctx, "SELECT set_config('bpfsh.tag', $1, true)", tag).Scan(&got); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "SELECT current_setting('bpfsh.tag')").Scan(&got); err != nil {
				return err
			}
			if got != tag {
				return fmt.Errorf("read %q, want %q", got, tag)
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("transaction %d: %w", seq, err)
		}
		b.done.Add(1)
	}
	return nil
}

// stop stops the clients and checks they made progress after mark
// (the count when the misbehaviour began) with no error.
func (b *background) stop(t *testing.T, mark int64) {
	t.Helper()
	// Progress after the misbehaviour: wait for some.
	deadline := time.Now().Add(10 * time.Second)
	for b.done.Load() < mark+10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.cancel()
	b.wg.Wait()
	for _, err := range b.errs {
		t.Error(err)
	}
	if n := b.done.Load(); n < mark+10 {
		t.Errorf("background clients completed %d transactions after the misbehaviour began, want 10 or more", n-mark)
	}
}

// checkServes opens n fresh clients at once (more than a pool's servers)
// and has each run a tagged transaction within 15 seconds: the endpoint
// still serves, and no server is lost to what went before.
func checkServes(t *testing.T, e endpoint, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for id := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.connect(ctx, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				t.Errorf("fresh client %d: %v", id, err)
				return
			}
			defer c.Close(context.Background())
			tag := fmt.Sprintf("fresh%d", id)
			var got string
			err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SELECT set_config('bpfsh.tag', $1, true), pg_sleep(0.05)", tag); err != nil {
					return err
				}
				return tx.QueryRow(ctx, "SELECT current_setting('bpfsh.tag')").Scan(&got)
			})
			if err != nil || got != tag {
				t.Errorf("fresh client %d: %q, %v; want %q", id, got, err, tag)
			}
		}()
	}
	wg.Wait()
}

// servers is how many of a pool's servers checkServes needs to outnumber.
func (e endpoint) servers() int { return max(e.Pool, 4) }

// Clients that go away in the middle of a transaction (after an INSERT)
// or of a query (pg_sleep running): twice as many as a pool's servers,
// while others run. Their rows never become visible (nobody commits an
// abandoned transaction), the others keep going, and fresh clients are
// served after (no server is lost).
func runDisconnects(t *testing.T, e endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := e.admin(t, ctx)
	table := fmt.Sprintf("abandoned_%d", e.Port)
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (who text)", table, table)); err != nil {
		t.Fatal(err)
	}
	bg := startBackground(t, e, 4)
	mark := bg.done.Load()
	var wg sync.WaitGroup
	for i := range 2 * e.servers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.connect(ctx, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				t.Errorf("leaver %d: %v", i, err)
				return
			}
			defer c.Close(context.Background())
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				t.Errorf("leaver %d: begin: %v", i, err)
				return
			}
			if _, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES ('leaver %d')", table, i)); err != nil {
				t.Errorf("leaver %d: insert: %v", i, err)
				return
			}
			if i%2 == 1 {
				// Mid-query: the server is busy when the client goes.
				go c.Exec(ctx, "SELECT pg_sleep(0.3)")
				time.Sleep(50 * time.Millisecond)
			}
			c.PgConn().Conn().Close()
		}()
	}
	wg.Wait()
	bg.stop(t, mark)
	checkServes(t, e, e.servers()+2)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows of abandoned transactions were committed (%v): a server went back to the pool mid-transaction", n, err)
	}
	admin.Exec(ctx, "DROP TABLE "+table)
}

// Server backends die (pg_terminate_backend from the superuser, outside
// the endpoint) while their clients are inside a transaction, once per
// server of a pool: each such client gets an error and never a wrong
// answer; the others keep going; fresh clients are served after. Through
// a pool, its idle servers are then terminated too, and fresh clients
// are still served.
func runTerminate(t *testing.T, e endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := e.admin(t, ctx)
	bg := startBackground(t, e, 4)
	mark := bg.done.Load()
	for i := range e.servers() {
		c, err := e.connect(ctx, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("victim %d: %v", i, err)
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatalf("victim %d: begin: %v", i, err)
		}
		var pid int32
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatalf("victim %d: %v", i, err)
		}
		var ok bool
		if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate backend %d: %v, %v", pid, ok, err)
		}
		var got int32
		err = tx.QueryRow(ctx, "SELECT 42").Scan(&got)
		if err == nil {
			t.Errorf("victim %d: its backend %d was terminated mid-transaction, yet its next query answered %d", i, pid, got)
		}
		c.Close(context.Background())
	}
	bg.stop(t, mark)
	checkServes(t, e, e.servers()+2)
	if e.Pool == 0 {
		return
	}
	// The pool's idle servers: every client backend but the superuser's
	// own admin connection (nothing else runs now).
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state = 'idle'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Errorf("no idle server of the pool to terminate")
	}
	time.Sleep(200 * time.Millisecond)
	checkServes(t, e, e.servers()+2)
}

// Cancel requests: a client's CancelRequest (through the endpoint, with
// the key the endpoint gave it) stops its own long query, in and out of
// a transaction, and the connection serves again after; a CancelRequest
// with a key nobody has stops nobody.
func runCancel(t *testing.T, e endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bg := startBackground(t, e, 4)
	mark := bg.done.Load()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cancelOne(ctx, e, i%2 == 1); err != nil {
				t.Errorf("canceller %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	// A stray key: the sleeper must finish its sleep.
	c, err := e.connect(ctx, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(0.5)")
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := sendCancel(ctx, e, c.PgConn().PID()+1, rand.Uint32()); err != nil {
		t.Errorf("stray cancel: %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("a CancelRequest with a stray key stopped another client's query: %v", err)
	}
	bg.stop(t, mark)
	checkServes(t, e, e.servers()+2)
}

func cancelOne(ctx context.Context, e endpoint, inTx bool) error {
	c, err := e.connectIn(ctx, inTx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(20)")
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	// PostgreSQL drops a cancel that reaches the backend before the
	// query runs (on a loaded machine 200 ms is not always enough), so the
	// request is sent again each second until the query ends, as a user
	// pressing Ctrl-C again would. Each CancelRequest returns once the
	// server has signalled the backend, so none is left over for the
	// commands that follow.
	var pgErr *pgconn.PgError
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			return fmt.Errorf("send the cancel request: %w", err)
		}
		select {
		case err := <-errc:
			if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
				return fmt.Errorf("the cancelled query ended with %v, want SQLSTATE 57014 (query_canceled)", err)
			}
			done = true
		case <-time.After(time.Second):
		case <-deadline:
			return fmt.Errorf("the query was not cancelled %s after the first request", time.Since(start).Round(time.Millisecond))
		}
	}
	if inTx {
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			return fmt.Errorf("rollback after the cancel: %w", err)
		}
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
		return fmt.Errorf("after the cancel: %d, %v", n, err)
	}
	return nil
}

// sendCancel sends a CancelRequest for (pid, key) to the endpoint on a
// connection of its own.
func sendCancel(ctx context.Context, e endpoint, pid, key uint32) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.Host+":"+strconv.Itoa(e.Port))
	if err != nil {
		return err
	}
	defer conn.Close()
	msg := make([]byte, 16)
	be32(msg[0:], 16)
	be32(msg[4:], 80877102)
	be32(msg[8:], pid)
	be32(msg[12:], key)
	_, err = conn.Write(msg)
	return err
}

func be32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
