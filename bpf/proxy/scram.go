// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: no channel
// binding (the proxy does not do TLS), the user name taken from the
// startup packet (the client sends an empty n=).

const (
	scramMechanism = "SCRAM-SHA-256"
	// scramIterations is PostgreSQL's default scram_iterations.
	scramIterations = 4096
)

// scramSecret is what the server keeps: enough to check a client's proof
// and to prove itself, not enough to log in elsewhere.
type scramSecret struct {
	iterations           int
	salt                 []byte
	storedKey, serverKey []byte
}

// isSCRAMSecret says whether a user-list secret is a SCRAM secret.
func isSCRAMSecret(s string) bool { return strings.HasPrefix(s, scramMechanism+"$") }

// parseSCRAMSecret reads "SCRAM-SHA-256$iter:salt$storedkey:serverkey".
func parseSCRAMSecret(s string) (scramSecret, error) {
	bad := func(what string) (scramSecret, error) {
		return scramSecret{}, fmt.Errorf("SCRAM secret: %s; want SCRAM-SHA-256$<iterations>:<salt>$<storedkey>:<serverkey> as pg_authid.rolpassword shows it", what)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 3 || parts[0] != scramMechanism {
		return bad("not three $-separated parts")
	}
	iterSalt := strings.SplitN(parts[1], ":", 2)
	keys := strings.SplitN(parts[2], ":", 2)
	if len(iterSalt) != 2 || len(keys) != 2 {
		return bad("missing ':'")
	}
	var sec scramSecret
	var err error
	if sec.iterations, err = strconv.Atoi(iterSalt[0]); err != nil || sec.iterations < 1 {
		return bad("bad iteration count")
	}
	if sec.salt, err = base64.StdEncoding.DecodeString(iterSalt[1]); err != nil {
		return bad("salt is not base64")
	}
	if sec.storedKey, err = base64.StdEncoding.DecodeString(keys[0]); err != nil || len(sec.storedKey) != sha256.Size {
		return bad("stored key is not 32 bytes of base64")
	}
	if sec.serverKey, err = base64.StdEncoding.DecodeString(keys[1]); err != nil || len(sec.serverKey) != sha256.Size {
		return bad("server key is not 32 bytes of base64")
	}
	return sec, nil
}

// newSCRAMSecret derives the secret of a plaintext password.
func newSCRAMSecret(password string, salt []byte, iterations int) (scramSecret, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return scramSecret{}, fmt.Errorf("SCRAM: derive key: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return scramSecret{iterations: iterations, salt: salt, storedKey: stored[:], serverKey: hmacSHA256(salted, "Server Key")}, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func nonce() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// attrs splits "a=x,b=y" into its attributes, in order.
func attrs(msg string) map[byte]string {
	m := map[byte]string{}
	for _, part := range strings.Split(msg, ",") {
		if len(part) >= 2 && part[1] == '=' {
			if _, ok := m[part[0]]; !ok {
				m[part[0]] = part[2:]
			}
		}
	}
	return m
}

// errSCRAMProof is a wrong password (or a client that does not know it).
var errSCRAMProof = errors.New("SCRAM proof does not match")

// scramServer is the server side of one SCRAM exchange.
type scramServer struct {
	secret          scramSecret
	clientFirstBare string
	serverFirst     string
	nonce           string
}

// first takes client-first-message and returns server-first-message.
func (s *scramServer) first(clientFirst []byte) ([]byte, error) {
	msg := string(clientFirst)
	// gs2 header: "n,," (no channel binding) or "y,," (client could, we
	// do not offer it). "p=" asks for binding we never advertised.
	switch {
	case strings.HasPrefix(msg, "n,"), strings.HasPrefix(msg, "y,"):
	default:
		return nil, errors.New("SCRAM: client-first-message wants channel binding, which this proxy does not offer")
	}
	i := strings.Index(msg[2:], ",")
	if i < 0 {
		return nil, errors.New("SCRAM: malformed client-first-message")
	}
	s.clientFirstBare = msg[2+i+1:]
	cnonce := attrs(s.clientFirstBare)['r']
	if cnonce == "" {
		return nil, errors.New("SCRAM: client-first-message has no nonce")
	}
	s.nonce = cnonce + nonce()
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(s.secret.salt), s.secret.iterations)
	return []byte(s.serverFirst), nil
}

// final checks client-final-message and returns server-final-message.
func (s *scramServer) final(clientFinal []byte) ([]byte, error) {
	msg := string(clientFinal)
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, errors.New("SCRAM: client-final-message has no proof")
	}
	withoutProof := msg[:i]
	a := attrs(withoutProof)
	if a['r'] != s.nonce {
		return nil, errors.New("SCRAM: nonce mismatch")
	}
	proof, err := base64.StdEncoding.DecodeString(msg[i+3:])
	if err != nil || len(proof) != sha256.Size {
		return nil, errors.New("SCRAM: malformed proof")
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	sig := hmacSHA256(s.secret.storedKey, authMessage)
	clientKey := make([]byte, len(proof))
	for j := range proof {
		clientKey[j] = proof[j] ^ sig[j]
	}
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], s.secret.storedKey) != 1 {
		return nil, errSCRAMProof
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacSHA256(s.secret.serverKey, authMessage))), nil
}

// scramClient is the client side, for the proxy's own log-in to the server.
type scramClient struct {
	password        string
	clientFirstBare string
	serverSignature []byte
}

// first returns client-first-message.
func (c *scramClient) first() []byte {
	c.clientFirstBare = "n=,r=" + nonce()
	return []byte("n,," + c.clientFirstBare)
}

// final takes server-first-message and returns client-final-message.
func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	a := attrs(string(serverFirst))
	salt, err := base64.StdEncoding.DecodeString(a['s'])
	iterations, ierr := strconv.Atoi(a['i'])
	cnonce := attrs(c.clientFirstBare)['r']
	if err != nil || ierr != nil || iterations < 1 || !strings.HasPrefix(a['r'], cnonce) {
		return nil, fmt.Errorf("SCRAM: malformed server-first-message %q", serverFirst)
	}
	salted, err := pbkdf2.Key(sha256.New, c.password, salt, iterations, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("SCRAM: derive key: %w", err)
	}
	withoutProof := "c=biws,r=" + a['r']
	authMessage := c.clientFirstBare + "," + string(serverFirst) + "," + withoutProof
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := hmacSHA256(stored[:], authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.serverSignature = hmacSHA256(hmacSHA256(salted, "Server Key"), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks server-final-message: the server knew the secret too.
func (c *scramClient) verify(serverFinal []byte) error {
	v, ok := bytes.CutPrefix(serverFinal, []byte("v="))
	sig, err := base64.StdEncoding.DecodeString(string(v))
	if !ok || err != nil || !hmac.Equal(sig, c.serverSignature) {
		return errors.New("SCRAM: the server's signature does not match (is it the server you meant?)")
	}
	return nil
}
