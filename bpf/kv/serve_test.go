// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/vethns"
)

// liveKV is kv loaded for a live test, with a WAL writer draining its
// log into the test's temporary directory (without one, SETs answer
// LOG_FULL once the ring holds about 450 commits).
func liveKV(t *testing.T) *Handle {
	t.Helper()
	bpftest.RequireRoot(t)
	h, closeKV, err := LoadPrivate(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeKV() })
	w, err := OpenWriter(filepath.Join(t.TempDir(), "kv.wal"), PinRootHash(t.TempDir()), h.Log, h.Meta, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("WAL writer: %v", err)
		}
	})
	return h
}

// serve serves h for t, removed when t ends whatever happens in between.
func serve(t *testing.T, h *Handle) *Server {
	t.Helper()
	s, err := Serve(ServeOptions{Program: h.Prog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		assertGone(t, s)
	})
	return s
}

// assertGone checks that nothing of s is left: no namespace (in /run/netns
// and in `ip netns list`), no veth.
func assertGone(t *testing.T, s *Server) {
	t.Helper()
	if vethns.Exists(s.Namespace) {
		t.Errorf("namespace %s still in %s", s.Namespace, vethns.Dir)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Errorf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), s.Namespace) {
		t.Errorf("ip netns list still shows %s:\n%s", s.Namespace, out)
	}
	if _, err := netlink.LinkByName(s.HostDev); err == nil {
		t.Errorf("veth %s still exists", s.HostDev)
	}
}

func TestServeMakesAndRemovesEverything(t *testing.T) {
	h := liveKV(t)
	s, err := Serve(ServeOptions{Program: h.Prog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // if a check below fails
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), s.Namespace) {
		t.Errorf("ip netns list does not show %s: %v\n%s", s.Namespace, err, out)
	}
	host, err := netlink.LinkByName(s.HostDev)
	if err != nil {
		t.Fatalf("veth %s: %v", s.HostDev, err)
	}
	info, err := h.Prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if x := host.Attrs().Xdp; x == nil || !x.Attached || x.ProgId != uint32(id) || x.AttachMode != nl.XDP_ATTACHED_DRV {
		t.Errorf("%s XDP state %+v, want xdp_kv (id %d) attached in driver mode", s.HostDev, x, id)
	}
	if !s.HostAddr.IsValid() || !strings.HasPrefix(s.HostAddr.String(), "10.199.") {
		t.Errorf("host address %v, want one in 10.199.0.0/16", s.HostAddr)
	}
	// The peer is in the namespace, addressed, with the XDP_PASS program.
	err = s.InNamespace(func() error {
		peer, err := netlink.LinkByName(s.PeerDev)
		if err != nil {
			return err
		}
		if x := peer.Attrs().Xdp; x == nil || !x.Attached {
			return fmt.Errorf("peer %s has no XDP program (%+v): replies sent with XDP_TX would be dropped", s.PeerDev, x)
		}
		addrs, err := netlink.AddrList(peer, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		if len(addrs) != 1 || addrs[0].IP.String() != s.PeerAddr.String() {
			return fmt.Errorf("peer %s addresses %v, want %s", s.PeerDev, addrs, s.PeerAddr)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if _, err := netlink.LinkByName(s.PeerDev); err == nil {
		t.Errorf("peer %s is in bpfsh's namespace, not in %s", s.PeerDev, s.Namespace)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.DialUDP(); err == nil {
		t.Error("DialUDP after Close worked")
	}
}

// A failure at the last step (attaching the program) leaves nothing of
// what was made before it: namespace, veth, the peer's program.
func TestServeFailingHalfwayLeavesNothing(t *testing.T) {
	bpftest.RequireRoot(t)
	// The kernel refuses to attach a devmap XDP program to a device,
	// which Serve only finds out after everything else is in place.
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	ps := spec.Programs[ProgramName].Copy()
	ps.AttachType = ebpf.AttachXDPDevMap
	coll, err := ebpf.NewCollection(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{ProgramName: ps}, Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types})
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	ns := vethns.NextNamespace(netnsWhat)
	before := links(t)
	s, err := Serve(ServeOptions{Program: coll.Programs[ProgramName]})
	if err == nil {
		s.Close()
		t.Fatal("Serve attached a devmap program to a device")
	}
	if !strings.Contains(err.Error(), "attach xdp_kv") {
		t.Errorf("error %q, want it to be the attach step's", err)
	}
	if vethns.Exists(ns) {
		t.Errorf("namespace %s left behind", ns)
		vethns.DeleteNamed(ns)
	}
	if after := links(t); after != before {
		t.Errorf("devices before Serve: %s\nafter it failed: %s", before, after)
	}
}

// A Serve that fails because its namespace name is taken removes
// nothing that it did not make: the namespace that was there stays.
func TestServeLeavesOthersAlone(t *testing.T) {
	h := liveKV(t)
	ns := vethns.NextNamespace(netnsWhat)
	fd, err := vethns.NewNamed(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vethns.DeleteNamed(ns)
		syscall.Close(fd)
	})
	before := links(t)
	if s, err := Serve(ServeOptions{Program: h.Prog}); err == nil {
		s.Close()
		t.Fatalf("Serve used namespace %s, which existed", ns)
	} else if !strings.Contains(err.Error(), ns) {
		t.Errorf("error %q does not name %s", err, ns)
	}
	if !vethns.Exists(ns) {
		t.Errorf("the failed Serve removed namespace %s, which it had not made", ns)
	}
	if after := links(t); after != before {
		t.Errorf("devices before Serve: %s\nafter it failed: %s", before, after)
	}
}

// links lists the devices of bpfsh's namespace whose names Serve uses.
func links(t *testing.T) string {
	t.Helper()
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	prefix := fmt.Sprintf("kv%d", os.Getpid())
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	return fmt.Sprint(names)
}

// A real UDP client in the namespace gets xdp_kv's replies: XDP_TX works
// on the veth, checksums are right (the socket drops a datagram whose
// checksum is wrong), and the store changed. (Keys of 16 bytes: a GET
// reply may grow its frame only to the next 64-byte boundary on veth,
// see MaxLiveValue.)
func TestServeAnswersRealClient(t *testing.T) {
	h := liveKV(t)
	s := serve(t, h)
	c, err := s.DialUDP()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	ask := func(m *Message) *Message {
		t.Helper()
		m.ReqID++
		rep, err := exchange(c, m.Marshal(), m.ReqID, 2*time.Second, buf, nil)
		if err != nil {
			t.Fatalf("%s %q: %v", m.Op, m.Key, err)
		}
		return &Message{Op: rep.Op, Flags: rep.Flags, ReqID: rep.ReqID, TxID: rep.TxID, Key: bytes.Clone(rep.Key), Value: bytes.Clone(rep.Value)}
	}
	if r := ask(&Message{Op: OpSet, ReqID: 10, Key: []byte("key:live:0000001"), Value: []byte("live")}); r.Status() != StatusOK || r.Op != OpSet || string(r.Key) != "key:live:0000001" {
		t.Fatalf("SET: %s %s %q", r.Op, r.Status(), r.Key)
	}
	if r := ask(&Message{Op: OpGet, ReqID: 20, Key: []byte("key:live:0000001")}); r.Status() != StatusOK || string(r.Value) != "live" {
		t.Fatalf("GET: %s %q, want OK \"live\"", r.Status(), r.Value)
	}
	if r := ask(&Message{Op: OpGet, ReqID: 30, Key: []byte("key:nothing:0001")}); r.Status() != StatusNotFound {
		t.Fatalf("GET nothing: %s, want NOT_FOUND", r.Status())
	}
	tx := ask(&Message{Op: OpBegin, ReqID: 40})
	if tx.Status() != StatusOK || tx.TxID == 0 {
		t.Fatalf("BEGIN: %s txid %d", tx.Status(), tx.TxID)
	}
	ask(&Message{Op: OpSet, ReqID: 50, TxID: tx.TxID, Key: []byte("key:live:0000002"), Value: []byte("2")})
	if r := ask(&Message{Op: OpCommit, ReqID: 60, TxID: tx.TxID}); r.Status() != StatusOK {
		t.Fatalf("COMMIT: %s", r.Status())
	}
	got := map[string]string{}
	entries, err := h.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		got[string(e.Key)] = string(e.Value)
	}
	if got["key:live:0000001"] != "live" || got["key:live:0000002"] != "2" || len(got) != 2 {
		t.Errorf("store after the live requests: %v", got)
	}
}

// Other traffic crosses the veth while xdp_kv is attached: ping (ARP
// too, or nothing would arrive), UDP to another port, and UDP to kv's
// port that is not a kv request, which the host's socket receives.
func TestServePassesOtherTraffic(t *testing.T) {
	h := liveKV(t)
	s := serve(t, h)
	passed := func() uint64 {
		st, err := h.ReadStats()
		if err != nil {
			t.Fatal(err)
		}
		return st[StatPass].Value
	}
	pass0 := passed()
	if err := s.InNamespace(func() error { return ping(s.PeerAddr.String(), s.HostAddr.String()) }); err != nil {
		t.Errorf("ping %s from %s: %v", s.HostAddr, s.Namespace, err)
	}
	for _, port := range []int{int(s.Port) + 1, int(s.Port)} {
		ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(s.HostAddr.AsSlice()), Port: port})
		if err != nil {
			t.Fatal(err)
		}
		var c *net.UDPConn
		err = s.InNamespace(func() (err error) {
			c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IP(s.HostAddr.AsSlice()), Port: port})
			return err
		})
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		msg := []byte("not a kv request")
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		ln.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 100)
		n, from, err := ln.ReadFromUDP(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) || from.IP.String() != s.PeerAddr.String() {
			t.Errorf("UDP to port %d: read %q from %v, %v; want %q from %s", port, buf[:n], from, err, msg, s.PeerAddr)
		}
		c.Close()
		ln.Close()
	}
	if p := passed(); p <= pass0 {
		t.Errorf("xdp_kv's pass counter did not move (%d): did the traffic go through it?", p)
	}
}

// ping sends one ICMP echo from src to dst on a raw socket and waits for
// the reply.
func ping(src, dst string) error {
	c, err := net.ListenPacket("ip4:icmp", src)
	if err != nil {
		return err
	}
	defer c.Close()
	id := uint16(os.Getpid())
	echo := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'b', 'p', 'f', 's', 'h'}
	binary.BigEndian.PutUint16(echo[2:], checksum(echo, 0))
	dstAddr := &net.IPAddr{IP: net.ParseIP(dst)}
	deadline := time.Now().Add(3 * time.Second)
	c.SetReadDeadline(deadline)
	if _, err := c.WriteTo(echo, dstAddr); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no echo reply: %w", err)
		}
		// The raw socket also sees our own request on some paths.
		if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && from.String() == dst {
			return nil
		}
	}
}

// The load generator against the served kv: replies come, none wrong,
// none lost, and the per-op counts add up.
func TestLoadAgainstServedKV(t *testing.T) {
	h := liveKV(t)
	s := serve(t, h)
	res, err := Load(context.Background(), LoadOptions{
		Dial: s.DialUDP, Clients: 4, Keys: 50, ValueSize: 40, GetWeight: 3, SetWeight: 1,
		Duration: time.Second, Preload: true, Retry: true, Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f ops/s, GET %d (p50 %s p99 %s), SET %d (p50 %s p99 %s), statuses GET %v SET %v, %d SET retries, late %d",
		res.OpsPerSec, res.Get.Replies, res.Get.P50, res.Get.P99, res.Set.Replies, res.Set.P50, res.Set.P99, res.Get.Statuses, res.Set.Statuses, res.Set.Retries, res.Late)
	if res.Replies == 0 || res.Get.Replies == 0 || res.Set.Replies == 0 {
		t.Fatalf("no replies: %+v", res.All)
	}
	if res.All.Wrong != 0 || res.All.Timeouts != 0 || res.All.Errors != 0 {
		t.Errorf("%d wrong replies, %d timeouts, %d errors", res.All.Wrong, res.All.Timeouts, res.All.Errors)
	}
	for _, w := range res.All.WrongReplies {
		t.Errorf("wrong reply: %s", w)
	}
	// Preloaded keys are all there, so every GET finds its key; every
	// SET commits in the end (the WAL writer drains the log, a LOG_FULL
	// is retried).
	if res.Get.OK() != res.Get.Replies {
		t.Errorf("GET statuses %v: every key was preloaded", res.Get.Statuses)
	}
	if res.Set.OK() != res.Set.Replies {
		t.Errorf("SET statuses %v: LOG_FULL and BUSY are retried", res.Set.Statuses)
	}
	if res.Preloaded != 50 || res.All.Latency.Count() != res.Replies || res.All.P50 <= 0 || res.All.P99 < res.All.P50 {
		t.Errorf("preloaded %d, %d latencies for %d replies, p50 %s p99 %s", res.Preloaded, res.All.Latency.Count(), res.Replies, res.All.P50, res.All.P99)
	}
	st, err := h.ReadStats()
	if err != nil {
		t.Fatal(err)
	}
	if got := st[StatOpBase+int(OpGet)-1].Value; got != res.Get.Replies {
		t.Errorf("xdp_kv counted %d GETs, the clients got %d replies", got, res.Get.Replies)
	}
	// An op budget ends the run before its duration.
	res, err = Load(context.Background(), LoadOptions{Dial: s.DialUDP, Clients: 2, Keys: 10, Ops: 300, Duration: time.Minute, Zipf: 1.2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Get.Sent+res.Set.Sent != 300 || res.Replies != 300 {
		t.Errorf("Ops 300: sent %d+%d, %d replies", res.Get.Sent, res.Set.Sent, res.Replies)
	}
}

func TestLoadOptionsRefused(t *testing.T) {
	dial := func() (*net.UDPConn, error) { return nil, errors.New("not reached") }
	for _, o := range []LoadOptions{
		{Dial: dial, Clients: -1},
		{Dial: dial, Keys: 70000},
		{Dial: dial, ValueSize: 513},
		{Dial: dial, Zipf: 0.5},
		{Dial: dial, Duration: 2 * time.Hour},
		{},
	} {
		if _, err := Load(context.Background(), o); err == nil || strings.Contains(err.Error(), "not reached") {
			t.Errorf("%+v: %v, want the option refused", o, err)
		}
	}
}

// redisOrSkip skips t when redis is not installed, except in CI, whose
// scripts/deps.sh installs it: there a missing redis fails the test.
func redisOrSkip(t *testing.T) {
	t.Helper()
	if err := RedisMissing(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (scripts/deps.sh installs it in CI)", err)
		}
		t.Skipf("skipped: %v", err)
	}
}

// redis-server starts on loopback, takes the preload, redis-benchmark's
// CSV is read, and Stop leaves no process and no directory.
func TestRedisStartBenchStop(t *testing.T) {
	redisOrSkip(t)
	r, err := StartRedis(context.Background(), RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			r.Stop()
		}
	}()
	if r.Version == "" || r.Port == 0 {
		t.Errorf("redis version %q port %d", r.Version, r.Port)
	}
	if err := r.Preload(100, 20); err != nil {
		t.Fatal(err)
	}
	for _, test := range []string{"get", "set"} {
		res, err := r.Benchmark(context.Background(), RedisBenchOptions{Test: test, Requests: 2000, Clients: 2, Keys: 100, ValueSize: 20})
		if err != nil {
			t.Fatal(err)
		}
		if res.OpsPerSec <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 || res.Requests != 2000 {
			t.Errorf("%s: %+v", test, res)
		}
	}
	pid := r.cmd.Process.Pid
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if vethns.ProcessAlive(pid) {
		t.Errorf("redis-server %d still runs after Stop", pid)
	}
	if _, err := os.Stat(r.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("redis directory %s left behind: %v", r.Dir, err)
	}
	if c, err := net.Dial("tcp", r.addr()); err == nil {
		c.Close()
		t.Errorf("port %d still answers after Stop", r.Port)
	}
}

func TestParseRedisCSV(t *testing.T) {
	out := []byte(`"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"GET","212765.97","0.012","0.000","0.015","0.015","0.023","0.167"
`)
	res, err := parseRedisCSV(out, "get")
	if err != nil {
		t.Fatal(err)
	}
	if res.OpsPerSec != 212765.97 || res.P50 != 15*time.Microsecond || res.P99 != 23*time.Microsecond || res.Max != 167*time.Microsecond {
		t.Errorf("%+v", res)
	}
	if _, err := parseRedisCSV(out, "set"); err == nil || !strings.Contains(err.Error(), "no SET row") {
		t.Errorf("no SET row: %v", err)
	}
	if _, err := parseRedisCSV([]byte("ERROR: connection refused\n"), "get"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("not CSV: %v", err)
	}
}

// The whole bench, short: kv live, test-run figures, and redis when
// installed; nothing is left behind.
func TestBenchShort(t *testing.T) {
	bpftest.RequireRoot(t)
	o := BenchOptions{Clients: 2, Keys: 200, ValueSize: MaxLiveValue, Duration: 300 * time.Millisecond, TestRuns: 300}
	if err := RedisMissing(); err != nil && os.Getenv("CI") == "" {
		t.Logf("redis part skipped: %v", err)
		o.NoRedis = true
	}
	before := links(t)
	res, err := Bench(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kv %.0f done/s (GET p50 %s p99 %s, SET p50 %s p99 %s) counters %v; test-run GET %.0f ns SET %.0f ns; redis %+v; ratio %.2f",
		res.KVDonePerSec, res.KV.Get.P50, res.KV.Get.P99, res.KV.Set.P50, res.KV.Set.P99, res.KVCounters, res.TestRun.GetNs, res.TestRun.SetNs, res.Redis, res.Ratio)
	if res.KV.Replies == 0 || res.KV.All.Wrong != 0 || res.KV.All.Timeouts != 0 || res.KVDonePerSec <= 0 {
		t.Errorf("kv: %d replies, %d wrong, %d timeouts", res.KV.Replies, res.KV.All.Wrong, res.KV.All.Timeouts)
	}
	if res.KVCounters["drop"] != 0 {
		t.Errorf("xdp_kv dropped %d replies with %d-byte values", res.KVCounters["drop"], MaxLiveValue)
	}
	if res.TestRun.GetNs <= 0 || res.TestRun.SetNs <= 0 || res.TestRun.GetRuns != 300 || res.TestRun.SetLogFull != 0 {
		t.Errorf("test-run: %+v", res.TestRun)
	}
	if res.WAL.Records == 0 {
		t.Errorf("the WAL writer wrote nothing: %+v", res.WAL)
	}
	if _, err := os.Stat(filepath.Dir(res.WALPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bench WAL directory left behind: %v", err)
	}
	if vethns.Exists(res.Namespace) || links(t) != before {
		t.Errorf("namespace %s or veth left behind", res.Namespace)
	}
	if !o.NoRedis {
		if res.Redis == nil || res.Redis.Get == nil || res.Redis.Set == nil || res.Redis.MixOpsPerSec <= 0 || res.Ratio <= 0 {
			t.Errorf("redis: %+v, ratio %g", res.Redis, res.Ratio)
		}
	}
	if _, err := Bench(context.Background(), BenchOptions{ValueSize: MaxLiveValue + 1}); err == nil || !strings.Contains(err.Error(), "64-byte boundary") {
		t.Errorf("value over the live limit: %v", err)
	}
}

// TestRedisStartInCgroup: with RedisOptions.Cgroup, redis-server runs in
// that cgroup from its start, on the port asked for; Stop ends it and
// leaves the cgroup empty.
func TestRedisStartInCgroup(t *testing.T) {
	redisOrSkip(t)
	cg := bpftest.Cgroup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r, err := StartRedis(context.Background(), RedisOptions{Port: port, Cgroup: cg})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if r.Port != port || r.Cgroup != cg {
		t.Errorf("port %d cgroup %q, want %d %q", r.Port, r.Cgroup, port, cg)
	}
	if got, err := bpf.CgroupOf(r.Pid()); err != nil || got != cg {
		t.Errorf("redis-server %d runs in cgroup %q (%v), want %q", r.Pid(), got, err, cg)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if pids, err := bpf.CgroupProcs(cg); err != nil || len(pids) != 0 {
		t.Errorf("after Stop the cgroup holds %v (%v)", pids, err)
	}
}
