// SPDX-License-Identifier: Apache-2.0

package pgcluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// What PostgreSQL and PgBouncer share here: both run as the postgres user
// (both refuse root) in a directory of their own named after bpfsh's pid,
// on a free loopback port.

// asPostgres makes cmd run as the postgres user in dir, with a minimal
// environment, in a process group of its own.
func (c *Cluster) asPostgres(cmd *exec.Cmd, dir string) {
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid}, Setpgid: true}
}

// writeAsPostgres writes files (name: text) into dir, 0600 and owned by
// the postgres user; what ("postgres", "pgbouncer") starts the errors.
func (c *Cluster) writeAsPostgres(what, dir string, files map[string]string) error {
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return fmt.Errorf("%s: write %s: %w", what, path, err)
		}
		if err := os.Chown(path, int(c.uid), int(c.gid)); err != nil {
			return fmt.Errorf("%s: chown %s: %w", what, path, err)
		}
	}
	return nil
}

// reapDirs finds the directories prefix<pid>-... in the temporary
// directory of bpfsh processes that are gone (a test killed by its
// timeout leaves its servers running), calls stop on each to stop what
// still runs there, and removes it.
func reapDirs(prefix string, stop func(dir string)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), prefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		stop(dir)
		os.RemoveAll(dir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("postgres: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dsn is a libpq/pgx connection string for user on database db (postgres
// when empty), over TCP to host:port, without TLS.
func dsn(host string, port int, user, password, db string) string {
	if db == "" {
		db = "postgres"
	}
	s := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", host, port, user, db)
	if password != "" {
		s += " password=" + quoteLiteral(password)
	}
	return s
}

// authMethod checks a client authentication method, "" meaning trust;
// what ("postgres", "pgbouncer") starts the error.
func authMethod(what, auth string) (string, error) {
	switch auth {
	case "":
		return "trust", nil
	case "trust", "md5", "scram-sha-256":
		return auth, nil
	}
	return "", fmt.Errorf("%s: auth %q: want trust, md5 or scram-sha-256", what, auth)
}
