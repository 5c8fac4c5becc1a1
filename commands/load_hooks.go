// SPDX-License-Identifier: Apache-2.0

package commands

import "github.com/bpfsh/bpfsh/bpf"

// A loadHook lets a command family act when load pins an object it knows
// and before unload removes it, while load and unload stay generic: kv
// replays its WAL into the fresh maps and starts the session's WAL writer
// after load, and flushes and stops the writer before unload. The hooks
// live here, not in bpf/, because what they start belongs to the session
// (it ends with the shell, through Session.AtExit).
type loadHook struct {
	// Match says whether the objects load pinned (as listed in the
	// load's result, or in the manifest unload reads) are the family's.
	Match func(objects []bpf.Pinned) bool
	// Loaded runs right after load pinned l; what it returns is shown
	// after load's table. An error undoes the load (unload NAME) and is
	// load's error.
	Loaded func(s *Session, l *bpf.Loaded) (Result, error)
	// Unloading runs before unload removes NAME's pins; what it returns
	// is shown after unload's line. An error stops the unload.
	Unloading func(s *Session, name string) (Result, error)
}

// loadHooks are the registered hooks, in registration order.
var loadHooks []*loadHook

// onLoad registers h; families call it from init.
func onLoad(h *loadHook) { loadHooks = append(loadHooks, h) }

// afterLoad runs the Loaded hooks that match l and returns what they
// showed. When one fails, NAME is unloaded again, so that a load is still
// all or nothing.
func afterLoad(s *Session, l *bpf.Loaded) ([]Result, error) {
	var out []Result
	for _, h := range loadHooks {
		if h.Loaded == nil || !h.Match(l.Objects) {
			continue
		}
		r, err := h.Loaded(s, l)
		if err != nil {
			bpf.Unload(s.StateDir, s.PinRoot, l.Name)
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// beforeUnload runs the Unloading hooks that match what load recorded
// for name. Without a record there is nothing to match, and bpf.Unload
// says why it removes nothing.
func beforeUnload(s *Session, name string) ([]Result, error) {
	m, err := bpf.ReadManifest(s.StateDir, s.PinRoot, name)
	if err != nil {
		return nil, nil
	}
	var out []Result
	for _, h := range loadHooks {
		if h.Unloading == nil || !h.Match(m.Objects) {
			continue
		}
		r, err := h.Unloading(s, name)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}
