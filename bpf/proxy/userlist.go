// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Users is a user list: user name to secret. A secret is a plaintext
// password, an md5 hash ("md5" + md5(password + user)), a SCRAM secret
// ("SCRAM-SHA-256$iter:salt$storedkey:serverkey", as pg_authid keeps it),
// or "" for a user admitted without a password (trust).
type Users map[string]string

// LoadUsers reads a user list in PgBouncer's auth_file format: one user a
// line, `"name" "secret"`, each field in double quotes with "" for a quote
// inside; further fields are ignored; blank lines and lines starting with
// ';' or '#' are skipped.
func LoadUsers(path string) (Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("user list: %w", err)
	}
	defer f.Close()
	users := Users{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == ';' || text[0] == '#' {
			continue
		}
		name, rest, err := quoted(text)
		if err == nil {
			var secret string
			if secret, _, err = quoted(strings.TrimLeft(rest, " \t")); err == nil {
				if name == "" {
					err = fmt.Errorf("empty user name")
				}
				users[name] = secret
			}
		}
		if err != nil {
			return nil, fmt.Errorf("user list %s:%d: %v; want \"user\" \"password\" (plaintext, md5... or SCRAM-SHA-256$...)", path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("user list %s: %w", path, err)
	}
	return users, nil
}

// quoted reads one "..." field from the start of s.
func quoted(s string) (field, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, fmt.Errorf("a field does not start with a double quote")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", fmt.Errorf("a field has no closing double quote")
}
