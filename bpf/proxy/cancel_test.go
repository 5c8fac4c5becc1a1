// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A cancel request reaches PostgreSQL some time after the proxy routes
// it. Here its delivery is held up until the client's query has ended and
// another client has asked for the (only) server: the cancel must not
// stop that other client's query. Before the fix the kernel gave the
// server to the second client at once and its query died with 57014.
func TestProxyLateCancelHitsNoOne(t *testing.T) {
	c := cluster(t, "trust")
	p := startKernel(t, c, Options{Pool: 1, Mode: ModeTransaction})
	routed, release := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.dialCancel = func(ctx context.Context) (net.Conn, error) {
		close(routed)
		<-release
		var d net.Dialer
		return d.DialContext(ctx, "tcp", c.Addr())
	}
	p.mu.Unlock()
	a := connect(t, p, "u", "")
	b := connect(t, p, "u", "")
	aDone := make(chan error, 1)
	go func() {
		_, err := a.Exec(context.Background(), "SELECT pg_sleep(0.3)")
		aDone <- err
	}()
	waitSQL(t, c, "select count(*)::text from pg_stat_activity where query = 'SELECT pg_sleep(0.3)' and state = 'active'", "1")
	if err := sendCancelTo(p.Addr(), a.PgConn().PID(), a.PgConn().SecretKey()); err != nil {
		t.Fatal(err)
	}
	<-routed
	if err := <-aDone; err != nil {
		t.Fatalf("the first client's query, whose cancel is still on its way: %v", err)
	}
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Exec(context.Background(), "SELECT pg_sleep(0.2)")
		bDone <- err
	}()
	// The second client has asked: it waits for the held server, or
	// (without the hold) its query runs on it.
	waitStatus(t, p, func(st Status) bool { return st.Waiting == 1 || st.Kernel.Links == 1 })
	close(release)
	var pgErr *pgconn.PgError
	if err := <-bDone; errors.As(err, &pgErr) && pgErr.Code == "57014" {
		t.Fatalf("the second client's query was cancelled by the first client's late cancel request: %v", err)
	} else if err != nil {
		t.Fatalf("the second client's query: %v", err)
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.Cancels != 1 || st.Kernel.Stats[StatHeldCancel].Value != 1 || st.Kernel.Idle != 1 {
		t.Fatalf("status after: %+v", st)
	}
}

// sendCancelTo sends a CancelRequest for (pid, key) to addr and waits
// for the proxy to close the connection.
func sendCancelTo(addr string, pid, key uint32) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	msg := make([]byte, 16)
	be32(msg[0:], 16)
	be32(msg[4:], 80877102)
	be32(msg[8:], pid)
	be32(msg[12:], key)
	_, err = conn.Write(msg)
	return err
}
