// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The front reads the wire itself, exactly one message at a time, rather
// than through pgproto3's buffered readers: a socket is handed to the
// kernel right after start-up, and any byte read ahead into a Go buffer
// would be lost to the data path. pgproto3 decodes and encodes the bodies.

// Limits on what a client may send before it is handed to the kernel.
const (
	// MaxStartup is the largest startup packet accepted (PgBouncer allows
	// about as much; PostgreSQL 10000).
	MaxStartup = 10000
	// MaxAuthMessage is the largest password/SASL message accepted.
	MaxAuthMessage = 8192
	// maxServerMessage bounds a message from the server during log-in.
	maxServerMessage = 1 << 20
)

// Request codes of the length-prefixed packets without a type byte.
const (
	codeSSL    = 80877103
	codeGSSENC = 80877104
	codeCancel = 80877102
)

// errTooLarge marks a message over its limit.
var errTooLarge = errors.New("message too large")

// readStartup reads a type-less packet: 4-byte length (itself included),
// then the body, which starts with the protocol version or request code.
func readStartup(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > MaxStartup {
		return nil, fmt.Errorf("startup packet of %d bytes: %w (at most %d, at least 8)", n, errTooLarge, MaxStartup)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// readMessage reads one typed message: type byte, 4-byte length, body.
func readMessage(r io.Reader, limit int) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n-4 > limit {
		return hdr[0], nil, fmt.Errorf("message %q of %d bytes: %w (at most %d)", hdr[0], n, errTooLarge, limit)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return hdr[0], nil, err
	}
	return hdr[0], body, nil
}

// encoder is what pgproto3's messages have in common for writing.
type encoder interface {
	Encode(dst []byte) ([]byte, error)
}

// writeMessages encodes msgs into one buffer and writes it in one call.
func writeMessages(w io.Writer, msgs ...encoder) error {
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	_, err := w.Write(buf)
	return err
}

// fatal builds the ErrorResponse a client gets before it is closed.
func fatal(code, format string, args ...any) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
}

// refuse writes a FATAL ErrorResponse to c and closes it.
func refuse(c net.Conn, e *pgproto3.ErrorResponse) {
	writeMessages(c, e)
	c.Close()
}

// serverError turns a server's ErrorResponse into a Go error.
func serverError(body []byte) error {
	var e pgproto3.ErrorResponse
	if err := e.Decode(body); err != nil {
		return fmt.Errorf("malformed ErrorResponse: %w", err)
	}
	return fmt.Errorf("%s: %s (SQLSTATE %s)", e.Severity, e.Message, e.Code)
}

// messageEnd returns the length of the complete messages at the start of
// b, and the type of the last of them (0 when there is none).
func messageEnd(b []byte) (n int, last byte) {
	for len(b)-n >= 5 {
		l := int(binary.BigEndian.Uint32(b[n+1:]))
		if l < 4 || len(b)-n < 1+l {
			break
		}
		last = b[n]
		n += 1 + l
	}
	return n, last
}

// invalidFrontendType returns the type of the first message in b (whole
// messages) that a client may not send once logged in: PostgreSQL ends
// the connection with FATAL "invalid frontend message type" for it.
func invalidFrontendType(b []byte) (byte, bool) {
	for len(b) >= 5 {
		switch b[0] {
		case 'B', 'C', 'D', 'E', 'F', 'H', 'P', 'Q', 'S', 'X', 'c', 'd', 'f':
		default:
			return b[0], true
		}
		b = b[1+int(binary.BigEndian.Uint32(b[1:])):]
	}
	return 0, false
}

// waitsForAnswer says whether a client whose last message has type t
// waits for the server's answer before it sends more: a request answered
// by ReadyForQuery (Query, Sync, FunctionCall) or a Flush. Only then may
// a waiting client be linked (no byte of its can race the link).
func waitsForAnswer(t byte) bool {
	return t == 'Q' || t == 'S' || t == 'F' || t == 'H'
}
