package kv

import (
	"fmt"

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
