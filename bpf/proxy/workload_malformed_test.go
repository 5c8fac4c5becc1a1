// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// Malformed and oversize messages, while other clients run: garbage in
// place of a start-up message, a start-up message claiming 2 GB, and,
// after logging in (as many times as a pool has servers, in and out of a
// transaction), a message whose length is below its own header, a message
// of no known type, and a Query claiming 2 GB of which a little arrives
// before the client goes. The endpoint closes each connection that broke
// the protocol (within 5s; the oversize Query's may stay open waiting for
// its bytes), the others keep going, and fresh clients are served after.
func runMalformed(t *testing.T, e endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bg := startBackground(t, e, 4)
	mark := bg.done.Load()
	startup := map[string][]byte{
		"garbage start-up":          []byte("GET / HTTP/1.1\r\nHost: bpfsh\r\n\r\n"),
		"2 GB start-up":             {0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0},
		"start-up below its header": {0, 0, 0, 4, 0, 3, 0, 0},
		"unknown protocol":          {0, 0, 0, 8, 0, 9, 0, 0},
		"truncated start-up":        {0, 0, 0, 40, 0, 3, 0, 0, 'u', 's'},
	}
	for name, msg := range startup {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(e.Host, strconv.Itoa(e.Port)), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		if _, err := conn.Write(msg); err != nil {
			t.Errorf("%s: write: %v", name, err)
		}
		if name == "truncated start-up" {
			conn.Close() // the rest never comes: nothing to wait for but no leak either
			continue
		}
		if err := waitClosed(conn, 5*time.Second); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		conn.Close()
	}
	afterLogin := []struct {
		name   string
		msg    []byte
		closes bool
	}{
		{"length below its header", []byte{'Q', 0, 0, 0, 3}, true},
		{"unknown message type", []byte{'z', 0, 0, 0, 4}, true},
		{"2 GB Query", append([]byte{'Q', 0x7f, 0xff, 0xff, 0xf0}, make([]byte, 100)...), false},
	}
	for _, m := range afterLogin {
		for i := range e.servers() {
			inTx := i%2 == 1
			if err := sendAfterLogin(ctx, e, m.msg, inTx, m.closes); err != nil {
				t.Errorf("%s (in a transaction: %v): %v", m.name, inTx, err)
			}
		}
	}
	bg.stop(t, mark)
	checkServes(t, e, e.servers()+2)
}

// sendAfterLogin logs in, optionally opens a transaction, writes msg on
// the raw connection, and, when the endpoint must close it, waits for
// that; otherwise it holds the connection a while and goes.
func sendAfterLogin(ctx context.Context, e endpoint, msg []byte, inTx, closes bool) error {
	c, err := e.connectIn(ctx, inTx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	conn := c.PgConn().Conn()
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !closes {
		time.Sleep(300 * time.Millisecond)
		conn.Close()
		return nil
	}
	err = waitClosed(conn, 5*time.Second)
	conn.Close()
	return err
}

// waitClosed reads until the peer closes the connection (an
// ErrorResponse may come first): an error if it is still open after
// wait.
func waitClosed(conn net.Conn, wait time.Duration) error {
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	var got int
	for {
		n, err := conn.Read(buf)
		got += n
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("the connection is still open %s later (%d bytes came back)", wait, got)
		}
		return nil // EOF or reset: closed
	}
}
