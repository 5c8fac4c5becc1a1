// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
	"github.com/bpfsh/bpfsh/commands"
)

// freeLoopbackPort is a TCP port of 127.0.0.1 nobody listens on now.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Refused words, and the one-line errors of a missing server.
func TestRedisCommandErrors(t *testing.T) {
	root, _ := kvRoot(t)
	port := strconv.Itoa(freeLoopbackPort(t))
	for _, c := range []struct {
		line  string
		code  int
		wants []string
	}{
		{"redis start port 0", 2, []string{"1 to 65535"}},
		{"redis start port", 2, []string{"needs a TCP port"}},
		{"redis start port 6390 extra", 2, []string{"takes only port N", `not "extra"`}},
		{"redis stop", 1, []string{"this shell runs no redis-server", "'redis start'"}},
		{"redis stop port " + port, 1, []string{"runs no redis-server on port " + port}},
		{"redis cli", 2, []string{"needs a command to send"}},
		{"redis cli port " + port + " GET k", 1, []string{"nothing answers on 127.0.0.1:" + port, "'redis start port " + port + "'"}},
	} {
		bpfshFails(t, root, c.line, c.code, c.wants...)
	}
	t.Setenv("PATH", t.TempDir())
	bpfshFails(t, root, "redis start port "+port, 1, "redis-server is not installed: apt-get install -y redis-server")
}

// redis start runs redis-server in its cgroup, redis cli talks to it as
// redis-cli does, the cache attached to that cgroup answers GETs and
// traces them, and redis stop takes the server and the cgroup away.
func TestRedisCommand(t *testing.T) {
	root, _ := kvRoot(t)
	bpftest.HostOnly(t, "redis-server")
	if err := kv.RedisMissing(); err != nil {
		t.Skip(err)
	}
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		t.Skip(err)
	}
	p := freeLoopbackPort(t)
	port := strconv.Itoa(p)
	cgroup := filepath.Join(mnt, commands.RedisCgroupName(p))
	t.Cleanup(func() { bpf.RemoveCgroup(cgroup, 5e9) })
	script := strings.Join([]string{
		"redis start port " + port,
		"redis start port " + port,
		"expect error contains 'runs redis-server on 127.0.0.1:" + port + " already'",
		"redis cli SET greeting hello",
		"redis cli SET bin 'a\\r\\nb'",
		"cache attach --redis port " + port + " cgroup " + commands.RedisCgroupName(p) + " trace",
		"redis cli GET greeting",
		"redis cli GET greeting",
		"redis cli GET nosuch",
		"redis cli EXISTS greeting",
		"redis cli MGET greeting nosuch",
		"redis cli NOSUCHCMD",
		"cache stats --redis",
		"redis stop",
		"cache detach --redis",
	}, "\n")
	out := bpfshOK(t, root, script)
	wantLines(t, "redis session", out,
		"redis-server", "on 127.0.0.1:"+port, "cgroup:        "+cgroup,
		"cache attach --redis port "+port+" cgroup "+commands.RedisCgroupName(p),
		"OK\n",
		"on cgroup "+cgroup+" (it sees its processes' connections)",
		"trace: every hit, miss, fill and invalidation prints a line",
		"closed this shell's 'redis cli' connection",
		"\"hello\"\n\"hello\"\n(nil)\n(integer) 1\n1) \"hello\"\n2) (nil)\n(error) ERR unknown command",
		"stopped redis-server on 127.0.0.1:"+port+" and removed its cgroup "+commands.RedisCgroupName(p),
		"detached the Redis cache")
	// hit 1 (the second GET), miss 2 (the first GET, nosuch), fill 1.
	for _, want := range []string{"hit         1", "miss        2", "fill        1"} {
		if !strings.Contains(out, want) {
			t.Errorf("cache stats --redis lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(cgroup); !os.IsNotExist(err) {
		t.Errorf("redis stop left the cgroup %s: %v", cgroup, err)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
		c.Close()
		t.Errorf("something still listens on port %s after redis stop", port)
	}
	// -j: the reply and its bytes.
	jout := strings.Split(strings.TrimSpace(bpfshOK(t, root, "redis start port "+port+"; redis cli SET k 'x y'; redis cli GET k", "-j")), "\n")
	j := decodeJSON[map[string]any](t, jout[len(jout)-1])
	if j["reply"] != "x y" || j["resp"] != "$3\r\nx y\r\n" {
		t.Errorf("redis cli -j: %v", j)
	}
	if _, err := os.Stat(cgroup); !os.IsNotExist(err) {
		t.Errorf("the end of the shell left the cgroup %s: %v", cgroup, err)
	}
}
