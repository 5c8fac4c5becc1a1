// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Client authentication: the proxy checks each client against its user
// list, as PgBouncer does with auth_file. The method follows the secret:
// "" is trust, an md5 hash is md5, a SCRAM secret or a plaintext password
// is SCRAM-SHA-256 (the strongest both sides can do).

// Authentication methods, as the user list implies them.
const (
	AuthTrust = "trust"
	AuthMD5   = "md5"
	AuthSCRAM = "scram-sha-256"
)

// isMD5Secret says whether s is "md5" + 32 hex digits.
func isMD5Secret(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "md5") {
		return false
	}
	_, err := hex.DecodeString(s[3:])
	return err == nil
}

// authMethod is the method a user-list secret asks for.
func authMethod(secret string) string {
	switch {
	case secret == "":
		return AuthTrust
	case isMD5Secret(secret):
		return AuthMD5
	default:
		return AuthSCRAM
	}
}

// md5Hex is md5(a + b) in hex.
func md5Hex(a, b string) string {
	sum := md5.Sum([]byte(a + b))
	return hex.EncodeToString(sum[:])
}

// md5Response is what a client (or the proxy, to a server) answers to an
// md5 challenge: "md5" + md5(md5(password + user) + salt). secret may be
// the plaintext or the stored md5 hash.
func md5Response(secret, user string, salt [4]byte) string {
	inner := strings.TrimPrefix(secret, "md5")
	if !isMD5Secret(secret) {
		inner = md5Hex(secret, user)
	}
	return "md5" + md5Hex(inner, string(salt[:]))
}

// errAuthFailed is a wrong password; the client is told, as PostgreSQL
// tells it, without saying whether the user exists.
var errAuthFailed = errors.New("authentication failed")

func authFailed(user string) *pgproto3.ErrorResponse {
	return fatal("28P01", "password authentication failed for user %q", user)
}

// authenticate runs the exchange that the user's secret asks for. It
// returns nil when the client may be sent AuthenticationOk; otherwise the
// ErrorResponse to send (nil too when the client just went away, e.g. psql
// hanging up to prompt for a password).
func (p *Proxy) authenticate(c net.Conn, user string) (*pgproto3.ErrorResponse, error) {
	if p.users == nil {
		return nil, nil // trust: only ever on loopback (Start checks)
	}
	secret, ok := p.users[user]
	if !ok {
		return authFailed(user), errAuthFailed
	}
	switch authMethod(secret) {
	case AuthTrust:
		return nil, nil
	case AuthMD5:
		return p.authMD5(c, user, secret)
	default:
		return p.authSCRAM(c, user)
	}
}

func (p *Proxy) authMD5(c net.Conn, user, secret string) (*pgproto3.ErrorResponse, error) {
	var salt [4]byte
	rand.Read(salt[:])
	if err := writeMessages(c, &pgproto3.AuthenticationMD5Password{Salt: salt}); err != nil {
		return nil, err
	}
	body, eresp, err := readAuthMessage(c)
	if err != nil {
		return eresp, err
	}
	var pw pgproto3.PasswordMessage
	if err := pw.Decode(body); err != nil {
		return fatal("08P01", "malformed password message: %v", err), err
	}
	want := md5Response(secret, user, salt)
	if subtle.ConstantTimeCompare([]byte(pw.Password), []byte(want)) != 1 {
		return authFailed(user), errAuthFailed
	}
	return nil, nil
}

func (p *Proxy) authSCRAM(c net.Conn, user string) (*pgproto3.ErrorResponse, error) {
	sec, ok := p.scram[user]
	if !ok {
		return fatal("XX000", "no SCRAM secret for user %q", user), errAuthFailed
	}
	if err := writeMessages(c, &pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}); err != nil {
		return nil, err
	}
	body, eresp, err := readAuthMessage(c)
	if err != nil {
		return eresp, err
	}
	var init pgproto3.SASLInitialResponse
	if err := init.Decode(body); err != nil {
		return fatal("08P01", "malformed SASLInitialResponse: %v", err), err
	}
	if init.AuthMechanism != scramMechanism {
		return fatal("28000", "SASL mechanism %q is not offered; this proxy offers %s", init.AuthMechanism, scramMechanism), errAuthFailed
	}
	srv := &scramServer{secret: sec}
	serverFirst, err := srv.first(init.Data)
	if err != nil {
		return fatal("08P01", "%v", err), err
	}
	if err := writeMessages(c, &pgproto3.AuthenticationSASLContinue{Data: serverFirst}); err != nil {
		return nil, err
	}
	if body, eresp, err = readAuthMessage(c); err != nil {
		return eresp, err
	}
	var resp pgproto3.SASLResponse
	resp.Decode(body)
	serverFinal, err := srv.final(resp.Data)
	if errors.Is(err, errSCRAMProof) {
		return authFailed(user), err
	}
	if err != nil {
		return fatal("08P01", "%v", err), err
	}
	return nil, writeMessages(c, &pgproto3.AuthenticationSASLFinal{Data: serverFinal})
}

// readAuthMessage reads the client's next 'p' message.
func readAuthMessage(c net.Conn) ([]byte, *pgproto3.ErrorResponse, error) {
	typ, body, err := readMessage(c, MaxAuthMessage)
	switch {
	case errors.Is(err, errTooLarge):
		return nil, fatal("08P01", "%v", err), err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, err // the client hung up (psql does, to prompt for a password)
	case err != nil:
		return nil, nil, err
	case typ != 'p':
		return nil, fatal("08P01", "expected a password message, got message type %q", typ), fmt.Errorf("unexpected message %q", typ)
	}
	return body, nil, nil
}

// scramSecrets derives the SCRAM secret of each SCRAM or plaintext user
// once, so a log-in costs one HMAC, not a key derivation.
func scramSecrets(users Users) (map[string]scramSecret, error) {
	out := map[string]scramSecret{}
	for name, secret := range users {
		switch {
		case isSCRAMSecret(secret):
			sec, err := parseSCRAMSecret(secret)
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", name, err)
			}
			out[name] = sec
		case authMethod(secret) == AuthSCRAM:
			salt := make([]byte, 16)
			rand.Read(salt)
			sec, err := newSCRAMSecret(secret, salt, scramIterations)
			if err != nil {
				return nil, err
			}
			out[name] = sec
		}
	}
	return out, nil
}
