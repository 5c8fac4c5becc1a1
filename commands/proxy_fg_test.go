// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/jackc/pgx/v5"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
)

// lockedBuffer is a bytes.Buffer a child process writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fgProxy is `bpfsh proxy start ...` running in a process of its own.
type fgProxy struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	addr   string     // where it listens
	exited chan error // Wait's result, once it has exited
}

// startForegroundProxy runs `bpfsh proxy start --listen 127.0.0.1:0 ...`
// in a process of its own, as a user would from a terminal, and returns
// once it says where it listens.
func startForegroundProxy(t *testing.T, root string, c *pgcluster.Cluster, args ...string) *fgProxy {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"--pin-root", root, "proxy", "start", "--listen", "127.0.0.1:0", "--server", c.Addr()}, args...)
	p := &fgProxy{cmd: helperCmd(self, "bpfsh", argv...), out: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.exited <- p.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-done
	})
	listening := regexp.MustCompile(`(127\.0\.0\.1:[0-9]+): psql -h`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := listening.FindStringSubmatch(p.out.String()); m != nil {
			p.addr = m[1]
			return p
		}
		select {
		case <-done:
			t.Fatalf("bpfsh proxy start exited before listening:\n%s", p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bpfsh proxy start did not say where it listens within 30s:\n%s", p.out)
		}
	}
}

// interrupt sends SIGINT (Ctrl-C) and returns the exit status.
func (p *fgProxy) interrupt(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatalf("bpfsh proxy start did not stop within 30s of SIGINT:\n%s", p.out)
		return -1
	}
}

// `bpfsh proxy start ...` runs in the foreground: it serves clients,
// another shell's `proxy status` and `map dump proxy/conns` read its
// pinned maps (the kernel's view: clients, servers, links), and Ctrl-C
// stops it with exit status 130 (as any one-shot command Ctrl-C ends),
// saying what it did and leaving no pins.
func TestProxyForeground(t *testing.T) {
	c := proxyCluster(t)
	root := bpftest.PinRoot(t)
	p := startForegroundProxy(t, root, c, "--pool", "2")
	for _, want := range []string{"server", c.Addr() + ", 2 connections logged in as postgres", "mode", "transaction",
		"trust, loopback only", filepath.Join(root, "proxy") + "/", "Ctrl-C stops the proxy"} {
		if !strings.Contains(p.out.String(), want) {
			t.Errorf("bpfsh proxy start does not say %q:\n%s", want, p.out)
		}
	}

	// A client in the middle of a transaction holds a server: the other
	// shell sees one client linked to one of the two servers, the other
	// server idle.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, port := hostPort(t, p.addr)
	conn, err := pgx.Connect(ctx, "host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable")
	if err != nil {
		t.Fatalf("connect through the proxy: %v\n%s", err, p.out)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("SELECT through the proxy: %d, %v", n, err)
	}
	type kernel struct {
		Clients, Servers, Links, Idle int
		Conns                         []struct{ Role string }
	}
	type pinned struct {
		Pins   string `json:"pins"`
		Kernel kernel `json:"kernel"`
	}
	st := decodeJSON[pinned](t, bpfshOK(t, root, "proxy status", "-j"))
	if st.Pins != filepath.Join(root, "proxy") || st.Kernel.Clients != 1 || st.Kernel.Servers != 2 || st.Kernel.Links != 1 ||
		st.Kernel.Idle != 1 || len(st.Kernel.Conns) != 3 {
		t.Errorf("proxy status -j from another shell: %+v", st)
	}
	out := bpfshOK(t, root, "proxy status")
	for _, want := range []string{"a proxy run by another bpfsh", "1 clients, 2 servers", "1 client-server pairs linked now", "1 servers idle, 0 clients WAITING"} {
		if !strings.Contains(out, want) {
			t.Errorf("proxy status from another shell does not say %q:\n%s", want, out)
		}
	}
	// The dump decodes each socket's struct pg_conn by BTF: the client and
	// its server name each other, and the server's walker saw
	// ReadyForQuery 'T' (in a transaction) last.
	type entry struct {
		Key   uint64 `json:"key"`
		Value struct {
			Peer uint64 `json:"peer"`
			Role uint32 `json:"role"`
			Msgs uint64 `json:"msgs"`
			Walk struct {
				Status int `json:"status"`
			} `json:"walk"`
		} `json:"value"`
	}
	entries := decodeJSON[[]entry](t, bpfshOK(t, root, "map dump proxy/conns", "-j"))
	byKey := map[uint64]entry{}
	var client *entry
	for i, e := range entries {
		byKey[e.Key] = e
		if e.Value.Role == 1 {
			client = &entries[i]
		}
	}
	if client == nil || len(entries) != 3 || client.Value.Msgs == 0 {
		t.Fatalf("map dump proxy/conns -j: want one client with messages walked and two servers: %+v", entries)
	}
	server, ok := byKey[client.Value.Peer]
	if !ok || server.Value.Role != 2 || server.Value.Peer != client.Key || server.Value.Walk.Status != 'T' {
		t.Errorf("map dump proxy/conns -j: client %+v is not linked to a server in a transaction: %+v", *client, entries)
	}
	if dump := bpfshOK(t, root, "map dump proxy/conns"); !strings.Contains(dump, "peer") || !strings.Contains(dump, "outstanding") {
		t.Errorf("map dump proxy/conns does not show struct pg_conn's fields:\n%s", dump)
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	code := p.interrupt(t)
	if code != 130 {
		t.Errorf("bpfsh proxy start after SIGINT: exit %d, want 130:\n%s", code, p.out)
	}
	if !regexp.MustCompile(`stopped +admitted [1-9][0-9]* clients, refused 0; connections closed, maps unpinned`).MatchString(p.out.String()) {
		t.Errorf("bpfsh proxy start did not say it stopped:\n%s", p.out)
	}
	if entries, err := os.ReadDir(filepath.Join(root, "proxy")); err == nil && len(entries) != 0 {
		t.Errorf("pins left after Ctrl-C: %v", entries)
	}
}

// hostPort splits host:port.
func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q has no port", addr)
	}
	return addr[:i], addr[i+1:]
}

// psqlScript is what a user types into psql through the proxy: a
// transaction of several statements, meta commands (which run catalog
// queries), an error inside a transaction and its ROLLBACK, then \q.
const psqlScript = `CREATE TABLE psql_items (id int PRIMARY KEY, name text NOT NULL);
BEGIN;
INSERT INTO psql_items VALUES (1, 'one');
INSERT INTO psql_items VALUES (2, 'two');
SELECT count(*) AS in_tx FROM psql_items;
COMMIT;
\d psql_items
\dt
\l
BEGIN;
INSERT INTO psql_items VALUES (3, 'three');
SELECT 1/0;
SELECT 'after the error';
ROLLBACK;
SELECT id, name FROM psql_items ORDER BY id;
\echo psql-done
\q
SELECT 'not reached';
`

// The real psql, interactive on a terminal (a pty), through the proxy in
// transaction mode (each statement outside a transaction, and each of
// psql's catalog queries, may get another server): everything a session
// at the prompt does works, and the prompt follows the transaction.
func TestProxyPsql(t *testing.T) {
	c := proxyCluster(t)
	root := bpftest.PinRoot(t)
	p := startForegroundProxy(t, root, c, "--pool", "2", "--mode", "transaction")
	host, port := hostPort(t, p.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin("psql"), "-X", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-P", "pager=off")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "HOME=" + t.TempDir(), "PGCONNECT_TIMEOUT=10", "TERM=dumb"}
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var all lockedBuffer
	read := make(chan struct{})
	go func() { io.Copy(&all, tty); close(read) }() // until psql exits (EIO)
	// Type once psql prompts: its line editor has the terminal then, so
	// the transcript holds each line once, after its prompt.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(all.String(), "postgres=# "); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("psql did not prompt through the proxy within 30s:\n%s\nproxy:\n%s", all.String(), p.out)
		}
	}
	if _, err := tty.Write([]byte(psqlScript)); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	<-read
	out := strings.ReplaceAll(all.String(), "\r\n", "\n")
	if werr != nil {
		t.Fatalf("psql through the proxy: %v\n%s\nproxy:\n%s", werr, out, p.out)
	}
	// The prompt shows the transaction status the proxy passed on from
	// the server's ReadyForQuery: = idle, * in a transaction, ! failed.
	for _, want := range []string{
		"postgres=# CREATE TABLE psql_items (id int PRIMARY KEY, name text NOT NULL);\nCREATE TABLE\npostgres=# BEGIN;\nBEGIN\n" +
			"postgres=*# INSERT INTO psql_items VALUES (1, 'one');\nINSERT 0 1\npostgres=*# INSERT INTO psql_items VALUES (2, 'two');\nINSERT 0 1\n" +
			"postgres=*# SELECT count(*) AS in_tx FROM psql_items;\n in_tx \n-------\n     2\n(1 row)\n\npostgres=*# COMMIT;\nCOMMIT\npostgres=# \\d psql_items\n",
		`Table "public.psql_items"`, " id     | integer |           | not null | \n name   | text    |           | not null | \n",
		`"psql_items_pkey" PRIMARY KEY, btree (id)`,
		"postgres=# \\dt\n", " public | psql_items | table | postgres\n(1 row)\n",
		"postgres=# \\l\n", "List of databases", " template1 | postgres |",
		"postgres=# BEGIN;\nBEGIN\npostgres=*# INSERT INTO psql_items VALUES (3, 'three');\nINSERT 0 1\n" +
			"postgres=*# SELECT 1/0;\nERROR:  division by zero\npostgres=!# SELECT 'after the error';\n" +
			"ERROR:  current transaction is aborted, commands ignored until end of transaction block\npostgres=!# ROLLBACK;\nROLLBACK\n" +
			"postgres=# SELECT id, name FROM psql_items ORDER BY id;\n id | name \n----+------\n  1 | one\n  2 | two\n(2 rows)\n\n" +
			"postgres=# \\echo psql-done\npsql-done\npostgres=# \\q\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("psql's session lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "ERROR:"); n != 2 || !strings.HasSuffix(out, "postgres=# \\q\n") {
		t.Errorf("psql's session has %d errors (want the 2 above) or goes on after \\q:\n%s", n, out)
	}
	if code := p.interrupt(t); code != 130 {
		t.Errorf("bpfsh proxy start after SIGINT: exit %d, want 130:\n%s", code, p.out)
	}
}
