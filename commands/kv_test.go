// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
	"github.com/bpfsh/bpfsh/commands"
	"github.com/bpfsh/bpfsh/shell"
)

// kvRoot is a private pin root and state directory for one kv test; kv
// is unloaded at the end (the pin root's cleanup would remove the pins
// too, but unload also stops nothing it should not).
func kvRoot(t *testing.T) (root, state string) {
	t.Helper()
	bpftest.RequireRoot(t)
	root = bpftest.PinRoot(t)
	home := t.TempDir()
	t.Setenv("XDG_STATE_HOME", home)
	return root, filepath.Join(home, "bpfsh")
}

// wantLines fails unless out contains each of wants.
func wantLines(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// Every request command through the shell, one process (bpfsh -c) per
// line as a user would type them one-shot, and a script that keeps the
// transaction from line to line.
func TestKVCommands(t *testing.T) {
	root, _ := kvRoot(t)
	bpfshFails(t, root, "kv get a", 1, "kv is not loaded under "+root, "run 'load kv'")
	bpfshFails(t, root, "kv get a --name kv2", 1, "kv2 is not loaded", "'load kv name kv2'")

	out := bpfshOK(t, root, "load kv")
	wantLines(t, "load kv", out, "xdp_kv", "wal:", "nothing to replay", "running: commits are appended")

	out = bpfshOK(t, root, "kv set greeting hello")
	wantLines(t, "kv set", out, "status:  OK")
	out = bpfshOK(t, root, "kv get greeting")
	wantLines(t, "kv get", out, "status:  OK", `value:   "hello"`)
	out = bpfshOK(t, root, `kv set "two words" "a b"; kv get "two words"`)
	wantLines(t, "quoted", out, `value:   "a b"`)
	out = bpfshOK(t, root, "kv set hex 00ff hex 0102 03; kv get hex 00 ff")
	wantLines(t, "hex", out, "value:   hex 010203")
	// hex reads as everywhere else: one digit a byte, 0x and ':'.
	for _, key := range []string{"hex 0 ff", "hex 0x00:ff", "hex 0x00ff"} {
		out = bpfshOK(t, root, "kv get "+key)
		wantLines(t, "kv get "+key, out, "value:   hex 010203")
	}
	out = bpfshOK(t, root, "kv get nothing")
	wantLines(t, "missing key", out, "status:  NOT_FOUND")
	out = bpfshOK(t, root, "kv del greeting; kv del greeting")
	if !strings.Contains(out, "status:  OK") || !strings.Contains(out, "status:  NOT_FOUND") {
		t.Errorf("del twice: want OK then NOT_FOUND:\n%s", out)
	}

	// A transaction in one script: each op shows the read and write sets.
	out = bpfshOK(t, root, "kv begin\nkv get x\nkv set x 1\nkv set y 2\nkv get y\nkv commit\nkv get x")
	wantLines(t, "transaction", out,
		"txn:     1 (0 writes, 0 reads)",
		"txn:     1 (0 writes, 1 read)",
		"txn:     1 (1 write, 1 read)",
		"txn:     1 (2 writes, 1 read)",
		"txn:     1 committed (2 writes, 1 read)",
		`value:   "1"`)
	out = bpfshOK(t, root, "kv begin; kv set z 9; kv abort; kv get z")
	wantLines(t, "abort", out, "txn:     2 aborted", "status:  NOT_FOUND")

	out = bpfshOK(t, root, "kv scan")
	wantLines(t, "scan", out, "entries:  4", `"x" = "1"`, `"two words" = "a b"`, `hex 00ff = hex 010203`)
	out = bpfshOK(t, root, "kv scan tw")
	wantLines(t, "scan prefix", out, "entries:  1", `"two words" = "a b"`)

	out = bpfshOK(t, root, "kv stats")
	wantLines(t, "stats", out, "commits", "autocommits")
	stats := decodeJSON[map[string]uint64](t, bpfshOK(t, root, "kv stats", "-j"))
	if stats["commits"] != 1 || stats["abort_client"] != 1 || stats["autocommits"] != 4 {
		t.Errorf("kv stats -j: %v", stats)
	}

	out = bpfshOK(t, root, "kv sync")
	wantLines(t, "sync", out, "durable seq 5: every commit up to it is fsynced in ")

	// JSON of a request.
	type bytesJSON struct {
		Text *string `json:"text"`
		Hex  string  `json:"hex"`
	}
	reply := decodeJSON[struct {
		Op, Status string
		Value      *bytesJSON
	}](t, bpfshOK(t, root, "kv get x", "-j"))
	if reply.Op != "GET" || reply.Status != "OK" || reply.Value == nil || reply.Value.Hex != "31" || *reply.Value.Text != "1" {
		t.Errorf("kv get -j: %+v", reply)
	}

	// --detail shows the run: the reply packet and the map entries a SET
	// changed (not the scratch map).
	out = bpfshOK(t, root, "kv set x 2 --detail")
	wantLines(t, "detail", out, "retval    XDP_TX (3)", "* KV", "map       store:", `bytes: "2"`, "map       meta: 0")
	if strings.Contains(out, "scratch") {
		t.Errorf("--detail shows the scratch map:\n%s", out)
	}

	// Failures: one line each.
	bpfshFails(t, root, "kv set big "+strings.Repeat("v", 513), 1, "TOO_BIG", "values at most 512", "nothing changed")
	bpfshFails(t, root, "kv get "+strings.Repeat("k", 65), 1, "TOO_BIG", "keys have 1 to 64 bytes")
	bpfshFails(t, root, `kv get ""`, 1, "BAD_REQUEST", "empty key")
	bpfshFails(t, root, "kv commit", 1, "no transaction is open")
	bpfshFails(t, root, "kv abort", 1, "no transaction is open")
	bpfshFails(t, root, "kv begin; kv begin", 1, "transaction 3 is open in this session")
	bpfshFails(t, root, "kv get a b", 2, "KEY is one word")
	bpfshFails(t, root, "kv set a", 2, "needs a VALUE")
	bpfshFails(t, root, "kv get hex 0g", 2, "not hex bytes")
	bpfshFails(t, root, "kv begin now", 2, "takes no arguments")
	bpfshFails(t, root, "kv wal sideways", 2, "one of status, start [FILE], stop")
	bpfshFails(t, root, "kv get a --name", 2, "--name needs")
	bpfshFails(t, root, "kv get a --name a.b", 2, "no dots")

	// A transaction idle past its timeout is gone: the session says so
	// and forgets it.
	bpfshOK(t, root, "unload kv")
	bpfshOK(t, root, "load kv name short set kv_txn_timeout_ns=1")
	out = bpfshOK(t, root, "kv use short; kv begin")
	wantLines(t, "kv use", out, "kv commands now use short")
	code, out, errs := bpfsh(t, root, "-c", "kv begin --name short; kv set a 1 --name short")
	if code != 1 || !strings.Contains(errs, "NO_TXN") || !strings.Contains(errs, "kv_txn_timeout_ns") {
		t.Errorf("a transaction past its timeout: exit %d\n%s%s", code, out, errs)
	}
	bpfshOK(t, root, "unload short")
}

// The port a store was loaded with is the port its requests go to.
func TestKVPort(t *testing.T) {
	root, _ := kvRoot(t)
	bpfshOK(t, root, "load kv set kv_port=7000")
	defer bpfsh(t, root, "-c", "unload kv")
	out := bpfshOK(t, root, "kv set a 1; kv get a --detail")
	wantLines(t, "port 7000", out, `value:   "1"`, "dport    7000")
}

// Two sessions at once: a transaction that read a key another session
// changed before it committed gets CONFLICT, leaves nothing behind, and
// its session forgets it; the other transaction's write stays.
func TestKVConflict(t *testing.T) {
	root, state := kvRoot(t)
	newShell := func() (*shell.Shell, *bytes.Buffer, *bytes.Buffer) {
		var out, errb bytes.Buffer
		s := &commands.Session{PinRoot: root, StateDir: state}
		t.Cleanup(func() { s.Close() })
		return shell.New(s, &out, &errb), &out, &errb
	}
	a, aOut, _ := newShell()
	b, bOut, _ := newShell()
	run := func(sh *shell.Shell, out *bytes.Buffer, line string) string {
		t.Helper()
		out.Reset()
		if err := sh.ExecLine(line); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return out.String()
	}
	run(a, aOut, "load kv")
	run(a, aOut, "kv set x 1")

	// A reads x and writes y; B changes x; A's commit must fail.
	run(a, aOut, "kv begin")
	run(a, aOut, "kv get x")
	run(a, aOut, "kv set y from-a")
	if out := run(b, bOut, "kv set x 2"); !strings.Contains(out, "status:  OK") {
		t.Fatalf("B's set: %s", out)
	}
	err := a.ExecLine("kv commit")
	if err == nil || !strings.Contains(err.Error(), "CONFLICT") || !strings.Contains(err.Error(), "nothing of it was installed") {
		t.Fatalf("A's commit after B changed what A read: %v", err)
	}
	if commands.IsUsage(err) {
		t.Errorf("CONFLICT is a failure (exit 1), not a usage error")
	}
	if out := run(b, bOut, "kv get y"); !strings.Contains(out, "NOT_FOUND") {
		t.Errorf("the conflicting transaction's write is visible:\n%s", out)
	}
	if out := run(b, bOut, "kv get x"); !strings.Contains(out, `"2"`) {
		t.Errorf("B's write is lost:\n%s", out)
	}
	if err := a.ExecLine("kv commit"); err == nil || !strings.Contains(err.Error(), "no transaction is open") {
		t.Errorf("A's session still holds the aborted transaction: %v", err)
	}

	// Two transactions read the same key; the first to commit wins.
	run(a, aOut, "kv begin")
	run(b, bOut, "kv begin")
	run(a, aOut, "kv get x")
	run(b, bOut, "kv get x")
	run(a, aOut, "kv set x a")
	run(b, bOut, "kv set x b")
	if out := run(b, bOut, "kv commit"); !strings.Contains(out, "committed (1 write, 1 read)") {
		t.Errorf("B's commit:\n%s", out)
	}
	if err := a.ExecLine("kv commit"); err == nil || !strings.Contains(err.Error(), "CONFLICT") {
		t.Errorf("A's commit after B's: %v", err)
	}
	if out := run(a, aOut, "kv get x"); !strings.Contains(out, `"b"`) {
		t.Errorf("x after the race:\n%s", out)
	}

	// B runs no writer of its own (A's drains the ring); its sync waits
	// for A's writer to put the commit in the WAL.
	if out := run(b, bOut, "kv sync"); !strings.Contains(out, "durable seq 3") || !strings.Contains(out, "written by another bpfsh") {
		t.Errorf("B's sync:\n%s", out)
	}
	if out := run(b, bOut, "kv wal"); !strings.Contains(out, "running in another bpfsh") {
		t.Errorf("B's kv wal:\n%s", out)
	}
	bpfshFails(t, root, "kv checkpoint", 1, "another bpfsh writes the WAL", "run kv checkpoint in that shell")

	// B unloads the store A's writer drains, and loads it again: the
	// WAL cannot be replayed while A writes it, so the load is refused
	// and undone; once A's shell ends, it replays everything.
	if out := run(b, bOut, "unload kv"); !strings.Contains(out, "another bpfsh writes the WAL") {
		t.Errorf("B's unload:\n%s", out)
	}
	err = b.ExecLine("load kv")
	if err == nil || !strings.Contains(err.Error(), "in use by another WAL writer") || !strings.Contains(err.Error(), "nothing stays loaded") {
		t.Fatalf("load while another shell writes the WAL: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "kv")); !os.IsNotExist(err) {
		t.Errorf("the refused load left kv pinned (%v)", err)
	}
	a.Session.Close()
	if out := run(b, bOut, "load kv"); !strings.Contains(out, "3 records applied (seq 1..3)") {
		t.Errorf("B's load once A's shell ended:\n%s", out)
	}
	if out := run(b, bOut, "kv get x"); !strings.Contains(out, `"b"`) {
		t.Errorf("x after the reload:\n%s", out)
	}
	run(b, bOut, "unload kv")
}

// load -> set -> unload -> load: the store comes back from the WAL, also
// after a checkpoint; a torn tail is reported and cut, never applied.
func TestKVReplay(t *testing.T) {
	root, state := kvRoot(t)
	bpfshOK(t, root, "load kv")
	bpfshOK(t, root, "kv set a 1; kv set b 2; kv del b; kv begin; kv set c 3; kv set d 4; kv commit")
	out := bpfshOK(t, root, "unload kv")
	wantLines(t, "unload", out, "unloaded kv", "(kept; load replays it)")
	out = bpfshOK(t, root, "load kv")
	wantLines(t, "reload", out, "4 records applied (seq 1..4); the store is at seq 4", "running: commits are appended")
	out = bpfshOK(t, root, "kv get a; kv get b; kv get c; kv get d")
	wantLines(t, "after replay", out, `value:   "1"`, "status:  NOT_FOUND", `value:   "3"`, `value:   "4"`)
	out = bpfshOK(t, root, "map dump kv/store")
	wantLines(t, "map dump", out, `{len: 1, bytes: "a"}`, `{seq: 2, version: 1, len: 1, key: {len: 1, bytes: "a"}, bytes: "1"}`,
		`{seq: 8, version: 4, len: 1, key: {len: 1, bytes: "d"}, bytes: "4"}`)

	// A checkpoint, then more commits: load replays both.
	out = bpfshOK(t, root, "kv checkpoint")
	wantLines(t, "checkpoint", out, "commits up to seq 4: 3 keys", ".ckpt", "(0 records after the snapshot kept)")
	bpfshOK(t, root, "kv set e 5; kv set a 6")
	bpfshOK(t, root, "unload kv")
	out = bpfshOK(t, root, "load kv")
	wantLines(t, "reload after checkpoint", out, "checkpoint of 3 keys at seq 4, 2 records applied (seq 5..6)")
	out = bpfshOK(t, root, "kv get a; kv get e; kv get c")
	wantLines(t, "after checkpoint replay", out, `value:   "6"`, `value:   "5"`, `value:   "3"`)
	bpfshOK(t, root, "unload kv")

	// Half a record at the end, as a crash in the middle of a write
	// leaves it: cut and reported.
	wal := kv.WALPath(state, root, "kv")
	f, err := os.OpenFile(wal, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3})
	f.Close()
	out = bpfshOK(t, root, "load kv")
	wantLines(t, "torn tail", out, "torn tail:", "7 bytes cut, last good seq 6", "cut, not applied", "the store is at seq 6")
	bpfshOK(t, root, "unload kv")

	// A WAL another pin root wrote is refused, and the load undone.
	data, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[8:16], []byte("elsewher"))
	if err := os.WriteFile(wal, data, 0o600); err != nil {
		t.Fatal(err)
	}
	bpfshFails(t, root, "load kv", 1, "belongs to another pin root", "nothing stays loaded")
	if _, err := os.Stat(filepath.Join(root, "kv")); !os.IsNotExist(err) {
		t.Errorf("a refused replay left kv loaded (%v)", err)
	}
}

// The WAL writer: stop, LOG_FULL once the ring fills, start again, and
// a WAL on another file.
func TestKVWALStartStop(t *testing.T) {
	root, _ := kvRoot(t)
	var script strings.Builder
	script.WriteString("load kv\nkv wal stop\n")
	// The ring holds about 450 records (4 MiB of 9312 bytes each).
	for i := range 460 {
		script.WriteString("kv set k" + string(rune('a'+i%26)) + " v\n")
	}
	code, out, errs := bpfsh(t, root, "-c", script.String())
	if code != 1 || !strings.Contains(errs, "LOG_FULL") || !strings.Contains(errs, "kv wal start") {
		t.Fatalf("writes with the writer stopped: exit %d, %s", code, errs)
	}
	wantLines(t, "kv wal stop", out, "stopped the WAL writer of kv", "commits now fill the log ring until it answers LOG_FULL")

	// The next shell starts a writer by itself and drains the ring.
	out = bpfshOK(t, root, "kv set after 1; kv sync; kv wal")
	wantLines(t, "restart", out, "durable seq ", "running in this shell")
	file := filepath.Join(t.TempDir(), "other.wal")
	out = bpfshOK(t, root, "kv wal stop; kv wal start "+file+"; kv set x 1; kv sync; kv wal status")
	wantLines(t, "wal start FILE", out, "wal:", file, "load replays ", "durable seq ", "fsynced in "+file)
	bpfshFails(t, root, "kv wal start; kv wal start", 1, "already runs for kv in this shell")
	bpfshOK(t, root, "unload kv")
}

// A store that was not replayed from its WAL (loaded with another state
// directory, so another WAL) cannot get a writer on this WAL: kv says so
// once, as a note, and sync fails saying why.
func TestKVWriterCannotStart(t *testing.T) {
	root, _ := kvRoot(t)
	bpfshOK(t, root, "load kv; kv set a 1; kv set b 2")
	bpfshOK(t, root, "unload kv")
	home, other := os.Getenv("XDG_STATE_HOME"), t.TempDir()
	t.Setenv("XDG_STATE_HOME", other)
	bpfshOK(t, root, "load kv")
	t.Setenv("XDG_STATE_HOME", home)

	out := bpfshOK(t, root, "kv set c 3; kv get c")
	wantLines(t, "note", out, "note:    no WAL writer: ", "holds commits up to seq 2 but the store is at seq 0", "until it answers LOG_FULL")
	if strings.Count(out, "note:") != 1 {
		t.Errorf("the note is said more than once per session:\n%s", out)
	}
	bpfshFails(t, root, "kv sync", 1, "kv sync: no WAL writer runs for kv", "replay it into the store first")
	out = bpfshOK(t, root, "kv wal")
	wantLines(t, "kv wal", out, "writer:       none, and none can start", "holds commits up to seq 2 but the store is at seq 1")
	t.Setenv("XDG_STATE_HOME", other)
	bpfshOK(t, root, "unload kv")
}
