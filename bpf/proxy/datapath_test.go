// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// TestLiveTransactionPooling walks through transaction pooling with one
// server and two clients: the first client's query takes the idle
// server, 'Z' 'I' frees it, the second client's query takes it, 'T' keeps
// it, a third query finds no server and goes to user space, which links
// it once the server is released.
func TestLiveTransactionPooling(t *testing.T) {
	r := newRig(t, ModeTransaction, 2, 1)
	c1, c2, s := r.clients[0], r.clients[1], r.servers[0]

	q1 := enc(t, &pgproto3.Query{String: "select 1"})
	r.write(c1.peer, q1)
	r.expect(s.peer, q1, "client 1's query at the server")
	if r.peer(c1) != r.sock[s] || r.peer(s) != r.sock[c1] {
		t.Fatalf("after client 1's query: peers %d, %d; want linked", r.peer(c1), r.peer(s))
	}
	answer := enc(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("?column?"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	r.write(s.peer, answer)
	r.expect(c1.peer, answer, "the answer at client 1")
	if p := r.peer(c1); p != 0 {
		t.Fatalf("after ReadyForQuery 'I': client 1 still linked to %d", p)
	}
	if st := r.state(s); st.Peer != 0 || st.Flags&FlagIdle == 0 {
		t.Fatalf("after ReadyForQuery 'I': server %+v, want idle with no peer", st)
	}
	if st := r.state(c1); st.Outstanding != 0 {
		t.Fatalf("client 1 outstanding %d after its answer", st.Outstanding)
	}
	// The stack was empty: the push says so.
	if e := r.event(EventServerIdle); e.Sock != r.sock[s] || e.Peer != r.sock[c1] {
		t.Fatalf("server-idle event %+v", e)
	}

	// Client 2 takes the freed server and begins a transaction: 'T'
	// keeps the link.
	begin := enc(t, &pgproto3.Query{String: "begin"})
	r.write(c2.peer, begin)
	r.expect(s.peer, begin, "client 2's begin at the freed server")
	inTx := enc(t, &pgproto3.CommandComplete{CommandTag: []byte("BEGIN")}, &pgproto3.ReadyForQuery{TxStatus: 'T'})
	r.write(s.peer, inTx)
	r.expect(c2.peer, inTx, "BEGIN at client 2")
	if r.peer(c2) != r.sock[s] {
		t.Fatal("'T' unlinked client 2")
	}

	// Client 1 again: no idle server. Its query is passed into its own
	// socket, it is marked WAITING, and user space hears of it.
	q2 := enc(t, &pgproto3.Query{String: "select 2"})
	r.write(c1.peer, q2)
	if e := r.event(EventClientWaiting); e.Sock != r.sock[c1] {
		t.Fatalf("client-waiting event for %d, want client 1 (%d)", e.Sock, r.sock[c1])
	}
	r.expect(c1.front, q2, "client 1's query passed to user space")
	if st := r.state(c1); st.Flags&FlagWaiting == 0 || st.Outstanding != 1 {
		t.Fatalf("client 1 after a query with no server: %+v", st)
	}

	// Client 2 commits: 'I' frees the server, the push onto the empty
	// stack tells user space, which links client 1 and writes its query.
	commit := enc(t, &pgproto3.Query{String: "commit"})
	r.write(c2.peer, commit)
	r.expect(s.peer, commit, "commit at the server")
	done := enc(t, &pgproto3.CommandComplete{CommandTag: []byte("COMMIT")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	r.write(s.peer, done)
	r.expect(c2.peer, done, "COMMIT at client 2")
	r.event(EventServerIdle)
	srv, ok, err := r.d.PopIdle()
	if err != nil || !ok || srv != r.sock[s] {
		t.Fatalf("PopIdle: %d %v %v; want the server", srv, ok, err)
	}
	if _, ok, _ := r.d.PopIdle(); ok {
		t.Fatal("PopIdle twice gave a server twice")
	}
	if err := r.d.Link(r.sock[c1], srv); err != nil {
		t.Fatal(err)
	}
	r.write(s.front, q2)
	r.expect(s.peer, q2, "client 1's query, written by user space")
	two := enc(t, &pgproto3.DataRow{Values: [][]byte{[]byte("2")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	r.write(s.peer, two)
	r.expect(c1.peer, two, "the answer redirected to client 1 after Link")
	if st := r.state(c1); st.Peer != 0 || st.Flags != 0 || st.Outstanding != 0 {
		t.Fatalf("client 1 after its answer: %+v", st)
	}

	// Terminate goes to user space.
	bye := enc(t, &pgproto3.Terminate{})
	r.write(c1.peer, bye)
	if e := r.event(EventClientPassed); e.Sock != r.sock[c1] || e.Reason != ReasonTerminate {
		t.Fatalf("event %+v, want client-passed terminate for client 1", e)
	}
	r.expect(c1.front, bye, "Terminate passed to user space")

	// Remove cleans up.
	if err := r.d.Remove(r.sock[c1]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.State(r.sock[c1]); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("client 1 still in conns: %v", err)
	}
	var fd uint64
	if err := r.d.objs.ClientSocks.Lookup(uint64(r.sock[c1]), &fd); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("client 1 still in client_socks: %v", err)
	}
	if err := r.d.Remove(r.sock[c1]); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("removing twice: %v", err)
	}
	snap, err := r.d.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Clients != 1 || snap.Servers != 1 || snap.Links != 0 || snap.Idle != 1 || snap.Waiting != 0 {
		t.Fatalf("snapshot %+v", snap)
	}
	for i, want := range map[int]uint64{StatLink: 2, StatUnlink: 3, StatWait: 1, StatPassTerminate: 1, StatRedirectFail: 0, StatPassMalformed: 0} {
		if got := r.stat(i); got != want {
			t.Errorf("counter %s = %d, want %d", StatNames[i], got, want)
		}
	}
}

// TestLiveSessionPooling: in session mode 'I' keeps the link.
func TestLiveSessionPooling(t *testing.T) {
	r := newRig(t, ModeSession, 2, 1)
	c1, c2, s := r.clients[0], r.clients[1], r.servers[0]
	q := enc(t, &pgproto3.Query{String: "select 1"})
	r.write(c1.peer, q)
	r.expect(s.peer, q, "query at the server")
	z := enc(t, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	r.write(s.peer, z)
	r.expect(c1.peer, z, "ReadyForQuery at the client")
	if r.peer(c1) != r.sock[s] {
		t.Fatal("session mode unlinked at 'I'")
	}
	r.write(c2.peer, q)
	if e := r.event(EventClientWaiting); e.Sock != r.sock[c2] {
		t.Fatalf("event %+v", e)
	}
	r.expect(c2.front, q, "client 2's query passed: the only server is client 1's for the session")
	if got := r.stat(StatUnlink); got != 0 {
		t.Fatalf("unlinks in session mode: %d", got)
	}
}

// TestLivePipelinedBatches: extended-protocol batches must not be
// unlinked early. Two Syncs in one write get two ReadyForQuery answers:
// the first 'I' keeps the link (one Sync outstanding). A batch the client
// has begun but not closed with Sync keeps it too.
func TestLivePipelinedBatches(t *testing.T) {
	r := newRig(t, ModeTransaction, 1, 1)
	c, s := r.clients[0], r.servers[0]
	batch := func(v string) []byte {
		return enc(t, &pgproto3.Parse{Query: "select $1::int"}, &pgproto3.Bind{Parameters: [][]byte{[]byte(v)}}, &pgproto3.Execute{})
	}
	sync := enc(t, &pgproto3.Sync{})
	two := append(append(append(batch("1"), sync...), batch("2")...), sync...)
	r.write(c.peer, two)
	r.expect(s.peer, two, "two pipelined batches at the server")
	if st := r.state(c); st.Outstanding != 2 {
		t.Fatalf("outstanding after two Syncs: %d", st.Outstanding)
	}
	reply := func(v string) []byte {
		return enc(t, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte(v)}},
			&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	r.write(s.peer, reply("1"))
	r.expect(c.peer, reply("1"), "first batch's answer")
	if r.peer(c) != r.sock[s] {
		t.Fatal("unlinked at the first batch's 'I' with the second outstanding")
	}
	// The second batch's answer, its ReadyForQuery split over two writes
	// (header, then status byte).
	rep2 := reply("2")
	r.write(s.peer, rep2[:len(rep2)-1])
	r.expect(c.peer, rep2[:len(rep2)-1], "second answer but the status byte")
	if r.peer(c) != r.sock[s] {
		t.Fatal("unlinked before the status byte came")
	}
	r.write(s.peer, rep2[len(rep2)-1:])
	r.expect(c.peer, rep2[len(rep2)-1:], "the status byte")
	if r.peer(c) != 0 {
		t.Fatal("not unlinked after both batches were answered")
	}

	// A third batch, its Sync sent only after the answer to a first Sync
	// arrived: the client is mid-batch, so that 'I' keeps the link.
	r.write(c.peer, append(batch("3"), sync...))
	r.expect(s.peer, append(batch("3"), sync...), "third batch")
	open := batch("4")
	r.write(c.peer, open)
	r.expect(s.peer, open, "fourth batch, not yet synced")
	r.write(s.peer, reply("3"))
	r.expect(c.peer, reply("3"), "third answer")
	if r.peer(c) != r.sock[s] {
		t.Fatal("unlinked while the client had a batch open")
	}
	if got := r.stat(StatKeepOpen); got < 1 {
		t.Fatalf("keep_open = %d", got)
	}
	r.write(c.peer, sync)
	r.expect(s.peer, sync, "fourth batch's Sync")
	r.write(s.peer, reply("4"))
	r.expect(c.peer, reply("4"), "fourth answer")
	if r.peer(c) != 0 {
		t.Fatal("not unlinked after the fourth batch")
	}
}

// TestLiveSplitMessages: a client message written a few bytes at a time,
// its header cut, reaches the server whole and leaves the walker between
// messages.
func TestLiveSplitMessages(t *testing.T) {
	r := newRig(t, ModeTransaction, 1, 1)
	c, s := r.clients[0], r.servers[0]
	q := enc(t, &pgproto3.Query{String: "select 'split'"})
	for _, cut := range [][2]int{{0, 2}, {2, 3}, {3, 9}, {9, len(q)}} {
		r.write(c.peer, q[cut[0]:cut[1]])
		r.expect(s.peer, q[cut[0]:cut[1]], "a piece of the query")
	}
	st := r.state(c)
	if !walkBoundary(st.Walk) || st.Msgs != 1 || st.Outstanding != 1 {
		t.Fatalf("client state after the pieces: %+v", st)
	}
}

// TestLiveServerWithoutClient: bytes from an idle server (a notice) go to
// user space.
func TestLiveServerWithoutClient(t *testing.T) {
	r := newRig(t, ModeTransaction, 0, 1)
	s := r.servers[0]
	notice := enc(t, &pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "hello"})
	r.write(s.peer, notice)
	if e := r.event(EventServerPassed); e.Sock != r.sock[s] || e.Reason != ReasonNoPeer {
		t.Fatalf("event %+v", e)
	}
	r.expect(s.front, notice, "the notice passed to user space")
}

// TestLiveMalformed: a client sending a malformed length goes to user
// space for good.
func TestLiveMalformed(t *testing.T) {
	r := newRig(t, ModeTransaction, 1, 1)
	c := r.clients[0]
	bad := []byte{'Q', 0, 0, 0, 2, 'x'}
	r.write(c.peer, bad)
	if e := r.event(EventClientPassed); e.Reason != ReasonMalformed {
		t.Fatalf("event %+v", e)
	}
	r.expect(c.front, bad, "malformed bytes passed")
	q := enc(t, &pgproto3.Query{String: "select 1"})
	r.write(c.peer, q)
	r.expect(c.front, q, "later bytes passed too")
	if st := r.state(c); st.Flags&FlagPassing == 0 {
		t.Fatalf("client not passing: %+v", st)
	}
}

// TestLiveEOF: a client that goes away is seen by user space as EOF on
// its socket, as without the data path.
func TestLiveEOF(t *testing.T) {
	r := newRig(t, ModeTransaction, 1, 1)
	c := r.clients[0]
	c.peer.Close()
	c.front.SetReadDeadline(time.Now().Add(ioWait))
	n, err := c.front.Read(make([]byte, 16))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read after the client closed: %d bytes, %v; want EOF", n, err)
	}
}

// TestLiveLinkErrors: Link and Release refuse what makes no sense.
func TestLiveLinkErrors(t *testing.T) {
	r := newRig(t, ModeTransaction, 2, 1)
	c1, c2, s := r.sock[r.clients[0]], r.sock[r.clients[1]], r.sock[r.servers[0]]
	if err := r.d.Link(c1, s); err == nil {
		t.Fatal("Link with a server still on the idle stack succeeded")
	}
	if err := r.d.Release(s); err == nil {
		t.Fatal("Release of an idle server succeeded")
	}
	if _, ok, err := r.d.PopIdle(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := r.d.Link(s, c1); err == nil {
		t.Fatal("Link with the roles swapped succeeded")
	}
	if err := r.d.Link(c1, s); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Link(c2, s); err == nil {
		t.Fatal("Link of a second client to a linked server succeeded")
	}
	if p, ok, err := r.d.Peer(c1); !ok || err != nil || p != s {
		t.Fatal(p, ok, err)
	}
	if err := r.d.Release(s); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.d.Peer(c1); ok {
		t.Fatal("Release left the client linked")
	}
	// A removed server's stack entry is skipped.
	if err := r.d.Remove(s); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.d.PopIdle(); ok || err != nil {
		t.Fatal("PopIdle returned a removed server", err)
	}
}

// TestLiveManyDataRows: an answer of 20000 DataRows (about 300 KB, many
// segments) reaches the client whole, and its final 'I' unlinks.
func TestLiveManyDataRows(t *testing.T) {
	r := newRig(t, ModeTransaction, 1, 1)
	c, s := r.clients[0], r.servers[0]
	q := enc(t, &pgproto3.Query{String: "select generate_series(1, 20000)"})
	r.write(c.peer, q)
	r.expect(s.peer, q, "query")
	var answer []byte
	for i := range 20000 {
		answer = append(answer, enc(t, &pgproto3.DataRow{Values: [][]byte{[]byte(time.Duration(i).String())}})...)
	}
	answer = append(answer, enc(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 20000")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})...)
	go func() {
		s.peer.SetWriteDeadline(time.Now().Add(ioWait))
		s.peer.Write(answer)
	}()
	r.expect(c.peer, answer, "20000 rows")
	if r.peer(c) != 0 {
		t.Fatal("not unlinked after the rows' 'I'")
	}
	if st := r.state(s); st.Msgs != 20002 || !walkBoundary(st.Walk) {
		t.Fatalf("server state %+v", st)
	}
	if got := r.stat(StatPassBound) + r.stat(StatPassMalformed); got != 0 {
		t.Fatalf("%d chunks passed", got)
	}
}

// TestPinDir: a pinned data path is readable from its pins (proxy status
// in another shell), and Close removes the pins.
func TestPinDir(t *testing.T) {
	r := newRig(t, ModeTransaction, 1, 2)
	dir := filepath.Join(bpftest.PinRoot(t), "proxy")
	if err := r.d.PinDir(dir); err != nil {
		t.Fatal(err)
	}
	snap, err := SnapshotPinned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Clients != 1 || snap.Servers != 2 || snap.Idle != 2 || len(snap.Conns) != 3 || len(snap.Stats) != len(StatNames) {
		t.Fatalf("pinned snapshot %+v", snap)
	}
	if err := r.d.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("pins left after Close: %v", left)
	}
	if _, ok := <-r.d.Events(); ok {
		t.Fatal("Events not closed by Close")
	}
}
