// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"testing"
)

// A second client: a TCP connection to memcached that writes.
const writerPort = clientPort + 1

// serverTCP is memcached's TCP reply to the writer's connection.
func serverTCP(t testing.TB, text string) []byte {
	return frame(t, true, serverMAC, clientMAC, serverIP, clientIP, Port, writerPort, []byte(text))
}

// TestAckCrossing reproduces a get and a set crossing inside memcached:
// the set comes in (and invalidates), then a get on another connection
// misses and is recorded, but memcached runs the get first and answers it
// with the old value. Whether that reply leaves before or after the set's
// acknowledgement, no old value is cached once the acknowledgement has
// left.
func TestAckCrossing(t *testing.T) {
	for _, ackFirst := range []bool{false, true} {
		c := load(t)
		c.missThenFill(1, "foo", 0, "old")
		c.wantPass(tcpReq(t, "set foo 0 0 3\r\nnew\r\n"))
		c.wantPass(udpReq(t, 2, "get foo\r\n"))
		if ackFirst {
			c.fillFrom(serverTCP(t, "STORED\r\n"))
			c.fillFrom(serverReply(t, 2, valueReply("foo", 0, "old")))
		} else {
			c.fillFrom(serverReply(t, 2, valueReply("foo", 0, "old")))
			if _, ok := c.cached("foo"); !ok {
				t.Fatal("the crossing get's reply did not fill: the test no longer reproduces the race")
			}
			c.fillFrom(serverTCP(t, "STORED\r\n"))
		}
		if v, ok := c.cached("foo"); ok {
			t.Fatalf("ack first %v: %q cached after the set was acknowledged", ackFirst, v.Text[:v.Tlen])
		}
		c.wantPass(udpReq(t, 3, "get foo\r\n"))
		if n := c.stat(statAck); n != 1 {
			t.Errorf("acks %d, want 1", n)
		}
		// After the acknowledgement, gets fill again, with what the
		// server says now.
		c.fillFrom(serverReply(t, 3, valueReply("foo", 0, "new")))
		if v, ok := c.cached("foo"); !ok || string(v.Text[:v.Tlen]) != valueReply("foo", 0, "new") {
			t.Fatalf("no fill after the acknowledgement")
		}
		// A second reply on the connection has nothing left to do.
		c.fillFrom(serverTCP(t, "END\r\n"))
		if _, ok := c.cached("foo"); !ok || c.stat(statAck) != 1 {
			t.Fatalf("a reply with no write pending invalidated")
		}
	}
}

// TestAckPipelined: several writes in one TCP segment are all invalidated
// at ingress and all again at the first reply; more than MaxPending
// unacknowledged writes make the reply flush.
func TestAckPipelined(t *testing.T) {
	c := load(t)
	for i, k := range []string{"a", "b", "keep"} {
		c.missThenFill(uint16(i), k, 0, "v")
	}
	c.wantPass(tcpReq(t, "set a 0 0 1\r\nx\r\nget keep\r\ndelete b\r\n"))
	if _, ok := c.cached("a"); ok {
		t.Fatal("a still cached")
	}
	if _, ok := c.cached("b"); ok {
		t.Fatal("b, the second command of the segment, still cached")
	}
	// Crossing gets fill the old values of both before the replies.
	c.wantPass(udpReq(t, 10, "get a\r\n"))
	c.wantPass(udpReq(t, 11, "get b\r\n"))
	c.fillFrom(serverReply(t, 10, valueReply("a", 0, "v")))
	c.fillFrom(serverReply(t, 11, valueReply("b", 0, "v")))
	c.fillFrom(serverTCP(t, "STORED\r\nVALUE keep 0 1\r\nv\r\nEND\r\nDELETED\r\n"))
	if _, ok := c.cached("a"); ok {
		t.Error("a cached after the replies")
	}
	if _, ok := c.cached("b"); ok {
		t.Error("b cached after the replies")
	}
	if _, ok := c.cached("keep"); !ok {
		t.Error("keep lost")
	}
	// Five writes before any reply: the reply flushes everything.
	c.wantPass(tcpReq(t, "delete q1\r\ndelete q2\r\ndelete q3\r\ndelete q4\r\ndelete q5\r\n"))
	c.fillFrom(serverTCP(t, "NOT_FOUND\r\n"))
	if n := c.entries(); n != 0 || c.stat(statAckFlush) != 1 {
		t.Fatalf("%d entries, %d flushing acks after too many writes", n, c.stat(statAckFlush))
	}
}

// TestAckUDP: a write over UDP is acknowledged by the reply with its
// request id; flush_all's acknowledgement flushes again.
func TestAckUDP(t *testing.T) {
	c := load(t)
	c.missThenFill(1, "foo", 0, "old")
	c.wantPass(udpReq(t, 5, "delete foo\r\n"))
	c.wantPass(udpReq(t, 6, "get foo\r\n"))
	c.fillFrom(serverReply(t, 6, valueReply("foo", 0, "old")))
	c.fillFrom(serverReply(t, 99, "DELETED\r\n")) // another request's reply
	if _, ok := c.cached("foo"); !ok {
		t.Fatal("a reply to another request acknowledged the delete")
	}
	c.fillFrom(serverReply(t, 5, "DELETED\r\n"))
	if _, ok := c.cached("foo"); ok {
		t.Fatal("old value cached after the delete was acknowledged")
	}

	c.missThenFill(7, "bar", 0, "old")
	c.wantPass(tcpReq(t, "flush_all\r\n"))
	c.wantPass(udpReq(t, 8, "get bar\r\n"))
	// A get recorded after flush_all came in, answered by memcached
	// before the flush ran, fills; flush_all's acknowledgement flushes
	// it.
	c.fillFrom(serverReply(t, 8, valueReply("bar", 0, "old")))
	c.fillFrom(serverTCP(t, "OK\r\n"))
	if n := c.entries(); n != 0 {
		t.Fatalf("%d entries after flush_all was acknowledged", n)
	}
}
