// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A logged-in client sends a message of no known type ('z'), as the
// malformed workload does. Whoever sees it answers FATAL 08P01 "invalid
// frontend message type 122" and the client is closed; the pool goes on.
// Waiting (the only server is busy): the front sees it and answers as
// PostgreSQL would, no server is lost. With an idle server: the kernel's
// walker sees a type no client may send and passes it up too, so the
// front answers the same and no pooled backend dies of it.
func TestProxyUnknownMessageType(t *testing.T) {
	c := cluster(t, "trust")
	p := startKernel(t, c, Options{Pool: 1, Mode: ModeTransaction})
	want := []byte("invalid frontend message type 122")

	holder := connect(t, p, "u", "")
	tx, err := holder.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	queryString(t, holder, "select 'holding'")
	waiter := connect(t, p, "u", "")
	got := sendAndDrain(t, waiter.PgConn().Conn(), []byte{'z', 0, 0, 0, 4})
	if !bytes.Contains(got, want) {
		t.Fatalf("waiting client: got %q, want a FATAL %q", got, want)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Status(); st.Counters.ServersLost != 0 || st.Clients != 1 {
		t.Fatalf("after the waiting client: %+v", st)
	}

	// With an idle server the kernel passes the message up too (reason
	// bad-type) instead of sending it on: the pooled backend survives.
	idle := connect(t, p, "u", "")
	got = sendAndDrain(t, idle.PgConn().Conn(), []byte{'z', 0, 0, 0, 4})
	if !bytes.Contains(got, want) {
		t.Fatalf("client with an idle server: got %q, want a FATAL %q", got, want)
	}
	waitStatus(t, p, func(st Status) bool { return st.Clients == 1 && st.Servers == 1 && st.Kernel.Idle == 1 })
	if st, _ := p.Status(); st.Counters.ServersLost != 0 {
		t.Fatalf("a bad message type cost a server: %+v", st.Counters)
	}
	if s := queryString(t, holder, "select 'still served'"); s != "still served" {
		t.Fatalf("other client: %q", s)
	}
}

// sendAndDrain writes msg and reads until the proxy closes the
// connection (failing after 5s).
func sendAndDrain(t *testing.T, conn net.Conn, msg []byte) []byte {
	t.Helper()
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil && !isReset(err) {
		t.Fatalf("read until closed: %v (got %q)", err, got)
	}
	return got
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
