// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/proxy/pgcluster"
)

// A data path the kernel refuses to load fails Start with one clear error
// (it used to panic on a nil *Datapath in Close), and what Start had made
// by then (the listener, the pool's server connections) is released.
func TestProxyStartDatapathRejected(t *testing.T) {
	c := cluster(t, "trust")
	bad := func() (*ebpf.CollectionSpec, error) {
		spec, err := Spec()
		if err != nil {
			return nil, err
		}
		// The verdict's first instruction now reads r5, which is not
		// set at a program's entry: the verifier refuses it.
		p := spec.Programs[ClientProgram]
		first := p.Instructions[0]
		p.Instructions = append(asm.Instructions{asm.Mov.Reg(asm.R0, asm.R5).WithMetadata(first.Metadata)},
			append(asm.Instructions{first.WithMetadata(asm.Metadata{})}, p.Instructions[1:]...)...)
		return spec, nil
	}
	pins := filepath.Join(bpftest.PinRoot(t), "proxy")
	testStartLeavesNothing(t, c, pins, bad, "R5 !read_ok")
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Errorf("pin directory %s: %v, want it never made", pins, err)
	}
}

// Pinning fails half-way (one name is taken): Start fails with one error,
// removes the pins it made and leaves the one it did not make.
func TestProxyStartPinFails(t *testing.T) {
	c := cluster(t, "trust")
	dir := bpftest.PinRoot(t)
	other, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	taken := filepath.Join(dir, IdleMap)
	if err := other.Pin(taken); err != nil {
		t.Fatal(err)
	}
	testStartLeavesNothing(t, c, dir, Spec, "pin proxy "+IdleMap)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != IdleMap {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s after the failed start holds %v, want only the pin that was there before (%s)", dir, names, IdleMap)
	}
}

// testStartLeavesNothing starts a proxy with a pool of 3 on the data path
// spec gives, pinned under pinDir, expects Start to fail with an error
// holding want, and checks that the listener, the pool's connections and
// the data path's file descriptors are gone.
func testStartLeavesNothing(t *testing.T, c *pgcluster.Cluster, pinDir string, spec func() (*ebpf.CollectionSpec, error), want string) {
	t.Helper()
	const pool = 3
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	poolConns := "select count(*)::text from pg_stat_activity where usename = '" + poolUser + "'"
	waitSQL(t, c, poolConns, "0")
	fds := openFDs(t)

	opened := false
	open := func(m Mode) (dataPath, error) {
		// By now Start has its listener and its pool: the failure
		// below must release them.
		opened = true
		if out, _ := c.SQL(context.Background(), poolConns); strings.TrimSpace(string(out)) != strconv.Itoa(pool) {
			t.Errorf("pool connections when the data path opens: %q, want %d", out, pool)
		}
		if conn, err := net.Dial("tcp", addr); err != nil {
			t.Errorf("the proxy does not listen on %s when the data path opens: %v", addr, err)
		} else {
			conn.Close()
		}
		return openKernel(spec)(m)
	}
	p, err := start(context.Background(), Options{Listen: addr, Server: c.Addr(), User: poolUser, Database: "postgres", Pool: pool, PinDir: pinDir}, open)
	if err == nil {
		p.Close()
		t.Fatal("started")
	}
	if p != nil {
		t.Errorf("start failed but returned a proxy")
	}
	if !opened {
		t.Fatalf("start failed before it opened the data path: %v", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "proxy: ") || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Errorf("start: %q, want one line starting \"proxy: \" holding %q", msg, want)
	}
	t.Logf("start: %v", err)

	if l, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("the listener on %s was not closed: %v", addr, err)
	} else {
		l.Close()
	}
	waitSQL(t, c, poolConns, "0")
	// The data path's maps and programs are file descriptors, as are the
	// listener and the pool's connections: none may stay open.
	var now int
	for range 200 {
		if now = openFDs(t); now <= fds {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if now > fds {
		t.Errorf("%d file descriptors open after the failed start, %d before", now, fds)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
