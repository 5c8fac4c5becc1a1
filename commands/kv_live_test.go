// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
)

// ourNamespaces lists the namespaces kv serve made in this process.
func ourNamespaces(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("bpfsh-kv-%d-", os.Getpid())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out[e.Name()] = true
		}
	}
	return out
}

// inNamespace runs fn on a thread inside /run/netns/name; the thread is
// discarded afterwards.
func inNamespace(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// kv serve, as a user runs it: a UDP client in the namespace it made
// sets and gets a key of the kv loaded under the pin root, the serve's
// WAL writer logs the commit, and when the time is up the namespace and
// the veth pair are gone.
func TestKVServeCommand(t *testing.T) {
	root := bpftest.PinRoot(t)
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	bpfshOK(t, root, "load kv")
	t.Cleanup(func() { bpfsh(t, root, "-c", "unload kv") })
	before := ourNamespaces(t)

	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errb := bpfsh(t, root, "-c", "kv serve port 6390 for 3s")
		done <- result{code, out, errb}
	}()
	var ns string
	for deadline := time.Now().Add(2 * time.Second); ns == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for n := range ourNamespaces(t) {
			if !before[n] {
				ns = n
			}
		}
	}
	if ns == "" {
		r := <-done
		t.Fatalf("kv serve made no namespace: exit %d\n%s%s", r.code, r.out, r.err)
	}
	var replies []*kv.Message
	err := inNamespace(ns, func() error {
		// The host end is the peer's address less one (a /30).
		var peer net.IP
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
			for _, a := range addrs {
				if !a.IP.IsLoopback() {
					peer = a.IP.To4()
				}
			}
		}
		if peer == nil {
			return fmt.Errorf("no address in %s", ns)
		}
		host := net.IPv4(peer[0], peer[1], peer[2], peer[3]-1)
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: host, Port: kv.Port})
		if err != nil {
			return err
		}
		defer c.Close()
		for i, m := range []*kv.Message{
			{Op: kv.OpSet, Key: kv.Key(7), Value: []byte("served")},
			{Op: kv.OpGet, Key: kv.Key(7)},
		} {
			m.ReqID = uint32(i + 1)
			buf := make([]byte, 2048)
			var n int
			// The namespace appears before xdp_kv is attached to the
			// host end (on a slow machine, e.g. a qemu guest, seconds
			// before): until then the stack answers the datagram with
			// port unreachable, and one sent while the driver switches
			// to XDP is lost. So the client sends again, as a UDP
			// client does; a SET may be repeated.
			for deadline := time.Now().Add(10 * time.Second); ; {
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err = c.Write(m.Marshal()); err != nil {
					return err
				}
				n, err = c.Read(buf)
				retry := errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, os.ErrDeadlineExceeded)
				if !retry || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", m.Op, err)
			}
			r, err := kv.Unmarshal(bytes.Clone(buf[:n]))
			if err != nil {
				return err
			}
			replies = append(replies, r)
		}
		return nil
	})
	r := <-done
	if err != nil {
		t.Fatalf("client in %s: %v\n%s%s", ns, err, r.out, r.err)
	}
	if r.code != 0 {
		t.Fatalf("kv serve: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if replies[0].Status() != kv.StatusOK || replies[1].Status() != kv.StatusOK || string(replies[1].Value) != "served" {
		t.Errorf("SET %s, GET %s %q", replies[0].Status(), replies[1].Status(), replies[1].Value)
	}
	for _, want := range []string{"serving", ns, "ip netns exec " + ns, "/dev/udp/", "the WAL writer drains", "stopped", "removed", "get 1", "set 1"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("kv serve output lacks %q:\n%s", want, r.out)
		}
	}
	if ourNamespaces(t)[ns] {
		t.Errorf("namespace %s left after kv serve ended", ns)
	}
	// The write reached the pinned store and the WAL.
	h, err := kv.Open(filepath.Join(root, "kv"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	entries, err := h.Dump()
	if err != nil || len(entries) != 1 || string(entries[0].Value) != "served" {
		t.Errorf("store after serving: %v %v", entries, err)
	}
	info, err := kv.ReadWAL(kv.WALPath(filepath.Join(state, "bpfsh"), root, "kv"), kv.PinRootHash(root), nil)
	if err != nil || info.Records != 1 {
		t.Errorf("WAL after serving: %+v %v", info, err)
	}
}

func TestKVServeErrors(t *testing.T) {
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	bpfshFails(t, root, "kv serve", 1, "kv is not loaded under "+root, "run 'load kv'")
	bpfshFails(t, root, "kv serve for", 2, "for needs a value")
	bpfshFails(t, root, "kv serve port 0", 2, "give a UDP port")
	bpfshFails(t, root, "kv serve for 0", 2, "for 0 would end before it starts")
	bpfshFails(t, root, "kv serve loudly", 2, `unexpected "loudly"`)
	bpfshOK(t, root, "load kv")
	t.Cleanup(func() { bpfsh(t, root, "-c", "unload kv") })
	bpfshFails(t, root, "kv serve port 7000 for 1s", 1, "answers on port 6390", "load kv set kv_port=7000")
}

// kv bench, short: kv live and test-run figures, and redis beside them
// when it is installed (in CI it is: scripts/deps.sh).
func TestKVBenchCommand(t *testing.T) {
	root := bpftest.PinRoot(t)
	line := "kv bench clients 2 keys 100 value 20 mix 3:1 for 300ms"
	withRedis := kv.RedisMissing() == nil || os.Getenv("CI") != ""
	if !withRedis {
		t.Logf("redis part skipped: %v", kv.RedisMissing())
		line += " no-redis"
	}
	res := decodeJSON[struct {
		KV struct {
			Replies uint64 `json:"replies"`
			All     struct {
				Wrong    uint64 `json:"wrong"`
				Timeouts uint64 `json:"timeouts"`
			} `json:"all"`
		} `json:"kv"`
		Done  float64 `json:"kv_done_per_sec"`
		Redis *struct {
			Mix float64 `json:"mix_ops_per_sec"`
		} `json:"redis"`
		Ratio   float64 `json:"ratio"`
		TestRun struct {
			GetNs float64 `json:"get_ns"`
			SetNs float64 `json:"set_ns"`
		} `json:"test_run"`
	}](t, bpfshOK(t, root, line, "-j"))
	if res.KV.Replies == 0 || res.Done <= 0 || res.KV.All.Wrong != 0 || res.KV.All.Timeouts != 0 {
		t.Errorf("kv: %+v, %g done/s", res.KV, res.Done)
	}
	if res.TestRun.GetNs <= 0 || res.TestRun.SetNs <= 0 {
		t.Errorf("test-run: %+v", res.TestRun)
	}
	if withRedis && (res.Redis == nil || res.Redis.Mix <= 0 || res.Ratio <= 0) {
		t.Errorf("redis: %+v, ratio %g", res.Redis, res.Ratio)
	}
	if ns := ourNamespaces(t); len(ns) != 0 {
		t.Errorf("namespaces left: %v", ns)
	}

	out := bpfshOK(t, root, "kv bench clients 1 keys 10 value 8 mix 1:0 for 200ms no-redis")
	for _, want := range []string{"kv (XDP, live)", "GET:SET 1:0", "kv test-run", "ns per run", "skipped: not asked for"} {
		if !strings.Contains(out, want) {
			t.Errorf("kv bench output lacks %q:\n%s", want, out)
		}
	}

	bpfshFails(t, root, "kv bench value 51", 2, "1 to 50 bytes", "64-byte boundary")
	bpfshFails(t, root, "kv bench mix 9", 2, "give GETs:SETs")
	bpfshFails(t, root, "kv bench clients", 2, "clients needs a value")
	bpfshFails(t, root, "kv bench for 1h", 2, "100ms to 10m")
	bpfshFails(t, root, "kv bench fast", 2, `unexpected "fast"`)
}

// waitNamespace waits up to 5s for /run/netns/name to be there (want) or
// gone.
func waitNamespace(name string, want bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/run/netns/" + name); (err == nil) == want {
			return true
		}
	}
	return false
}

// kv serve in a bpfsh process of its own: Ctrl-C (SIGINT) stops it and
// it removes its namespace; after a kill -9, which leaves the namespace
// and the veth behind, the next kv serve removes them.
func TestKVServeInterruptedAndKilled(t *testing.T) {
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	bpfshOK(t, root, "load kv")
	t.Cleanup(func() { bpfsh(t, root, "-c", "unload kv") })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, *bytes.Buffer, string) {
		t.Helper()
		cmd := helperCmd(self, "bpfsh", "--pin-root", root, "-c", "kv serve")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ns := fmt.Sprintf("bpfsh-kv-%d-1", cmd.Process.Pid)
		if !waitNamespace(ns, true) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kv serve made no namespace %s:\n%s", ns, out.String())
		}
		return cmd, &out, ns
	}

	cmd, out, ns := start()
	time.Sleep(100 * time.Millisecond) // past the first rows
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 130) {
		t.Errorf("kv serve after Ctrl-C: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "stopped") || !strings.Contains(out.String(), ns+" and veth") {
		t.Errorf("kv serve after Ctrl-C said:\n%s", out)
	}
	if !waitNamespace(ns, false) {
		t.Errorf("namespace %s left after Ctrl-C", ns)
	}

	cmd, out, ns = start()
	host := fmt.Sprintf("kv%dh1", cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat("/run/netns/" + ns); err != nil {
		t.Fatalf("after kill -9 the namespace %s should still be there (nothing could remove it): %v", ns, err)
	}
	t.Cleanup(func() { unix.Unmount("/run/netns/"+ns, unix.MNT_DETACH); os.Remove("/run/netns/" + ns) })
	serveOut := bpfshOK(t, root, "kv serve for 100ms")
	if !strings.Contains(serveOut, "namespace "+ns+" left by a bpfsh that no longer runs") {
		t.Errorf("the next kv serve did not say it removed %s:\n%s", ns, serveOut)
	}
	if !waitNamespace(ns, false) {
		t.Errorf("namespace %s of the killed bpfsh was not removed", ns)
	}
	gone := false
	for deadline := time.Now().Add(5 * time.Second); !gone && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, err := netlink.LinkByName(host)
		gone = err != nil
	}
	if !gone {
		t.Errorf("veth %s of the killed bpfsh is still there", host)
	}
}
