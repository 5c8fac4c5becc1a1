// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/proxy"
)

// proxyCmd is the PostgreSQL pooling proxy (bpf/proxy): start-up and
// authentication in user space, the data path in sk_skb programs.
// Every sub-command is in Subs (bench is declared in proxy_bench.go).
var proxyCmd = &Command{
	Name:  "proxy",
	Short: "a PostgreSQL pooling proxy whose data path runs in the kernel (sockmap), after Tigger",
	Long: "proxy runs a PostgreSQL connection pooler in the manner of PgBouncer, with the data path in the kernel: " +
		"the proxy accepts clients, runs their start-up and authentication itself (trust, md5, SCRAM-SHA-256 against " +
		"a PgBouncer-style user list), keeps a pool of logged-in server connections, and hands both kinds of socket to " +
		"sk_skb programs on two sockhashes that walk the PostgreSQL messages and redirect them between linked client " +
		"and server. In transaction mode a server is lent for one transaction (until ReadyForQuery 'I'), in session " +
		"mode for the client's whole session. Clients that find no idle server wait in user space; nothing is dropped. " +
		"Transaction pooling has PgBouncer's limits: session state (SET, LISTEN, advisory locks, temporary tables, " +
		"named prepared statements) does not follow a client from one transaction to the next.",
	Example: "proxy start --server 127.0.0.1:5432 --pool 8 --users /etc/pgbouncer/userlist.txt --user app --database app",
	Subs:    []*Command{proxyStartCmd, proxyStopCmd, proxyStatusCmd, proxyBenchCommand()},
}

var proxyStartCmd = &Command{
	Name:  "start",
	Usage: "[--listen ADDR] [--server ADDR] [--pool N] [--mode transaction|session] [--users FILE] [--user U] [--database D]",
	Short: "start the proxy: in the background of this shell, or in the foreground as 'bpfsh proxy start ...'",
	Long: "start logs N connections in to the server (--server, 127.0.0.1:5432) as --user (postgres) on --database " +
		"(the user's name), loads the data path, pins its maps under <pin-root>/proxy/ (so that 'proxy status' and " +
		"'map dump proxy/conns' work from another shell) and listens on --listen (127.0.0.1:6432). Clients must ask " +
		"for that database; all of them share the pool's log-in. --users FILE is a user list in PgBouncer's auth_file " +
		"format, one `\"user\" \"secret\"` a line: the secret is a plaintext password or a SCRAM secret (the client " +
		"logs in with SCRAM-SHA-256), an md5 hash 'md5...' (md5), or \"\" (no password). The pool's own user needs " +
		"its plaintext password there when the server asks for one (an md5 hash does for md5). Without --users every " +
		"client is admitted without a password, which the proxy allows on loopback only. In the shell the proxy runs " +
		"in the background until 'proxy stop' or the end of the session; 'bpfsh proxy start ...' runs it in the " +
		"foreground until Ctrl-C. --mode is transaction (default) or session; in session mode a server a client " +
		"leaves is reset with DISCARD ALL before the next client gets it.",
	Example: "proxy start --listen 127.0.0.1:6432 --server 127.0.0.1:5432 --pool 4 --mode transaction --users users.txt --user app --database app",
	Run:     runProxyStart,
}

var proxyStopCmd = &Command{
	Name:    "stop",
	Short:   "stop the proxy this shell started: close every client and server connection, unload and unpin",
	Long:    "stop closes the proxy started with 'proxy start' in this shell: its clients are disconnected, its server connections closed, the programs detached and the maps unpinned. A proxy run as 'bpfsh proxy start' stops with Ctrl-C.",
	Example: "proxy stop",
	Run:     runProxyStop,
}

var proxyStatusCmd = &Command{
	Name:  "status",
	Short: "clients, servers, links, idle servers and counters, read from the data path's maps",
	Long: "status shows the proxy of this shell: where it listens, the server, the mode, the clients connected and " +
		"waiting for a server, and from the kernel's maps the client and server sockets, current links, idle " +
		"servers and the data path's counters. With no proxy in this shell it reads the maps pinned under " +
		"<pin-root>/proxy/ by a proxy that another bpfsh runs. -j gives everything as JSON, each socket included.",
	Example: "proxy status",
	Run:     runProxyStatus,
}

// proxies are the proxies running in the background of each session.
var proxies = struct {
	sync.Mutex
	m map[*Session]*proxy.Proxy
}{m: map[*Session]*proxy.Proxy{}}

// proxyPinDir is where a proxy's maps are pinned.
func proxyPinDir(s *Session) string { return filepath.Join(s.PinRoot, "proxy") }

// proxyStartArgs reads proxy start's flags (--name VALUE or --name=VALUE).
var proxyStartArgs = argSpec{
	Valued: []string{"--listen", "--server", "--pool", "--mode", "--users", "--user", "--database"},
	Need: map[string]string{"--listen": "a value, e.g. --listen 127.0.0.1:6432", "--server": "a value, e.g. --server 127.0.0.1:5432",
		"--pool": "a value, e.g. --pool 8", "--mode": "a value, e.g. --mode transaction", "--users": "a value, e.g. --users userlist.txt",
		"--user": "a value, e.g. --user app", "--database": "a value, e.g. --database app"},
	Takes: "proxy start takes --listen, --server, --pool, --mode, --users, --user, --database",
}

// parseProxyOptions reads proxy start's flags (--name VALUE or --name=VALUE).
func parseProxyOptions(args []string) (proxy.Options, error) {
	var o proxy.Options
	_, err := proxyStartArgs.parse(args, func(name string, v ...string) error {
		value := v[0]
		switch name {
		case "--listen":
			o.Listen = value
		case "--server":
			o.Server = value
		case "--pool":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > proxy.MaxPool {
				return Usagef("--pool %q: give the number of server connections, 1 to %d", value, proxy.MaxPool)
			}
			o.Pool = n
		case "--mode":
			m, err := proxy.ParseMode(value)
			if err != nil {
				return Usagef("--%v", err)
			}
			o.Mode = m
		case "--users":
			o.Users = value
		case "--user":
			o.User = value
		case "--database":
			o.Database = value
		}
		return nil
	})
	if err != nil {
		return o, err
	}
	return o, nil
}

func runProxyStart(s *Session, args []string) (Result, error) {
	o, err := parseProxyOptions(args)
	if err != nil {
		return nil, err
	}
	proxies.Lock()
	running := proxies.m[s]
	proxies.Unlock()
	if running != nil {
		return nil, fmt.Errorf("proxy start: a proxy already runs in this shell, on %s; 'proxy stop' stops it", running.Addr())
	}
	if err := bpf.EnsureBPFFS(); err != nil {
		return nil, fmt.Errorf("proxy start: %w", err)
	}
	o.PinDir = proxyPinDir(s)
	if entries, err := os.ReadDir(o.PinDir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("proxy start: %s holds another proxy's pins (one runs in another bpfsh, or was killed): stop it, or remove the directory if none runs", o.PinDir)
	}
	p, err := proxy.Start(s.Context(), o)
	if err != nil {
		os.Remove(o.PinDir)
		return nil, err
	}
	st, _ := p.Status()
	auth := st.Auth
	if o.Users == "" {
		auth = "none: clients are admitted without a password (trust, loopback only); --users FILE to check passwords"
	}
	lines := [][2]string{
		{"listening", fmt.Sprintf("%s: psql -h %s -p %s -U USER -d %s", p.Addr(), hostOf(p.Addr()), portOf(p.Addr()), st.Database)},
		{"server", fmt.Sprintf("%s, %d connections logged in as %s", st.Server, st.Pool, st.User)},
		{"mode", st.Mode},
		{"auth", auth},
		{"maps", o.PinDir + "/ (proxy status, map dump proxy/conns)"},
	}
	if !s.OneShot {
		proxies.Lock()
		proxies.m[s] = p
		proxies.Unlock()
		s.AtExit("proxy", func() error {
			proxies.Lock()
			q := proxies.m[s]
			delete(proxies.m, s)
			proxies.Unlock()
			if q == nil {
				return nil
			}
			return stopProxy(q, o.PinDir)
		})
		lines = append(lines, [2]string{"stop", "proxy stop (or the end of this shell) stops it"})
		rec := &Record{JSON: map[string]any{"listen": p.Addr(), "server": st.Server, "mode": st.Mode, "pool": st.Pool, "auth": st.Auth, "pins": o.PinDir}}
		for _, l := range lines {
			rec.Fields = append(rec.Fields, Field{Name: l[0], Value: l[1]})
		}
		return rec, nil
	}
	ctx := s.Context()
	return &Stream{
		Columns: []string{"event", "detail"},
		Live:    true,
		Widths:  []int{10},
		Each: func(emit func([]string, any) error) error {
			say := func(event, detail string) error {
				return emit([]string{event, detail}, map[string]string{"event": event, "detail": detail})
			}
			lines = append(lines, [2]string{"stop", "Ctrl-C stops the proxy"})
			for _, l := range lines {
				if err := say(l[0], l[1]); err != nil {
					stopProxy(p, o.PinDir)
					return err
				}
			}
			<-ctx.Done()
			st, _ := p.Status()
			if err := stopProxy(p, o.PinDir); err != nil {
				return err
			}
			return say("stopped", fmt.Sprintf("admitted %d clients, refused %d; connections closed, maps unpinned", st.Counters.Accepted, st.Counters.Refused))
		},
	}, nil
}

func stopProxy(p *proxy.Proxy, pinDir string) error {
	err := p.Close()
	os.Remove(pinDir)
	if err != nil {
		return fmt.Errorf("proxy stop: %w", err)
	}
	return nil
}

func runProxyStop(s *Session, args []string) (Result, error) {
	if len(args) > 0 {
		return nil, Usagef("proxy stop takes no arguments")
	}
	proxies.Lock()
	p := proxies.m[s]
	delete(proxies.m, s)
	proxies.Unlock()
	if p == nil {
		return nil, errors.New("proxy stop: no proxy runs in this shell ('proxy start' starts one; one run as 'bpfsh proxy start' stops with Ctrl-C)")
	}
	st, _ := p.Status()
	addr := p.Addr()
	if err := stopProxy(p, proxyPinDir(s)); err != nil {
		return nil, err
	}
	return &Message{Text: fmt.Sprintf("proxy on %s stopped: %d clients disconnected, %d server connections closed, maps unpinned", addr, st.Clients, st.Servers),
		Data: map[string]any{"stopped": addr, "clients": st.Clients, "servers": st.Servers}}, nil
}

func runProxyStatus(s *Session, args []string) (Result, error) {
	if len(args) > 0 {
		return nil, Usagef("proxy status takes no arguments")
	}
	proxies.Lock()
	p := proxies.m[s]
	proxies.Unlock()
	rec := &Record{}
	add := func(name, value string) { rec.Fields = append(rec.Fields, Field{Name: name, Value: value}) }
	var snap proxy.Snapshot
	if p != nil {
		st, err := p.Status()
		if err != nil {
			return nil, fmt.Errorf("proxy status: %w", err)
		}
		rec.JSON = st
		snap = st.Kernel
		add("listen", st.Listen)
		add("server", st.Server)
		add("mode", st.Mode)
		add("auth", st.Auth)
		add("pool", strconv.Itoa(st.Pool))
		add("clients", fmt.Sprintf("%d connected, %d waiting in user space for a server", st.Clients, st.Waiting))
		add("front", fmt.Sprintf("accepted %d, refused %d, queued %d, cancels %d, servers lost %d, servers reset %d",
			st.Counters.Accepted, st.Counters.Refused, st.Counters.Queued, st.Counters.Cancels, st.Counters.ServersLost, st.Counters.ServersReset))
	} else {
		dir := proxyPinDir(s)
		var err error
		if snap, err = proxy.SnapshotPinned(dir); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("proxy status: no proxy runs in this shell and none is pinned under %s; 'proxy start' starts one", dir)
			}
			return nil, fmt.Errorf("proxy status: %w", err)
		}
		rec.JSON = map[string]any{"pins": dir, "kernel": snap}
		add("pins", dir+" (a proxy run by another bpfsh; its listen address and auth are shown there)")
	}
	add("sockets", fmt.Sprintf("%d clients, %d servers (in the kernel's conns map)", snap.Clients, snap.Servers))
	add("links", fmt.Sprintf("%d client-server pairs linked now", snap.Links))
	add("idle", fmt.Sprintf("%d servers idle, %d clients WAITING", snap.Idle, snap.Waiting))
	var counters []string
	for _, st := range snap.Stats {
		if st.Value != 0 {
			counters = append(counters, fmt.Sprintf("%s %d", st.Name, st.Value))
		}
	}
	sort.Strings(counters)
	if len(counters) == 0 {
		counters = []string{"none yet"}
	}
	add("kernel", strings.Join(counters, ", "))
	return rec, nil
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
