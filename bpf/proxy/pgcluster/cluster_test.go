// SPDX-License-Identifier: Apache-2.0

package pgcluster

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func start(t *testing.T, o Options) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (initdb and pg_ctl run as the postgres user)")
	}
	if err := Missing(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (scripts/deps.sh installs it in CI)", err)
		}
		t.Skipf("skipped: %v", err)
	}
	c, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
			t.Errorf("%s left behind", c.Dir)
		}
	})
	return c
}

// A user with a SCRAM password logs in over TCP with it, and not without.
func TestClusterSCRAM(t *testing.T) {
	c := start(t, Options{Auth: "scram-sha-256", Users: map[string]string{"alice": "s3cret"}})
	psql := func(password string) (string, error) {
		cmd := exec.Command(c.Bin("psql"), "-X", "-At", "-h", c.Host, "-p", strconv.Itoa(c.Port), "-U", "alice", "-d", "postgres", "-c", "select current_user, 1+1")
		cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := psql("s3cret"); err != nil || out != "alice|2" {
		t.Fatalf("psql with the password: %q, %v", out, err)
	}
	if out, err := psql("wrong"); err == nil || !strings.Contains(out, "password authentication failed") {
		t.Fatalf("psql with a wrong password: %q, %v", out, err)
	}
	if out, err := c.SQL(context.Background(), "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'alice'"); err != nil || strings.TrimSpace(string(out)) != "t" {
		t.Fatalf("alice's password is not stored as SCRAM: %q, %v", out, err)
	}
}

func TestClusterRefusesUnknownAuth(t *testing.T) {
	if _, err := Start(context.Background(), Options{Auth: "password"}); err == nil || !strings.Contains(err.Error(), "want trust, md5 or scram-sha-256") {
		t.Fatalf("auth password: %v", err)
	}
}
