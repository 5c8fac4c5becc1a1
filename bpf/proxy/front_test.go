// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The pool logs in as app; clients log in as the users of the list.
const (
	poolUser     = "app"
	poolPassword = "app-pw"
)

// cluster starts PostgreSQL with auth for app (and skips without it).
func cluster(t *testing.T, auth string) *pgcluster.Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (PostgreSQL runs as the postgres user; the data path needs BPF)")
	}
	if err := pgcluster.Missing(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	c, err := pgcluster.Start(context.Background(), pgcluster.Options{Auth: auth, Users: map[string]string{poolUser: poolPassword}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// userList writes a user list: the pool's user and the lines given.
func userList(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "userlist.txt")
	text := fmt.Sprintf("%q %q\n", poolUser, poolPassword) + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startFront starts a proxy on a free loopback port in front of c, on
// the fake data path (the front alone).
func startFront(t *testing.T, c *pgcluster.Cluster, o Options) *Proxy {
	t.Helper()
	return startWith(t, c, o, newFakePath)
}

func startWith(t *testing.T, c *pgcluster.Cluster, o Options, open func(Mode) (dataPath, error)) *Proxy {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	o.Server = c.Addr()
	if o.User == "" {
		o.User = poolUser
	}
	o.Database = "postgres"
	p, err := start(context.Background(), o, open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

func dsn(p *Proxy, user, password string) string {
	host, port, _ := net.SplitHostPort(p.Addr())
	s := fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=disable connect_timeout=5", host, port, user)
	if password != "" {
		s += " password=" + password
	}
	return s
}

func connect(t *testing.T, p *Proxy, user, password string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn(p, user, password))
	if err != nil {
		t.Fatalf("connect as %s through the proxy: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// psql runs psql -c through the proxy.
func psql(c *pgcluster.Cluster, p *Proxy, user, password, sql string) (string, error) {
	host, port, _ := net.SplitHostPort(p.Addr())
	cmd := exec.Command(c.Bin("psql"), "-X", "-At", "-h", host, "-p", port, "-U", user, "-d", "postgres", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5", "PGSSLMODE=prefer")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Clients log in with trust, md5 and SCRAM (plaintext and a SCRAM secret
// as PostgreSQL stores it) against the user list, with psql and pgx; a
// wrong password gets one clear error. The pool itself logs in with SCRAM.
func TestProxyAuth(t *testing.T) {
	c := cluster(t, "scram-sha-256")
	out, err := c.SQL(context.Background(), "select rolpassword from pg_authid where rolname = 'app'")
	if err != nil {
		t.Fatalf("read app's SCRAM secret: %v: %s", err, out)
	}
	scramSecret := strings.TrimSpace(string(out))
	users := userList(t,
		`"trusted" ""`,
		fmt.Sprintf(`"md5user" "md5%s"`, md5Hex("md5pw", "md5user")),
		fmt.Sprintf(`"scramuser" "%s"`, scramSecret), // app's password, as a SCRAM secret
		`"plainuser" "plain-pw"`)
	p := startFront(t, c, Options{Users: users, Mode: ModeSession, Pool: 2})
	for _, u := range []struct{ user, password, method string }{
		{"trusted", "", AuthTrust},
		{"md5user", "md5pw", AuthMD5},
		{"scramuser", poolPassword, AuthSCRAM},
		{"plainuser", "plain-pw", AuthSCRAM},
	} {
		if got := authMethod(p.users[u.user]); got != u.method {
			t.Errorf("%s: method %s, want %s", u.user, got, u.method)
		}
		if out, err := psql(c, p, u.user, u.password, "select current_user, 40+2"); err != nil || out != "app|42" {
			t.Errorf("psql as %s (%s): %q, %v", u.user, u.method, out, err)
		}
		conn := connect(t, p, u.user, u.password)
		if got := queryString(t, conn, "select 'via ' || current_user"); got != "via app" {
			t.Errorf("pgx as %s: %q", u.user, got)
		}
		conn.Close(context.Background())
		if u.password != "" {
			_, err := pgx.Connect(context.Background(), dsn(p, u.user, "wrong"))
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28P01" || pgErr.Message != fmt.Sprintf("password authentication failed for user %q", u.user) {
				t.Errorf("%s with a wrong password: %v", u.user, err)
			}
		}
	}
	if _, err := pgx.Connect(context.Background(), dsn(p, "nobody", "x")); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("unknown user: %v", err)
	}
	if out, err := psql(c, p, "md5user", "md5pw", "select 1 from nowhere"); err == nil || !strings.Contains(out, `relation "nowhere" does not exist`) {
		t.Errorf("psql error through the proxy: %q, %v", out, err)
	}
	st, err := p.Status()
	if err != nil || st.Counters.Accepted < 8 || st.Counters.Refused < 4 {
		t.Errorf("status: %+v, %v", st, err)
	}
}

// The pool logs in with md5 too; without a user list the proxy admits
// clients as trust on loopback.
func TestProxyServerMD5AndTrust(t *testing.T) {
	c := cluster(t, "md5")
	p := startFront(t, c, Options{Users: userList(t), Pool: 1, Mode: ModeSession})
	if got := queryString(t, connect(t, p, poolUser, poolPassword), "select current_user::text"); got != poolUser {
		t.Fatalf("current_user %q", got)
	}
	_, err := start(context.Background(), Options{Listen: "127.0.0.1:0", Server: c.Addr(), User: poolUser, Database: "postgres", Pool: 1}, newFakePath)
	if err == nil || !strings.Contains(err.Error(), `the server asks for a md5 password: put user "app" with its password in the user list (--users)`) {
		t.Fatalf("no user list, server wants md5: %v", err)
	}
	ct := cluster(t, "trust")
	pt := startFront(t, ct, Options{Pool: 1, Mode: ModeSession})
	if got := queryString(t, connect(t, pt, "anyone", ""), "select current_user::text"); got != poolUser {
		t.Fatalf("trust: current_user %q", got)
	}
}

// Errors at start are one clear line each.
func TestProxyStartErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("\"ok\" \"pw\"\n# comment\nalice secret\n"), 0o600)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Listen: "0.0.0.0:0"}, "proxy: listening on 0.0.0.0:0 needs a user list (--users FILE)"},
		{Options{Listen: "127.0.0.1:0", Users: bad}, "proxy: user list " + bad + ":3: a field does not start with a double quote"},
		{Options{Listen: "127.0.0.1:0", Users: "/nonexistent/users"}, "no such file or directory"},
		{Options{Listen: taken.Addr().String()}, "the address is in use (another proxy or PgBouncer?); choose another with --listen"},
		{Options{Listen: "127.0.0.1:0", Server: closedAddr}, "proxy: server " + closedAddr + ": connection refused"},
		{Options{Pool: -1}, "proxy: pool -1: give 1 to 1000"},
	} {
		p, err := start(context.Background(), tc.o, newFakePath)
		if err == nil {
			p.Close()
			t.Errorf("%+v: started", tc.o)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v:\n got %v\nwant %s", tc.o, err, tc.want)
		}
	}
}

// A startup packet over the limit, or of an unknown protocol, gets an
// ErrorResponse; the proxy goes on serving others. SSLRequest gets 'N'.
func TestProxyRefusesBadStartup(t *testing.T) {
	c := cluster(t, "trust")
	p := startFront(t, c, Options{Pool: 1, Mode: ModeSession})
	for _, tc := range []struct {
		packet []byte
		want   string
	}{
		{binary.BigEndian.AppendUint32(nil, 100000), "startup packet of 100000 bytes"},
		{binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 2<<16), "unsupported frontend protocol 2.0"},
		{append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), codeSSL), 0)[:8],
			binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 9<<16)...), "N"},
	} {
		conn, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write(tc.packet)
		reply, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.Contains(string(reply), tc.want) || (tc.want != "N" && reply[0] != 'E') {
			t.Errorf("%x: reply %q, want %q", tc.packet, reply, tc.want)
		}
	}
	if got := queryString(t, connect(t, p, "u", ""), "select 'still serving'"); got != "still serving" {
		t.Fatal(got)
	}
}

// A cancel request to the proxy reaches the server the client is using.
func TestProxyCancel(t *testing.T) {
	c := cluster(t, "trust")
	p := startFront(t, c, Options{Pool: 2, Mode: ModeSession})
	testCancel(t, c, p)
}

func testCancel(t *testing.T, c *pgcluster.Cluster, p *Proxy) {
	conn := connect(t, p, "u", "")
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), "select pg_sleep(10)")
		done <- err
	}()
	waitSQL(t, c, "select count(*)::text from pg_stat_activity where query = 'select pg_sleep(10)' and state = 'active'", "1")
	if err := conn.PgConn().CancelRequest(context.Background()); err != nil {
		t.Fatalf("cancel request: %v", err)
	}
	var pgErr *pgconn.PgError
	if err := <-done; !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("pg_sleep after cancel: %v, want SQLSTATE 57014 (query_canceled)", err)
	}
	if got := queryString(t, conn, "select 'after cancel'"); got != "after cancel" {
		t.Fatal(got)
	}
}

// waitSQL polls the cluster until sql answers want.
func waitSQL(t *testing.T, c *pgcluster.Cluster, sql, want string) {
	t.Helper()
	var out []byte
	for range 500 {
		out, _ = c.SQL(context.Background(), sql)
		if strings.TrimSpace(string(out)) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: %q, want %q", sql, out, want)
}

// In session mode a client keeps its server; when it leaves, the server
// is reset (DISCARD ALL) before the next client, who waited for it.
func TestProxySessionReset(t *testing.T) {
	c := cluster(t, "trust")
	p := startFront(t, c, Options{Pool: 1, Mode: ModeSession})
	first := connect(t, p, "u", "")
	if _, err := first.Exec(context.Background(), "set application_name = 'first'"); err != nil {
		t.Fatal(err)
	}
	pid := queryString(t, first, "select pg_backend_pid()::text")
	second := connect(t, p, "u", "")
	got := make(chan string, 1)
	go func() {
		var s string
		second.QueryRow(context.Background(), "select pg_backend_pid()::text || ':' || current_setting('application_name')").Scan(&s)
		got <- s
	}()
	waitStatus(t, p, func(st Status) bool { return st.Waiting == 1 })
	first.Close(context.Background())
	if s := <-got; s != pid+":" {
		t.Fatalf("the second client got %q, want the same backend %s with application_name reset", s, pid)
	}
	if st, _ := p.Status(); st.Counters.ServersReset != 1 || st.Counters.Queued != 1 {
		t.Fatalf("counters %+v", st.Counters)
	}
}

func waitStatus(t *testing.T, p *Proxy, ok func(Status) bool) {
	t.Helper()
	var st Status
	for range 500 {
		st, _ = p.Status()
		if ok(st) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("status never got there: %+v", st)
}

// startKernel starts a proxy on the real data path.
func startKernel(t *testing.T, c *pgcluster.Cluster, o Options) *Proxy {
	t.Helper()
	return startWith(t, c, o, func(m Mode) (dataPath, error) {
		d, err := OpenDatapath(m)
		if err != nil {
			return nil, err
		}
		return d, nil
	})
}

// In transaction mode, more clients than servers each run transactions
// that would show cross-talk: a value set inside a transaction is read
// back inside it. Clients wait in user space for servers and nothing is
// lost or mixed up.
func TestProxyTransactionPooling(t *testing.T) {
	c := cluster(t, "scram-sha-256")
	p := startKernel(t, c, Options{Users: userList(t), Pool: 2, Mode: ModeTransaction})
	const clients, rounds = 8, 30
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			// Named prepared statements do not survive transaction
			// pooling (see the README): half the clients use the extended
			// protocol with unnamed statements, half the simple protocol.
			mode := []string{"exec", "simple_protocol"}[i%2]
			conn, err := pgx.Connect(context.Background(), dsn(p, poolUser, poolPassword)+" default_query_exec_mode="+mode)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(context.Background())
			for r := range rounds {
				want := fmt.Sprintf("client %d round %d", i, r)
				tx, err := conn.Begin(context.Background())
				if err != nil {
					errs <- err
					return
				}
				var got string
				if _, err := tx.Exec(context.Background(), fmt.Sprintf("set local application_name = '%s'", want)); err != nil {
					errs <- err
					return
				}
				if err := tx.QueryRow(context.Background(), "select current_setting('application_name')").Scan(&got); err != nil {
					errs <- err
					return
				}
				if err := tx.Commit(context.Background()); err != nil {
					errs <- err
					return
				}
				if got != want {
					errs <- fmt.Errorf("client %d read %q inside its transaction, want %q", i, got, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Servers != 2 || st.Counters.ServersLost != 0 || st.Kernel.Servers != 2 || st.Kernel.Idle != 2 || st.Kernel.Links != 0 {
		t.Fatalf("status after the run: %+v", st)
	}
	if out, err := psql(c, p, poolUser, poolPassword, "select count(*) from pg_stat_activity where usename = 'app'"); err != nil || out != "2" {
		t.Fatalf("psql through the kernel path: %q, %v (the pool is 2 servers)", out, err)
	}
}

// With the only server inside another client's transaction, a client's
// query waits in user space, and is answered once that transaction ends.
func TestProxyWaitingClient(t *testing.T) {
	c := cluster(t, "trust")
	p := startKernel(t, c, Options{Pool: 1, Mode: ModeTransaction})
	holder := connect(t, p, "u", "")
	tx, err := holder.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	queryString(t, holder, "select 'holding'")
	waiter := connect(t, p, "u", "")
	got := make(chan string, 1)
	go func() {
		var s string
		err := waiter.QueryRow(context.Background(), "select 'served after waiting'").Scan(&s)
		got <- fmt.Sprint(s, err)
	}()
	waitStatus(t, p, func(st Status) bool { return st.Waiting == 1 })
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "served after waiting<nil>" {
		t.Fatalf("the waiting client got %q", s)
	}
	if st, _ := p.Status(); st.Counters.Queued != 1 || st.Waiting != 0 {
		t.Fatalf("status %+v", st)
	}
}

// A client killed inside a transaction frees its server: the proxy closes
// it (its transaction rolls back) and opens a fresh one; the pool of one
// goes on serving.
func TestProxyClientKilledMidTransaction(t *testing.T) {
	c := cluster(t, "trust")
	p := startKernel(t, c, Options{Pool: 1, Mode: ModeTransaction})
	conn := connect(t, p, "u", "")
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := ""
	if err := tx.QueryRow(context.Background(), "select pg_backend_pid()::text").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	conn.PgConn().Conn().Close() // gone without Terminate, inside the transaction
	waitSQL(t, c, "select count(*)::text from pg_stat_activity where pid = "+pid, "0")
	other := connect(t, p, "u", "")
	if got := queryString(t, other, "select pg_backend_pid()::text"); got == pid {
		t.Fatalf("the server of the killed client (%s) is still in use", pid)
	}
	if st, _ := p.Status(); st.Counters.ServersLost != 1 || st.Servers != 1 {
		t.Fatalf("status %+v", st)
	}
}

// Cancel through the kernel path, and the session reset on it.
func TestProxyKernelCancelAndSession(t *testing.T) {
	c := cluster(t, "trust")
	testCancel(t, c, startKernel(t, c, Options{Pool: 2, Mode: ModeTransaction}))
	p := startKernel(t, c, Options{Pool: 1, Mode: ModeSession})
	first := connect(t, p, "u", "")
	queryString(t, first, "select set_config('application_name', 'first', false)")
	first.Close(context.Background())
	second := connect(t, p, "u", "")
	if got := queryString(t, second, "select 'app=' || current_setting('application_name')"); got != "app=" {
		t.Fatalf("session mode: the next client sees %q, want a reset server", got)
	}
}
