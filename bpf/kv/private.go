// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bpfsh/bpfsh/bpf"
)

// privateSpec is the spec LoadPrivate loads: Spec, except in tests that
// hand it one the verifier rejects.
var privateSpec = Spec

// LoadPrivate loads a fresh kv from the embedded object, pinned nowhere:
// an empty store of its own that goes away with close. port sets kv_port
// (0: Port). The bench uses one so that it never writes into the user's
// store nor competes with the user's WAL writer for the log.
func LoadPrivate(port uint16) (h *Handle, close func() error, err error) {
	spec, err := privateSpec()
	if err != nil {
		return nil, nil, err
	}
	if port != 0 {
		v := spec.Variables[VarPort]
		if v == nil {
			return nil, nil, fmt.Errorf("the embedded kv object has no %s", VarPort)
		}
		if err := v.Set(port); err != nil {
			return nil, nil, fmt.Errorf("set %s=%d: %w", VarPort, port, err)
		}
	}
	coll, err := bpf.LoadUnpinned(spec, BuiltinName)
	if err != nil {
		return nil, nil, err
	}
	h, err = FromCollection(coll)
	if err != nil {
		coll.Close()
		return nil, nil, err
	}
	return h, func() error { coll.Close(); return nil }, nil
}

// Private is a private kv (LoadPrivate) served live (Serve) with a WAL
// writer draining its log into a WAL of its own on tmpfs: what kv bench
// and kv check drive. Close removes all of it.
type Private struct {
	H       *Handle
	Server  *Server
	Writer  *Writer
	WALPath string
	// WALHash is the pin-root hash the WAL was written with (ReadWAL
	// wants it).
	WALHash [8]byte

	closers []func() error
}

// ServePrivate loads a private kv answering on port (0: Port), starts a
// WAL writer for it in a temporary directory named for what uses it
// (bpfsh-kv-WHAT-*, on tmpfs when there is one: the log must drain, or
// commits answer LOG_FULL once about 450 fill the ring) and serves it on
// a veth pair. On an error everything made so far
// is removed.
func ServePrivate(port uint16, what string) (*Private, error) {
	p := &Private{}
	fail := func(err error) (*Private, error) {
		p.Close()
		return nil, err
	}
	h, closeKV, err := LoadPrivate(port)
	if err != nil {
		return nil, err
	}
	p.H = h
	p.closers = append(p.closers, closeKV)
	walDir, err := os.MkdirTemp(tmpfsDir(), "bpfsh-kv-"+what+"-")
	if err != nil {
		return fail(fmt.Errorf("WAL directory: %w", err))
	}
	p.closers = append(p.closers, func() error { return os.RemoveAll(walDir) })
	p.WALPath, p.WALHash = filepath.Join(walDir, "kv.wal"), PinRootHash(walDir)
	if p.Writer, err = OpenWriter(p.WALPath, p.WALHash, h.Log, h.Meta, WriterOptions{}); err != nil {
		return fail(err)
	}
	p.closers = append(p.closers, p.Writer.Close)
	if p.Server, err = Serve(ServeOptions{Program: h.Prog, Port: port}); err != nil {
		return fail(err)
	}
	p.closers = append(p.closers, p.Server.Close)
	return p, nil
}

// Close stops serving, stops the writer, removes the WAL and unloads the
// kv, in that order.
func (p *Private) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}
