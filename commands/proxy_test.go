// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
)

func proxyCluster(t *testing.T) *pgcluster.Cluster {
	t.Helper()
	bpftest.RequireRoot(t)
	if err := pgcluster.Missing(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	c, err := pgcluster.Start(context.Background(), pgcluster.Options{Auth: "trust"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proxy start, status and stop in one shell: the status comes from the
// maps, pinned under the pin root while the proxy runs and gone after.
func TestProxyStartStatusStop(t *testing.T) {
	c := proxyCluster(t)
	root := bpftest.PinRoot(t)
	listen := freeAddr(t)
	start := fmt.Sprintf("proxy start --listen %s --server %s --pool 2 --mode session --user postgres --database postgres", listen, c.Addr())
	out := bpfshOK(t, root, start+"; proxy status; map dump proxy/conns; proxy stop")
	for _, want := range []string{"listening", listen, "trust, loopback only", "0 clients, 2 servers", "2 servers idle", "proxy on " + listen + " stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	type status struct {
		Mode   string `json:"mode"`
		Kernel struct{ Servers, Idle, Clients int }
	}
	js := bpfshOK(t, root, start+"; proxy status", "-j")
	last := js[strings.LastIndex(js, "\n{"):]
	st := decodeJSON[status](t, last)
	if st.Mode != "session" || st.Kernel.Servers != 2 || st.Kernel.Idle != 2 || st.Kernel.Clients != 0 {
		t.Errorf("proxy status -j: %+v\n%s", st, js)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "proxy")); len(entries) != 0 {
		t.Errorf("pins left after the shell ended: %v", entries)
	}
	bpfshFails(t, root, "proxy stop", 1, "no proxy runs in this shell")
	bpfshFails(t, root, "proxy status", 1, "no proxy runs in this shell and none is pinned under "+filepath.Join(root, "proxy"))
}

// Bad input is one line each: the user list's file:line, an unreachable
// server with what to check, a public address without a user list, flags.
func TestProxyStartErrors(t *testing.T) {
	bpftest.RequireRoot(t)
	root := bpftest.PinRoot(t)
	users := filepath.Join(t.TempDir(), "users.txt")
	os.WriteFile(users, []byte("\"app\" \"pw\"\n\"bob\" secret\n"), 0o600)
	dead := freeAddr(t)
	bpfshFails(t, root, "proxy start --listen "+freeAddr(t)+" --users "+users, 1, users+":2:", `want "user" "password"`)
	bpfshFails(t, root, "proxy start --listen "+freeAddr(t)+" --server "+dead, 1, "server "+dead+": connection refused", "is PostgreSQL running")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bpfshFails(t, root, "proxy start --listen "+taken.Addr().String(), 1, "the address is in use")
	bpfshFails(t, root, "proxy start --listen 0.0.0.0:6432", 1, "needs a user list (--users FILE)")
	bpfshFails(t, root, "proxy start --pool 0", 2, "--pool \"0\": give the number of server connections")
	bpfshFails(t, root, "proxy start --mode statement", 2, "want transaction or session")
	bpfshFails(t, root, "proxy start --listen", 2, "--listen needs a value")
}
