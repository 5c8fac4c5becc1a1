// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/kv"
)

// kvWorkload is a script of n commits for bpfsh: single SETs, and every
// fourth commit a transaction of two SETs and a DEL, with a "kv sync"
// after every tenth commit. Every commit writes, so commit i gets seq i
// on a fresh store. It returns the script and each commit's writes.
func kvWorkload(n int) (string, [][]kvWrite) {
	var b strings.Builder
	var commits [][]kvWrite
	for i := 1; i <= n; i++ {
		v := strconv.Itoa(i)
		if i%4 == 0 {
			j := strconv.Itoa(i % 3)
			del := "k" + strconv.Itoa((i/4)%5)
			fmt.Fprintf(&b, "kv begin\nkv set ta%s %s\nkv set tb%s %s\nkv del %s\nkv commit\n", j, v, j, v, del)
			commits = append(commits, []kvWrite{{"ta" + j, v, false}, {"tb" + j, v, false}, {del, "", true}})
		} else {
			k := "k" + strconv.Itoa(i%5)
			fmt.Fprintf(&b, "kv set %s v%s\n", k, v)
			commits = append(commits, []kvWrite{{k, "v" + v, false}})
		}
		if i%10 == 0 {
			b.WriteString("kv sync\n")
		}
	}
	return b.String(), commits
}

type kvWrite struct {
	key, value string
	del        bool
}

// kvModel is the store after the first k commits.
func kvModel(commits [][]kvWrite, k int) map[string]string {
	m := map[string]string{}
	for _, c := range commits[:k] {
		for _, w := range c {
			if w.del {
				delete(m, w.key)
			} else {
				m[w.key] = w.value
			}
		}
	}
	return m
}

// kvStore reads the store pinned under root/kv and its commit_seq.
func kvStore(t *testing.T, root string) (map[string]string, uint64) {
	t.Helper()
	h, err := kv.Open(filepath.Join(root, "kv"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	entries, err := h.Dump()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		if e.Pending {
			t.Errorf("key %q is still marked pending", e.Key)
		}
		m[string(e.Key)] = string(e.Value)
	}
	meta, err := h.ReadMeta()
	if err != nil {
		t.Fatal(err)
	}
	return m, meta.CommitSeq
}

// The crash test of the issue: a bpfsh process loads kv and runs a write
// load, printing the durable seq at every "kv sync"; it is killed with
// SIGKILL in the middle. Then, in fresh processes:
//
//   - shell killed: the pins (and so the maps and the log ring) survive.
//     The next bpfsh that talks to kv starts a writer that drains what
//     the ring holds; the store holds every commit made (at least all
//     that kv sync confirmed), and unload + load rebuilds exactly that
//     store from the WAL.
//   - machine crash: the pins go too (as at a reboot), so whatever the
//     ring held is lost. load kv replays the WAL: the store is the state
//     after commits 1..k for some k at least the last confirmed seq; no
//     commit is half there (the transactions' keys move together), none
//     is missing in between.
func TestKVCrash(t *testing.T) {
	for _, tc := range []struct {
		name      string
		machine   bool
		killAfter int // syncs seen before the kill
		thenLines int // and then this many more replies
	}{
		{"shell killed", false, 4, 37},
		{"machine crash", true, 4, 5},
		{"machine crash later", true, 12, 61},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := kvRoot(t)
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			script, commits := kvWorkload(2000)
			cmd := helperCmd(exe, "bpfsh", "--pin-root", root)
			cmd.Stdin = strings.NewReader("load kv\n" + script)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			defer func() {
				if !killed {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			var confirmed uint64
			syncs, replies := 0, 0
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				if syncs == tc.killAfter && strings.HasPrefix(line, "status:") {
					// Kill it in the middle of the next writes.
					if replies++; replies == tc.thenLines {
						if err := cmd.Process.Kill(); err != nil {
							t.Fatal(err)
						}
						killed = true
						break
					}
				}
				rest, ok := strings.CutPrefix(line, "durable seq ")
				if !ok || syncs == tc.killAfter {
					continue
				}
				n, err := strconv.ParseUint(rest[:strings.IndexByte(rest, ':')], 10, 64)
				if err != nil {
					t.Fatalf("sync line %q", line)
				}
				confirmed = max(confirmed, n)
				syncs++
			}
			if !killed {
				t.Fatalf("the bpfsh process ended after %d syncs, before it was killed", syncs)
			}
			cmd.Wait()
			if confirmed < uint64(10*(tc.killAfter-1)) {
				t.Fatalf("kv sync confirmed seq %d after %d syncs, want at least %d", confirmed, syncs, 10*(tc.killAfter-1))
			}

			fresh := func(line string) string {
				t.Helper()
				c := helperCmd(exe, "bpfsh", "--pin-root", root, "-c", line)
				out, err := c.CombinedOutput()
				if err != nil {
					t.Fatalf("%q after the kill: %v\n%s", line, err, out)
				}
				return string(out)
			}
			if !tc.machine {
				// The maps live on: the next shell drains the ring.
				fresh("kv sync")
				store, seq := kvStore(t, root)
				t.Logf("killed after %d syncs (confirmed seq %d); the store holds commits 1..%d", syncs, confirmed, seq)
				if seq < confirmed || seq > uint64(len(commits)) {
					t.Fatalf("commit_seq %d; kv sync had confirmed %d", seq, confirmed)
				}
				if want := kvModel(commits, int(seq)); !maps.Equal(store, want) {
					t.Fatalf("live store after the kill is not commits 1..%d:\n got %v\nwant %v", seq, store, want)
				}
				out := fresh("unload kv")
				if !strings.Contains(out, "(kept; load replays it)") {
					t.Errorf("unload:\n%s", out)
				}
				out = fresh("load kv")
				if !strings.Contains(out, fmt.Sprintf("%d records applied (seq 1..%d)", seq, seq)) {
					t.Errorf("load after unload:\n%s", out)
				}
				replayed, rseq := kvStore(t, root)
				if rseq != seq || !maps.Equal(replayed, store) {
					t.Fatalf("replayed store (seq %d) differs from the one unloaded (seq %d)", rseq, seq)
				}
				return
			}
			// A reboot: the maps and the log ring are gone, only the
			// WAL is left (and load's record of its pins, which load
			// replaces).
			if err := os.RemoveAll(filepath.Join(root, "kv")); err != nil {
				t.Fatal(err)
			}
			out := fresh("load kv")
			store, k := kvStore(t, root)
			t.Logf("killed after %d syncs (confirmed seq %d); the WAL gave commits 1..%d; load said:\n%s", syncs, confirmed, k, out)
			if k < confirmed || k > uint64(len(commits)) {
				t.Fatalf("replay reached seq %d; kv sync had confirmed %d", k, confirmed)
			}
			if want := kvModel(commits, int(k)); !maps.Equal(store, want) {
				t.Fatalf("replayed store is not commits 1..%d:\n got %v\nwant %v", k, store, want)
			}
			fresh("unload kv")
		})
	}
}
