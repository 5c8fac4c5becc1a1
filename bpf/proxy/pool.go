// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// server is one pooled, authenticated connection to PostgreSQL.
type server struct {
	conn   *net.TCPConn
	sock   Sock
	pid    uint32 // the backend's BackendKeyData, for cancel requests
	key    uint32
	params map[string]string

	// resetting is set while user space runs the reset queries on it
	// (outside the data path); closed once it is closed for good.
	resetting bool
	discarded bool // the reset's DISCARD ALL completed; its ReadyForQuery ends the reset
	closed    bool
	buf       []byte
	// cancels counts cancel requests on their way to this server's
	// backend; while there are any it is held out of the idle stack.
	cancels int
}

// dialTimeout bounds connecting and logging in to the server.
const dialTimeout = 10 * time.Second

// openServer connects to the server and logs in as the pool's user,
// answering trust, cleartext, md5 or SCRAM with the user list's password.
// It returns with the server idle (after its ReadyForQuery).
func (p *Proxy) openServer(ctx context.Context) (*server, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.opts.Server)
	if err != nil {
		return nil, serverDialError(p.opts.Server, err)
	}
	conn := c.(*net.TCPConn)
	conn.SetNoDelay(true)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	s := &server{conn: conn, params: map[string]string{}}
	if err := p.login(s); err != nil {
		conn.Close()
		return nil, fmt.Errorf("proxy: log in to server %s as %q, database %q: %w", p.opts.Server, p.opts.User, p.opts.Database, err)
	}
	conn.SetDeadline(time.Time{})
	return s, nil
}

// serverDialError says what failed and what to check.
func serverDialError(addr string, err error) error {
	what := "cannot connect"
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		what = "connection refused"
	case errors.Is(err, context.DeadlineExceeded):
		what = "no answer within " + dialTimeout.String()
	}
	return fmt.Errorf("proxy: server %s: %s (%v): is PostgreSQL running and listening there (listen_addresses, port in postgresql.conf)?", addr, what, err)
}

func (p *Proxy) login(s *server) error {
	startup := &pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": p.opts.User, "database": p.opts.Database},
	}
	if err := writeMessages(s.conn, startup); err != nil {
		return err
	}
	var sc *scramClient
	for {
		typ, body, err := readMessage(s.conn, maxServerMessage)
		if err != nil {
			return err
		}
		switch typ {
		case 'R':
			if len(body) < 4 {
				return errors.New("malformed authentication request")
			}
			if err := p.answerAuth(s, binary.BigEndian.Uint32(body), body, &sc); err != nil {
				return err
			}
		case 'S':
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body); err != nil {
				return err
			}
			s.params[ps.Name] = ps.Value
		case 'K':
			var k pgproto3.BackendKeyData
			if err := k.Decode(body); err != nil {
				return err
			}
			s.pid, s.key = k.ProcessID, k.SecretKey
		case 'E':
			return serverError(body)
		case 'Z':
			return nil
		case 'N':
		default:
			return fmt.Errorf("unexpected message %q during log-in", typ)
		}
	}
}

// password is the pool user's secret from the user list.
func (p *Proxy) password(method string) (string, error) {
	secret, ok := p.users[p.opts.User]
	if !ok || secret == "" {
		return "", fmt.Errorf("the server asks for a %s password: put user %q with its password in the user list (--users)", method, p.opts.User)
	}
	if isSCRAMSecret(secret) || (isMD5Secret(secret) && method != "md5") {
		return "", fmt.Errorf("the server asks for a %s password and the user list has only a hash for %q: give its plaintext password", method, p.opts.User)
	}
	return secret, nil
}

func (p *Proxy) answerAuth(s *server, kind uint32, body []byte, sc **scramClient) error {
	switch kind {
	case pgproto3.AuthTypeOk:
		return nil
	case pgproto3.AuthTypeCleartextPassword:
		pw, err := p.password("cleartext")
		if err != nil {
			return err
		}
		return writeMessages(s.conn, &pgproto3.PasswordMessage{Password: pw})
	case pgproto3.AuthTypeMD5Password:
		pw, err := p.password("md5")
		if err != nil {
			return err
		}
		var m pgproto3.AuthenticationMD5Password
		if err := m.Decode(body); err != nil {
			return err
		}
		return writeMessages(s.conn, &pgproto3.PasswordMessage{Password: md5Response(pw, p.opts.User, m.Salt)})
	case pgproto3.AuthTypeSASL:
		pw, err := p.password("SCRAM")
		if err != nil {
			return err
		}
		*sc = &scramClient{password: pw}
		return writeMessages(s.conn, &pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: (*sc).first()})
	case pgproto3.AuthTypeSASLContinue:
		var m pgproto3.AuthenticationSASLContinue
		if err := m.Decode(body); err != nil || *sc == nil {
			return errors.New("unexpected SASL continue")
		}
		final, err := (*sc).final(m.Data)
		if err != nil {
			return err
		}
		return writeMessages(s.conn, &pgproto3.SASLResponse{Data: final})
	case pgproto3.AuthTypeSASLFinal:
		var m pgproto3.AuthenticationSASLFinal
		if err := m.Decode(body); err != nil || *sc == nil {
			return errors.New("unexpected SASL final")
		}
		return (*sc).verify(m.Data)
	default:
		return fmt.Errorf("the server asks for authentication type %d, which the proxy does not speak (trust, password, md5, scram-sha-256)", kind)
	}
}
