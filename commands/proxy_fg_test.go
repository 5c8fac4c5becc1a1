package commands_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

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
