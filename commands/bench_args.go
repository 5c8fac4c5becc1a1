// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Argument parsing shared by the live benches (kv bench, cache bench,
// proxy bench): "word value" pairs and lone flag words.

// benchArgs walks args: each word in flags is passed to each alone (v
// ""), each word in valued with the word after it. A valued word at the
// end asks for its value with example ("clients 8 for 5s" style: the
// command line to show); any other word is unexpected, and takes says
// what the command takes.
func benchArgs(args, flags, valued []string, example, takes string, each func(w, v string) error) error {
	need := map[string]string{}
	for _, w := range valued {
		need[w] = "a value, e.g. " + example
	}
	_, err := argSpec{Flags: flags, Valued: valued, Need: need, Takes: takes}.parse(args, func(w string, v ...string) error {
		if len(v) == 0 {
			return each(w, "")
		}
		return each(w, v[0])
	})
	return err
}

// benchMix parses a GET:SET mix, two counts up to 1000, not both 0;
// examples end the error ("30:1, 9:1 or 1:0").
func benchMix(v, examples string) (get, set int, err error) {
	g, s, ok := strings.Cut(v, ":")
	gw, gerr := strconv.Atoi(g)
	sw, serr := strconv.Atoi(s)
	if !ok || gerr != nil || serr != nil || gw < 0 || sw < 0 || gw+sw == 0 || gw > 1000 || sw > 1000 {
		return 0, 0, Usagef("mix %q: give GETs:SETs as two counts up to 1000, e.g. %s", v, examples)
	}
	return gw, sw, nil
}

// benchFor parses a load's duration for kv and cache bench: 100ms to
// 10m.
func benchFor(v string) (time.Duration, error) {
	d, err := ParseDuration(v)
	if err == nil && (d < 100*time.Millisecond || d > 10*time.Minute) {
		err = Usagef("for %s: 100ms to 10m", v)
	}
	return d, err
}

// benchFailed is a bench's error; when the session was interrupted, one
// line that says so and that the bench cleaned up (the error then is only
// the interruption's echo).
func benchFailed(s *Session, name string, err error) error {
	if s.Context().Err() != nil {
		return errors.New(name + ": interrupted; everything it started is stopped and removed")
	}
	return err
}
