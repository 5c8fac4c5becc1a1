// SPDX-License-Identifier: Apache-2.0

package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bpfsh/bpfsh/bpf/internal/child"
)

// PgBouncerBin is Debian's PgBouncer.
const PgBouncerBin = "/usr/sbin/pgbouncer"

// PgBouncerMissing says what to install when PgBouncer is not there; nil
// when it is.
func PgBouncerMissing() error {
	if _, err := os.Stat(PgBouncerBin); err != nil {
		return fmt.Errorf("PgBouncer is not installed (no %s): apt-get install -y pgbouncer", PgBouncerBin)
	}
	return nil
}

// PgBouncerOptions configures a PgBouncer in front of a cluster.
type PgBouncerOptions struct {
	// Mode is pool_mode: "transaction" (the default), "session" or
	// "statement".
	Mode string
	// Pool is default_pool_size: server connections per user and
	// database (default 8).
	Pool int
	// MaxClients is max_client_conn (default 1000).
	MaxClients int
	// Auth is auth_type for clients: "trust" (the default), "md5" or
	// "scram-sha-256".
	Auth string
	// Users go into the auth_file with their passwords (PgBouncer also
	// logs in to the server with them). The postgres superuser is always
	// there, with no password (the cluster trusts it on loopback).
	Users map[string]string
}

// PgBouncer is a running PgBouncer; Stop stops it and removes its files.
type PgBouncer struct {
	// Dir holds the ini, the auth_file, the log and the pid file.
	Dir string
	// Host and Port are where it listens (loopback).
	Host string
	Port int
	// Options are the options it runs with, defaults filled in.
	Options PgBouncerOptions

	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's error, once done is closed
}

// pgbouncerPrefix starts PgBouncer's directories: bpfsh-pgbouncer-<pid>-...
const pgbouncerPrefix = "bpfsh-pgbouncer-"

// StartPgBouncer starts PgBouncer (as the postgres user: it refuses root)
// on a free loopback port in front of c, every database passed through.
// It returns once PgBouncer accepts connections. On an error nothing is
// left running or on disk.
func StartPgBouncer(ctx context.Context, c *Cluster, o PgBouncerOptions) (b *PgBouncer, err error) {
	if err := PgBouncerMissing(); err != nil {
		return nil, err
	}
	switch o.Mode {
	case "":
		o.Mode = "transaction"
	case "transaction", "session", "statement":
	default:
		return nil, fmt.Errorf("pgbouncer: mode %q: want transaction, session or statement", o.Mode)
	}
	if o.Auth, err = authMethod("pgbouncer", o.Auth); err != nil {
		return nil, err
	}
	if o.Pool == 0 {
		o.Pool = 8
	}
	if o.MaxClients == 0 {
		o.MaxClients = 1000
	}
	if o.Pool < 1 || o.MaxClients < 1 {
		return nil, fmt.Errorf("pgbouncer: pool %d, max clients %d: both must be at least 1", o.Pool, o.MaxClients)
	}
	reapPgBouncers()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", pgbouncerPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: temporary directory: %w", err)
	}
	b = &PgBouncer{Dir: dir, Host: "127.0.0.1", Options: o, done: make(chan struct{})}
	defer func() {
		if err != nil {
			b.Stop()
			b = nil
		}
	}()
	if err := os.Chown(dir, int(c.uid), int(c.gid)); err != nil {
		return b, fmt.Errorf("pgbouncer: chown %s: %w", dir, err)
	}
	if b.Port, err = freePort(); err != nil {
		return b, err
	}
	if err := b.writeConfig(c); err != nil {
		return b, err
	}
	cmd := exec.Command(PgBouncerBin, b.ini())
	c.asPostgres(cmd, dir)
	// child.Start: PDEATHSIG kills it if bpfsh dies mid-bench.
	if err := child.Start(cmd, nil, func(err error) { b.err = err; close(b.done) }); err != nil {
		return b, fmt.Errorf("pgbouncer: start %s: %w", PgBouncerBin, err)
	}
	b.cmd = cmd
	if err := b.waitReady(ctx); err != nil {
		return b, err
	}
	return b, nil
}

func (b *PgBouncer) ini() string { return filepath.Join(b.Dir, "pgbouncer.ini") }

// writeConfig writes pgbouncer.ini and userlist.txt, owned by postgres.
func (b *PgBouncer) writeConfig(c *Cluster) error {
	o := b.Options
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = %s
listen_port = %d
unix_socket_dir = %s
auth_type = %s
auth_file = %s
pool_mode = %s
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = %d
max_db_connections = 0
logfile = %s
pidfile = %s
admin_users = postgres
ignore_startup_parameters = extra_float_digits
server_check_delay = 0
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
`, c.Host, c.Port, b.Host, b.Port, b.Dir, o.Auth, filepath.Join(b.Dir, "userlist.txt"), o.Mode, o.Pool,
		o.MaxClients, filepath.Join(b.Dir, "log"), filepath.Join(b.Dir, "pid"))
	users := `"postgres" ""` + "\n"
	for name, password := range o.Users {
		users += fmt.Sprintf("%s %s\n", quoteUserlist(name), quoteUserlist(password))
	}
	return c.writeAsPostgres("pgbouncer", b.Dir, map[string]string{"pgbouncer.ini": ini, "userlist.txt": users})
}

// quoteUserlist quotes a name or password for the auth_file ("" inside).
func quoteUserlist(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// waitReady waits until PgBouncer accepts TCP connections (or exits).
func (b *PgBouncer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-b.done:
			return fmt.Errorf("pgbouncer: exited at start (%v): %s", b.err, b.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pgbouncer: waiting for it to listen: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgbouncer: not listening on %s after 15s: %s", b.Addr(), b.logTail())
		}
	}
}

func (b *PgBouncer) logTail() string {
	log, _ := os.ReadFile(filepath.Join(b.Dir, "log"))
	return lastLines(log)
}

// Addr is host:port for TCP clients.
func (b *PgBouncer) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// DSN is a libpq/pgx connection string through PgBouncer for user on
// database db (postgres when empty), without TLS.
func (b *PgBouncer) DSN(user, password, db string) string {
	return dsn(b.Host, b.Port, user, password, db)
}

// Pid is PgBouncer's process id (0 when not running).
func (b *PgBouncer) Pid() int {
	if b == nil || b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Stop stops PgBouncer (child.Stop: SIGTERM, its immediate shutdown;
// SIGKILL after child.StopWait) and removes its directory.
func (b *PgBouncer) Stop() error {
	if b == nil {
		return nil
	}
	var err error
	if b.cmd != nil {
		err = child.Stop(b.cmd, b.done, "pgbouncer")
	}
	return errors.Join(err, os.RemoveAll(b.Dir))
}

// reapPgBouncers stops and removes the PgBouncers of bpfsh processes that
// are gone.
func reapPgBouncers() {
	reapDirs(pgbouncerPrefix, func(dir string) {
		if pidfile, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(pidfile))); err == nil && p > 0 && isPgBouncer(p) {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
}

// isPgBouncer checks a pid still names a pgbouncer before it is killed
// (pids are reused).
func isPgBouncer(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "pgbouncer"
}
