// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// memcached clients for the live cache: UDP gets with the frame header
// (what the cache answers), TCP sets (what invalidates). They read each
// UDP reply's TTL to tell the cache's replies (HitTTL) from memcached's
// (ServerTTL).

// UDPClient sends memcached gets over UDP, one at a time.
type UDPClient struct {
	conn  *net.UDPConn
	reqID uint16
	buf   []byte
	oob   []byte
	// Late counts replies to earlier requests that came after their
	// request timed out (skipped).
	Late uint64
}

// DialUDP opens a UDP client of memcached at addr with IP_RECVTTL on.
func DialUDP(addr netip.AddrPort) (*UDPClient, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("memcached UDP client for %s: %w", addr, err)
	}
	raw, err := c.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1) })
		err = errors.Join(err, cerr)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("memcached UDP client: IP_RECVTTL: %w", err)
	}
	return &UDPClient{conn: c, buf: make([]byte, 4096), oob: make([]byte, 64), reqID: uint16(os.Getpid())}, nil
}

// Close closes the socket.
func (c *UDPClient) Close() error { return c.conn.Close() }

// errTimeout is a request that got no reply in time.
var errTimeout = errors.New("no reply in time")

// GetReply is the answer to one UDP request.
type GetReply struct {
	// Text is the reply after the frame header (points into the client's
	// buffer until its next request).
	Text []byte
	// TTL is the reply's IPv4 TTL: HitTTL from the cache, ServerTTL from
	// memcached.
	TTL int
}

// Hit says whether the cache answered (by the TTL, see live.go).
func (r GetReply) Hit() bool { return r.TTL == HitTTL }

// Do sends text (e.g. "get foo\r\n") in one datagram under a new request
// id and waits up to timeout for the single-datagram reply with that id.
func (c *UDPClient) Do(text []byte, timeout time.Duration) (GetReply, error) {
	c.reqID++
	id := c.reqID
	req := make([]byte, 0, FrameHeaderLen+len(text))
	req = append(append(req, FrameHeader(id, 0, 1, 0)...), text...)
	if err := c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return GetReply{}, err
	}
	if _, err := c.conn.Write(req); err != nil {
		return GetReply{}, fmt.Errorf("send: %w", err)
	}
	for {
		n, oobn, _, _, err := c.conn.ReadMsgUDP(c.buf, c.oob)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return GetReply{}, errTimeout
			}
			return GetReply{}, fmt.Errorf("receive: %w", err)
		}
		if n < FrameHeaderLen {
			return GetReply{}, fmt.Errorf("a reply of %d bytes, shorter than the frame header", n)
		}
		if got := binary.BigEndian.Uint16(c.buf); got != id {
			c.Late++
			continue
		}
		if seq, total := binary.BigEndian.Uint16(c.buf[2:]), binary.BigEndian.Uint16(c.buf[4:]); seq != 0 || total != 1 {
			return GetReply{}, fmt.Errorf("reply is datagram %d of %d; only single-datagram replies are expected", seq, total)
		}
		return GetReply{Text: c.buf[FrameHeaderLen:n], TTL: cmsgTTL(c.oob[:oobn])}, nil
	}
}

// ParseGet reads memcached's answer to a one-key get: found with the
// value and flags, or not found ("END\r\n"). Anything else is an error.
func ParseGet(text []byte, key []byte) (value []byte, flags uint32, found bool, err error) {
	if bytes.Equal(text, []byte("END\r\n")) {
		return nil, 0, false, nil
	}
	line, rest, ok := bytes.Cut(text, []byte("\r\n"))
	if !ok {
		return nil, 0, false, fmt.Errorf("reply %q has no line end", text)
	}
	f := bytes.Fields(line)
	if len(f) != 4 || string(f[0]) != "VALUE" || !bytes.Equal(f[1], key) {
		return nil, 0, false, fmt.Errorf("reply line %q is not VALUE %s <flags> <bytes>", line, key)
	}
	fl, err1 := strconv.ParseUint(string(f[2]), 10, 32)
	n, err2 := strconv.Atoi(string(f[3]))
	if err1 != nil || err2 != nil || n < 0 || len(rest) != n+len("\r\nEND\r\n") || !bytes.Equal(rest[n:], []byte("\r\nEND\r\n")) {
		return nil, 0, false, fmt.Errorf("reply %q is not one well-formed VALUE", text)
	}
	return rest[:n], uint32(fl), true, nil
}

// TCPClient sends memcached commands over one TCP connection.
type TCPClient struct {
	conn net.Conn
	rd   *bufio.Reader
	req  []byte
}

// DialTCP connects to memcached at addr.
func DialTCP(addr netip.AddrPort) (*TCPClient, error) {
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("memcached TCP client for %s: %w", addr, err)
	}
	return &TCPClient{conn: c, rd: bufio.NewReader(c)}, nil
}

// Close closes the connection.
func (c *TCPClient) Close() error { return c.conn.Close() }

// Set stores value under key (flags 0, no expiry) and waits up to
// timeout for STORED.
func (c *TCPClient) Set(key, value []byte, timeout time.Duration) error {
	c.req = append(fmt.Appendf(c.req[:0], "set %s 0 0 %d\r\n", key, len(value)), value...)
	c.req = append(c.req, "\r\n"...)
	return c.expect(c.req, "STORED\r\n", timeout)
}

// Get asks for key over TCP (never through the cache, which answers UDP
// only) and returns memcached's whole reply text.
func (c *TCPClient) Get(key []byte, timeout time.Duration) ([]byte, error) {
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(fmt.Appendf(nil, "get %s\r\n", key)); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	var out []byte
	for {
		line, err := c.rd.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
		out = append(out, line...)
		if string(line) == "END\r\n" {
			return out, nil
		}
		if f := bytes.Fields(line); len(f) == 4 && string(f[0]) == "VALUE" {
			n, err := strconv.Atoi(string(f[3]))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("get %s: reply line %q", key, line)
			}
			data := make([]byte, n+2)
			if _, err := io.ReadFull(c.rd, data); err != nil {
				return nil, fmt.Errorf("get %s: %w", key, err)
			}
			out = append(out, data...)
			continue
		}
		return nil, fmt.Errorf("get %s: memcached answered %q", key, bytes.TrimSpace(line))
	}
}

// expect writes req and reads one line, which must be want.
func (c *TCPClient) expect(req []byte, want string, timeout time.Duration) error {
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.conn.Write(req); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	line, err := c.rd.ReadString('\n')
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errTimeout
		}
		return fmt.Errorf("receive: %w", err)
	}
	if line != want {
		return fmt.Errorf("memcached answered %q, want %q", bytes.TrimSpace([]byte(line)), bytes.TrimSpace([]byte(want)))
	}
	return nil
}
