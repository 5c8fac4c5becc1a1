// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// The crash test's child process: a WAL writer on the pinned maps that
// answers each line on stdin with a Sync and prints "durable SEQ".
const crashChildEnv = "BPFSH_KVWAL_CRASH_CHILD"

// TestMain runs the crash test's child instead of the tests when the
// test binary was started as that child.
func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		crashChild(spec)
	}
	os.Exit(m.Run())
}

// crashChild is the writer process; it never returns.
func crashChild(spec string) {
	// spec = PINDIR|WAL|HASH
	parts := strings.Split(spec, "|")
	die := func(err error) {
		fmt.Println("error", err)
		os.Exit(3)
	}
	if len(parts) != 3 {
		die(fmt.Errorf("bad %s %q", crashChildEnv, spec))
	}
	var h [8]byte
	if _, err := hex.Decode(h[:], []byte(parts[2])); err != nil {
		die(err)
	}
	ring, err := ebpf.LoadPinnedMap(filepath.Join(parts[0], "log"), nil)
	if err != nil {
		die(err)
	}
	meta, err := ebpf.LoadPinnedMap(filepath.Join(parts[0], "meta"), nil)
	if err != nil {
		die(err)
	}
	w, err := OpenWriter(parts[1], h, ring, meta, WriterOptions{})
	if err != nil {
		die(err)
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		seq, err := w.Sync(ctx)
		cancel()
		if err != nil {
			die(err)
		}
		fmt.Println("durable", seq)
	}
	if err := w.Close(); err != nil {
		die(err)
	}
	os.Exit(0)
}

// kill -9 of the writer in the middle of a write load: replayed into
// fresh maps, the WAL gives the store after commits 1..k for some k at
// least the last seq a Sync confirmed (no commit half there, none
// missing in between); and a writer started again on the live maps picks
// up every commit the dead one left in the ring.
func TestWALCrash(t *testing.T) {
	for _, killAfter := range []int{1, 8, 40, 150} {
		t.Run(fmt.Sprintf("after %d syncs", killAfter), func(t *testing.T) {
			crashOnce(t, killAfter, uint64(killAfter))
		})
	}
}

func crashOnce(t *testing.T, killAfter int, seed uint64) {
	f := newKVFixture(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashChildEnv+"="+f.pinDir+"|"+f.wal+"|"+hex.EncodeToString(f.hash[:]))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Read the child's lines: "ready", then "durable SEQ" per sync.
	var mu sync.Mutex
	var confirmed uint64
	var confirmations int
	var childErr string
	ready := make(chan struct{})
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			switch {
			case line == "ready":
				close(ready)
			case strings.HasPrefix(line, "durable "):
				if n, err := strconv.ParseUint(line[len("durable "):], 10, 64); err == nil {
					confirmed = max(confirmed, n)
					confirmations++
				}
			case strings.HasPrefix(line, "error "):
				childErr = line
			}
			mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-eof:
		t.Fatalf("the writer process ended before it was ready: %s", childErr)
	case <-time.After(30 * time.Second):
		t.Fatal("the writer process did not start")
	}

	rng := rand.New(rand.NewPCG(seed, 99))
	for i := 1; ; i++ {
		f.commitRetry(t, randomRecord(rng))
		if i%10 == 0 {
			fmt.Fprintln(stdin, "sync")
		}
		mu.Lock()
		n, bad := confirmations, childErr
		mu.Unlock()
		if bad != "" {
			t.Fatalf("writer process: %s", bad)
		}
		if n >= killAfter {
			// Ask for one more sync and kill the writer while it
			// drains and fsyncs.
			fmt.Fprintln(stdin, "sync")
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			break
		}
		if i > 100000 {
			t.Fatal("the writer process confirms no syncs")
		}
	}
	// Commits go on after the writer died, into the ring.
	for range 50 {
		if f.tryCommit(t, randomRecord(rng)) != uint32(StatusOK) {
			break
		}
	}
	cmd.Wait()
	<-eof
	total := len(f.commits)

	// Reload: fresh maps from the WAL.
	store, meta := freshMaps(t)
	rep := replay(t, f.wal, f.hash, store, meta)
	k := int(rep.LastSeq)
	t.Logf("%d commits; last confirmed durable seq %d (%d syncs); the WAL gives seq %d; torn tail: %v", total, confirmed, confirmations, k, rep.Torn)
	if uint64(k) < confirmed || k > total {
		t.Fatalf("replay reached seq %d; Sync had confirmed %d of %d commits", k, confirmed, total)
	}
	sameStore(t, fmt.Sprintf("store replayed after kill -9 (commits 1..%d)", k), dumpStore(t, store), f.modelAt(k))
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(1, k)) {
		t.Fatalf("the WAL after the cut is not commits 1..%d", k)
	}

	// The maps lived on: a new writer finds every later commit still in
	// the ring.
	w := openWriter(t, f, WriterOptions{})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.wal); !bytes.Equal(got, f.expectedWAL(1, total)) {
		t.Fatalf("after a new writer the WAL is not commits 1..%d (%+v)", total, w.Stats())
	}
	store, meta = freshMaps(t)
	replay(t, f.wal, f.hash, store, meta)
	sameStore(t, "store replayed after the new writer", dumpStore(t, store), f.modelAt(total))
}
