// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/cache"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// redisCmd runs a redis-server for the live Redis cache (cache attach
// --redis) and talks to it: what a lesson needs, without a second
// terminal. The server is Debian's, in a cgroup of its own, so that the
// cache's sock_ops program can be attached there and see nothing else.
var redisCmd = &Command{
	Name:  "redis",
	Short: "run Debian's redis-server for the live Redis cache, and send it commands as redis-cli does",
	Long: "redis starts and stops a redis-server (Debian's package redis-server) on 127.0.0.1 for trying the live Redis cache " +
		"('cache attach --redis'), and sends it commands the way redis-cli does. 'redis start' runs it with no persistence in a " +
		"cgroup of its own, bpfsh-redis-PORT under the cgroup v2 mount, so that 'cache attach --redis port PORT cgroup " +
		"bpfsh-redis-PORT' puts the cache in front of it and of nothing else; 'redis cli GET k' sends one command on a new " +
		"connection and prints the reply as redis-cli does; 'redis stop' stops the server and removes its cgroup. In the shell " +
		"the server runs in the background until 'redis stop' or the end of the session; 'bpfsh redis start' runs it in the " +
		"foreground until Ctrl-C.",
	Example: "redis start port 6390",
	Subs:    []*Command{redisStartCmd, redisStopCmd, redisCliCmd},
}

var redisStartCmd = &Command{
	Name:  "start",
	Usage: "[port N]",
	Short: "start redis-server on 127.0.0.1:N (6379) in the cgroup bpfsh-redis-N, in the background of this shell",
	Long: "start runs redis-server from Debian's package (apt-get install -y redis-server) on 127.0.0.1, port N (6379), with no " +
		"persistence (--save '' --appendonly no) and its files in a temporary directory, and waits until it answers. It runs in " +
		"a cgroup of its own, bpfsh-redis-N directly under the cgroup v2 mount (found in /proc/self/mountinfo): a sock_ops " +
		"program attached there ('cache attach --redis port N cgroup bpfsh-redis-N') sees its connections and no other " +
		"process's. It runs until 'redis stop' or the end of this shell; 'bpfsh redis start' runs it in the foreground until " +
		"Ctrl-C. A port something already listens on is refused.",
	Example: "redis start port 6390",
	Run:     runRedisStart,
}

var redisStopCmd = &Command{
	Name:    "stop",
	Usage:   "[port N]",
	Short:   "stop a redis-server this shell started, and remove its cgroup",
	Long:    "stop stops the redis-server that 'redis start' started in this shell on port N (the only one when N is left out): SIGTERM, then SIGKILL after 5 s; its temporary directory and its cgroup bpfsh-redis-N go too. A Redis cache attached to that cgroup stays pinned, seeing nothing, until 'cache detach --redis'.",
	Example: "redis stop",
	Run:     runRedisStop,
}

var redisCliCmd = &Command{
	Name:  "cli",
	Usage: "[port N] COMMAND [ARG...]",
	Short: "send one command to redis-server on 127.0.0.1 and print the reply as redis-cli does",
	Long: "cli sends COMMAND with its arguments to the redis-server on 127.0.0.1, port N (the one this shell started when it " +
		"started one, 6379 otherwise), as a RESP array of bulk strings, reads one reply and prints it as redis-cli does: OK, " +
		"(integer) 1, \"hello\", (nil), (error) ..., numbered lines for arrays. -j gives the reply and its bytes exactly as " +
		"they came ('resp'). Like an interactive redis-cli it keeps one connection to each port for the rest of the shell. " +
		"The Redis cache answers a connection's GETs only after redis-server has answered one GET on it (so that AUTH is " +
		"respected), and sees only connections made after it was attached: 'cache attach --redis' closes this shell's redis " +
		"cli connections to its port, and the next command makes a new one.",
	Example: "redis cli GET greeting",
	Run:     runRedisCli,
}

// redisServer is a redis-server 'redis start' runs, and its cgroup.
type redisServer struct {
	srv    *kv.Redis
	cgroup string
}

// redisServers are the redis-servers running in the background of each
// session, by port.
var redisServers = struct {
	sync.Mutex
	m map[*Session]map[int]*redisServer
}{m: map[*Session]map[int]*redisServer{}}

// RedisCgroupName is the cgroup, under the cgroup v2 mount, of the
// redis-server 'redis start' runs on port.
func RedisCgroupName(port int) string { return "bpfsh-redis-" + strconv.Itoa(port) }

// redisPortArg takes a leading "port N" (or --port N, --port=N) off args.
func redisPortArg(cmd string, args []string) (port int, rest []string, err error) {
	if len(args) == 0 {
		return 0, args, nil
	}
	var word string
	switch {
	case args[0] == "port" || args[0] == "--port":
		if len(args) < 2 {
			return 0, nil, Usagef("%s: %s needs a TCP port after it, e.g. %s port 6390", cmd, args[0], cmd)
		}
		word, rest = args[1], args[2:]
	case strings.HasPrefix(args[0], "--port="):
		word, rest = strings.TrimPrefix(args[0], "--port="), args[1:]
	default:
		return 0, args, nil
	}
	n, perr := strconv.Atoi(word)
	if perr != nil || n < 1 || n > 65535 {
		return 0, nil, Usagef("%s: port %q: a TCP port is a number from 1 to 65535", cmd, word)
	}
	return n, rest, nil
}

// redisServerMissing says how to install redis-server when it is not.
func redisServerMissing(cmd string) error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("%s: redis-server is not installed: apt-get install -y redis-server", cmd)
	}
	return nil
}

func runRedisStart(s *Session, args []string) (Result, error) {
	const cmd = "redis start"
	port, rest, err := redisPortArg(cmd, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s takes only port N, not %q", cmd, rest[0])
	}
	if port == 0 {
		port = cache.RedisPort
	}
	if err := redisServerMissing(cmd); err != nil {
		return nil, err
	}
	redisServers.Lock()
	running := redisServers.m[s][port]
	redisServers.Unlock()
	if running != nil {
		return nil, fmt.Errorf("%s: this shell runs redis-server on 127.0.0.1:%d already; 'redis stop port %d' stops it", cmd, port, port)
	}
	if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
		return nil, fmt.Errorf("%s: port %d of 127.0.0.1 is taken (another redis-server?): stop what listens there, or choose another port: redis start port N", cmd, port)
	} else {
		ln.Close()
	}
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	cgroup := filepath.Join(mnt, RedisCgroupName(port))
	if err := bpf.MakeCgroup(cgroup); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	srv, err := kv.StartRedis(s.Context(), kv.RedisOptions{Port: port, Cgroup: cgroup})
	if err != nil {
		bpf.RemoveCgroup(cgroup, time.Second)
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	rs := &redisServer{srv: srv, cgroup: cgroup}
	fields := []Field{
		{Name: "redis-server", Value: fmt.Sprintf("%s on 127.0.0.1:%d (pid %d; no persistence, files in %s)", srv.Version, port, srv.Pid(), srv.Dir)},
		{Name: "cgroup", Value: cgroup},
		{Name: "cache", Value: fmt.Sprintf("cache attach --redis port %d cgroup %s", port, RedisCgroupName(port))},
		{Name: "send", Value: fmt.Sprintf("redis cli port %d GET KEY (or redis-cli -p %d)", port, port)},
	}
	json := map[string]any{"port": port, "version": srv.Version, "pid": srv.Pid(), "cgroup": cgroup, "dir": srv.Dir}
	if !s.OneShot {
		redisServers.Lock()
		if redisServers.m[s] == nil {
			redisServers.m[s] = map[int]*redisServer{}
		}
		redisServers.m[s][port] = rs
		redisServers.Unlock()
		s.AtExit("redis", func() error { return stopRedisServers(s) })
		fields = append(fields, Field{Name: "stop", Value: "redis stop (or the end of this shell) stops it"})
		return &Record{Fields: fields, JSON: json}, nil
	}
	ctx := s.Context()
	return &Stream{
		Columns: []string{"event", "detail"},
		Live:    true,
		Widths:  []int{12},
		Each: func(emit func([]string, any) error) error {
			defer rs.stop()
			fields = append(fields, Field{Name: "stop", Value: "Ctrl-C stops it"})
			for _, f := range fields {
				if err := emit([]string{f.Name, f.Value}, map[string]string{"event": f.Name, "detail": f.Value}); err != nil {
					return err
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-srv.Exited():
				return fmt.Errorf("%s: redis-server on port %d exited", cmd, port)
			}
		},
	}, nil
}

// stop stops the server and removes its cgroup.
func (rs *redisServer) stop() error {
	err := rs.srv.Stop()
	return errors.Join(err, bpf.RemoveCgroup(rs.cgroup, 5*time.Second))
}

// stopRedisServers stops every redis-server the session runs.
func stopRedisServers(s *Session) error {
	redisServers.Lock()
	m := redisServers.m[s]
	delete(redisServers.m, s)
	redisServers.Unlock()
	var errs []error
	for _, rs := range m {
		errs = append(errs, rs.stop())
	}
	return errors.Join(errs...)
}

// sessionRedisPorts are the ports of the servers the session runs, in order.
func sessionRedisPorts(s *Session) []int {
	redisServers.Lock()
	defer redisServers.Unlock()
	var ports []int
	for p := range redisServers.m[s] {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// stopSessionRedis stops the session's redis-server on port; ok says
// there was one.
func stopSessionRedis(s *Session, port int) (ok bool, err error) {
	closeRedisConns(s, port)
	redisServers.Lock()
	rs := redisServers.m[s][port]
	delete(redisServers.m[s], port)
	redisServers.Unlock()
	if rs == nil {
		return false, nil
	}
	return true, rs.stop()
}

func runRedisStop(s *Session, args []string) (Result, error) {
	const cmd = "redis stop"
	port, rest, err := redisPortArg(cmd, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s takes only port N, not %q", cmd, rest[0])
	}
	ports := sessionRedisPorts(s)
	if port == 0 {
		switch len(ports) {
		case 0:
			return nil, fmt.Errorf("%s: this shell runs no redis-server ('redis start' starts one)", cmd)
		case 1:
			port = ports[0]
		default:
			return nil, Usagef("%s: this shell runs redis-server on ports %s; say which: redis stop port N", cmd, joinInts(ports))
		}
	}
	ok, err := stopSessionRedis(s, port)
	if !ok {
		return nil, fmt.Errorf("%s: this shell runs no redis-server on port %d (it runs %s)", cmd, port, orNone(joinInts(ports)))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return &Message{Text: fmt.Sprintf("stopped redis-server on 127.0.0.1:%d and removed its cgroup %s", port, RedisCgroupName(port)),
		Data: map[string]any{"stopped": port}}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func runRedisCli(s *Session, args []string) (Result, error) {
	const cmd = "redis cli"
	port, rest, err := redisPortArg(cmd, args)
	if err != nil {
		return nil, err
	}
	if len(rest) == 0 {
		return nil, Usagef("%s needs a command to send, e.g. redis cli GET greeting", cmd)
	}
	if port == 0 {
		port = cache.RedisPort
		if ports := sessionRedisPorts(s); len(ports) == 1 {
			port = ports[0]
		}
	}
	reply, resp, err := redisRoundTrip(s, port, string(cache.RESPArray(rest...)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return &Text{Body: strings.Join(reply.lines(), "\n") + "\n", JSON: map[string]any{"reply": reply.json(), "resp": resp}}, nil
}

// redisConn is the connection 'redis cli' keeps to a port, as an
// interactive redis-cli does.
type redisConn struct {
	c   net.Conn
	rd  *bufio.Reader
	raw *strings.Builder
}

// redisConns are each session's redis cli connections, by port.
var redisConns = struct {
	sync.Mutex
	m map[*Session]map[int]*redisConn
}{m: map[*Session]map[int]*redisConn{}}

// closeRedisConns closes the session's redis cli connections to port (0:
// to every port): cache attach --redis does, so that the next command
// comes on a connection the cache sees.
func closeRedisConns(s *Session, port int) int {
	redisConns.Lock()
	defer redisConns.Unlock()
	n := 0
	for p, rc := range redisConns.m[s] {
		if port == 0 || p == port {
			rc.c.Close()
			delete(redisConns.m[s], p)
			n++
		}
	}
	return n
}

// redisRoundTrip sends req on the session's connection to port (made on
// first use) and reads one reply. A kept connection the server has closed
// since (it was restarted) is made again once, when nothing of the reply
// came.
func redisRoundTrip(s *Session, port int, req string) (*respValue, string, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for attempt := 0; ; attempt++ {
		redisConns.Lock()
		rc := redisConns.m[s][port]
		redisConns.Unlock()
		kept := rc != nil
		if !kept {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return nil, "", fmt.Errorf("nothing answers on %s ('redis start port %d' starts redis-server there): %v", addr, port, errors.Unwrap(err))
			}
			rc = &redisConn{c: c, raw: &strings.Builder{}}
			rc.rd = bufio.NewReader(io.TeeReader(c, rc.raw))
			redisConns.Lock()
			if redisConns.m[s] == nil {
				redisConns.m[s] = map[int]*redisConn{}
			}
			redisConns.m[s][port] = rc
			redisConns.Unlock()
			s.AtExit("redis cli", func() error { closeRedisConns(s, 0); return nil })
		}
		rc.raw.Reset()
		rc.c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := io.WriteString(rc.c, req)
		var reply *respValue
		if err == nil {
			reply, err = readRESP(rc.rd, 0)
		}
		if err == nil {
			// The tee saw what the reader buffered: the reply is the
			// bytes it took, and the rest stays buffered.
			return reply, rc.raw.String()[:reply.n], nil
		}
		closeRedisConns(s, port)
		if kept && attempt == 0 && rc.raw.Len() == 0 {
			continue
		}
		return nil, "", fmt.Errorf("%s: %w (the connection is closed; the next command makes a new one)", addr, err)
	}
}

// respValue is one RESP2 reply: its type byte, its text (a simple string,
// an error, an integer, a bulk string), its elements (an array), nil,
// and n, the bytes it took.
type respValue struct {
	kind  byte
	text  string
	elems []*respValue
	null  bool
	n     int
}

// readRESP reads one RESP2 reply, arrays nested up to 8 deep.
func readRESP(rd *bufio.Reader, depth int) (*respValue, error) {
	if depth > 8 {
		return nil, errors.New("arrays nested more than 8 deep")
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("not a RESP reply: %q", line)
	}
	v := &respValue{kind: line[0], text: line[1 : len(line)-2], n: len(line)}
	switch v.kind {
	case '+', '-', ':':
		return v, nil
	case '$', '*':
		n, err := strconv.Atoi(v.text)
		if err != nil || n < -1 || n > 512<<20 {
			return nil, fmt.Errorf("not a RESP length: %q", line)
		}
		if n == -1 {
			v.null = true
			return v, nil
		}
		if v.kind == '$' {
			b := make([]byte, n+2)
			if _, err := io.ReadFull(rd, b); err != nil {
				return nil, err
			}
			v.text, v.n = string(b[:n]), v.n+n+2
			return v, nil
		}
		for range n {
			e, err := readRESP(rd, depth+1)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, e)
			v.n += e.n
		}
		return v, nil
	}
	return nil, fmt.Errorf("not a RESP reply: %q", line)
}

// lines renders v as redis-cli does on a terminal: an array's elements
// numbered, a nested array's lines under its number.
func (v *respValue) lines() []string {
	switch {
	case v.null:
		return []string{"(nil)"}
	case v.kind == '+':
		return []string{v.text}
	case v.kind == '-':
		return []string{"(error) " + v.text}
	case v.kind == ':':
		return []string{"(integer) " + v.text}
	case v.kind == '$':
		return []string{redisQuote(v.text)}
	}
	if len(v.elems) == 0 {
		return []string{"(empty array)"}
	}
	var out []string
	width := len(strconv.Itoa(len(v.elems)))
	for i, e := range v.elems {
		prefix := fmt.Sprintf("%*d) ", width, i+1)
		for j, l := range e.lines() {
			if j == 0 {
				out = append(out, prefix+l)
			} else {
				out = append(out, strings.Repeat(" ", len(prefix))+l)
			}
		}
	}
	return out
}

// json is v for -j: strings, numbers as text, nil, arrays.
func (v *respValue) json() any {
	switch {
	case v.null:
		return nil
	case v.kind == '*':
		out := make([]any, len(v.elems))
		for i, e := range v.elems {
			out[i] = e.json()
		}
		return out
	case v.kind == '-':
		return map[string]string{"error": v.text}
	case v.kind == ':':
		if n, err := strconv.ParseInt(v.text, 10, 64); err == nil {
			return n
		}
	}
	return v.text
}

// redisQuote quotes s as redis-cli prints a bulk string: in double
// quotes, with \n, \r, \t, \a, \b, \\ and \" escaped and other bytes
// outside printable ASCII as \xHH.
func redisQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		default:
			if c < 0x20 || c > 0x7e {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
