// SPDX-License-Identifier: Apache-2.0

// Package pgcluster runs a throwaway PostgreSQL cluster for bpfsh's proxy
// tests and benchmarks: Debian's PostgreSQL binaries, initdb and pg_ctl run
// as the postgres user (PostgreSQL refuses to run as root) on a directory
// of its own, listening on a free loopback port, stopped and removed after.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options says how the cluster admits clients on loopback.
type Options struct {
	// Auth is the pg_hba method for the Users over TCP: "trust", "md5" or
	// "scram-sha-256" ("" is trust). The postgres superuser is always
	// trusted on loopback, so set-up needs no password.
	Auth string
	// Users are created with LOGIN, their passwords, and CREATE on the
	// public schema of the postgres database (so pgbench -i works).
	Users map[string]string
	// MaxConnections is max_connections (100 when 0).
	MaxConnections int
}

// Cluster is a running PostgreSQL cluster. Stop removes it.
type Cluster struct {
	// Dir holds the data directory, the log and the Unix socket.
	Dir string
	// BinDir holds initdb, pg_ctl, psql, pgbench.
	BinDir string
	// Host and Port are where it listens (loopback).
	Host string
	Port int

	uid, gid uint32
}

// dirPrefix starts the names of cluster directories: bpfsh-pg-<pid>-...;
// the pid lets a later run stop and remove what a killed one left behind.
const dirPrefix = "bpfsh-pg-"

// Missing says what to install when PostgreSQL's binaries or the postgres
// user are not there; nil when they are.
func Missing() error {
	if _, err := binDir(); err != nil {
		return err
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return errors.New("no postgres user: apt-get install -y postgresql creates it")
	}
	return nil
}

// binDir finds the newest /usr/lib/postgresql/N/bin with initdb.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install -y postgresql")
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	return filepath.Dir(dirs[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Start makes, configures and starts a cluster. On an error nothing is
// left running or on disk.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if err := Missing(); err != nil {
		return nil, err
	}
	if o.Auth, err = authMethod("postgres", o.Auth); err != nil {
		return nil, err
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 100
	}
	reap()
	bin, _ := binDir()
	pg, _ := user.Lookup("postgres")
	uid, _ := strconv.ParseUint(pg.Uid, 10, 32)
	gid, _ := strconv.ParseUint(pg.Gid, 10, 32)
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("postgres: temporary directory: %w", err)
	}
	c = &Cluster{Dir: dir, BinDir: bin, Host: "127.0.0.1", uid: uint32(uid), gid: uint32(gid)}
	started := false
	defer func() {
		if err != nil {
			if started {
				c.pgctl(context.Background(), "stop", "-m", "immediate")
			}
			os.RemoveAll(dir)
			c = nil
		}
	}()
	// MkdirTemp makes it 0700 for root; the postgres user must own it.
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return c, fmt.Errorf("postgres: chown %s: %w", dir, err)
	}
	if c.Port, err = freePort(); err != nil {
		return c, err
	}
	if out, err := c.run(ctx, "initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		return c, fmt.Errorf("postgres: initdb: %w: %s", err, lastLines(out))
	}
	if err := c.configure(o); err != nil {
		return c, err
	}
	started = true
	if out, err := c.pgctl(ctx, "start", "-w", "-t", "60", "-l", filepath.Join(dir, "log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return c, fmt.Errorf("postgres: pg_ctl start: %w: %s %s", err, lastLines(out), lastLines(log))
	}
	for name, password := range o.Users {
		sql := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s; GRANT CREATE ON SCHEMA public TO %s;",
			quoteIdent(name), quoteLiteral(password), quoteIdent(name))
		if out, err := c.SQL(ctx, sql); err != nil {
			return c, fmt.Errorf("postgres: create user %s: %w: %s", name, err, lastLines(out))
		}
	}
	return c, nil
}

// configure writes the settings and pg_hba.conf: loopback only, the socket
// in Dir, durability off (the proxies are measured, not the disk).
func (c *Cluster) configure(o Options) error {
	encryption := "scram-sha-256"
	if o.Auth == "md5" {
		encryption = "md5"
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = %d
password_encryption = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
`, c.Port, c.Dir, o.MaxConnections, encryption)
	hba := fmt.Sprintf(`local all postgres trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 %s
`, o.Auth)
	return c.writeAsPostgres("postgres", c.data(), map[string]string{"postgresql.auto.conf": conf, "pg_hba.conf": hba})
}

func (c *Cluster) data() string { return filepath.Join(c.Dir, "data") }

// Addr is host:port for TCP clients.
func (c *Cluster) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// DSN is a libpq/pgx connection string for user on database db (postgres
// when empty), over TCP, without TLS.
func (c *Cluster) DSN(user, password, db string) string {
	return dsn(c.Host, c.Port, user, password, db)
}

// Bin is the path of one of PostgreSQL's programs (psql, pgbench, ...).
func (c *Cluster) Bin(name string) string { return filepath.Join(c.BinDir, name) }

// SQL runs statements as the postgres superuser through psql over the
// Unix socket and returns psql's output.
func (c *Cluster) SQL(ctx context.Context, sql string) ([]byte, error) {
	return c.run(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", c.Dir, "-p", strconv.Itoa(c.Port), "-U", "postgres", "-d", "postgres", "-At", "-c", sql)
}

// Stop stops the server (fast shutdown: clients are disconnected) and
// removes the directory.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := c.pgctl(ctx, "stop", "-m", "fast", "-w")
	if err != nil {
		err = fmt.Errorf("postgres: pg_ctl stop: %w", err)
	}
	return errors.Join(err, os.RemoveAll(c.Dir))
}

func (c *Cluster) pgctl(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, "pg_ctl", append([]string{"-D", c.data()}, args...)...)
}

// run runs one of PostgreSQL's programs as the postgres user.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Bin(name), args...)
	c.asPostgres(cmd, c.Dir)
	return cmd.CombinedOutput()
}

// reap stops and removes the clusters of bpfsh processes that are gone
// (a test killed by its timeout leaves its postgres running).
func reap() {
	reapDirs(dirPrefix, func(dir string) {
		if pidfile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			if p, err := strconv.Atoi(strings.SplitN(string(pidfile), "\n", 2)[0]); err == nil && p > 0 {
				syscall.Kill(p, syscall.SIGQUIT)
			}
		}
	})
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// lastLines keeps the end of a program's output for an error message.
func lastLines(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return strings.ReplaceAll(s, "\n", "; ")
}
