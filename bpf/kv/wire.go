// SPDX-License-Identifier: Apache-2.0

// Package kv is the Go face of bpfsh's in-kernel transactional key-value
// store: the wire format of its requests and replies (PROTOCOL.md), the
// embedded XDP program, and its user-space companions.
package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Port is the UDP port kv listens on unless kv_port is set at load time.
const Port = 6390

// Limits, as PROTOCOL.md documents and the program enforces.
const (
	MaxKey    = 64
	MaxValue  = 512
	MaxWrites = 16
	MaxReads  = 16
	HeaderLen = 20
	magic     = 0x4b
	version   = 1
)

// Op is a request's operation.
type Op uint8

// The operations.
const (
	OpGet    Op = 1
	OpSet    Op = 2
	OpDel    Op = 3
	OpBegin  Op = 4
	OpCommit Op = 5
	OpAbort  Op = 6
	OpScan   Op = 7
)

var opNames = map[Op]string{OpGet: "GET", OpSet: "SET", OpDel: "DEL", OpBegin: "BEGIN", OpCommit: "COMMIT", OpAbort: "ABORT", OpScan: "SCAN"}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("op%d", uint8(o))
}

// ParseOp reads an op by name (any case) or number.
func ParseOp(s string) (Op, error) {
	for op, n := range opNames {
		if strings.EqualFold(n, s) {
			return op, nil
		}
	}
	var n uint8
	if _, err := fmt.Sscan(s, &n); err == nil {
		return Op(n), nil
	}
	return 0, fmt.Errorf("unknown kv op %q; one of GET, SET, DEL, BEGIN, COMMIT, ABORT, SCAN", s)
}

// Status is a reply's outcome.
type Status uint8

// The statuses.
const (
	StatusOK         Status = 0
	StatusNotFound   Status = 1
	StatusConflict   Status = 2
	StatusTooBig     Status = 3
	StatusBadRequest Status = 4
	StatusNoTxn      Status = 5
	StatusTxnFull    Status = 6
	StatusLogFull    Status = 7
	StatusBusy       Status = 8
	StatusStoreFull  Status = 9
)

var statusNames = []string{"OK", "NOT_FOUND", "CONFLICT", "TOO_BIG", "BAD_REQUEST", "NO_TXN", "TXN_FULL", "LOG_FULL", "BUSY", "STORE_FULL"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status%d", uint8(s))
}

// Message is a request or a reply: the same header, with Status in the
// flags byte of a reply.
type Message struct {
	Op    Op
	Flags uint8 // requests: 0; replies: the Status
	ReqID uint32
	TxID  uint64
	Key   []byte
	Value []byte
}

// Status is a reply's status (its flags byte).
func (m *Message) Status() Status { return Status(m.Flags) }

// Marshal encodes m as a UDP payload.
func (m *Message) Marshal() []byte {
	b := make([]byte, HeaderLen, HeaderLen+len(m.Key)+len(m.Value))
	b[0], b[1], b[2], b[3] = magic, version, byte(m.Op), m.Flags
	binary.BigEndian.PutUint32(b[4:], m.ReqID)
	binary.BigEndian.PutUint64(b[8:], m.TxID)
	binary.BigEndian.PutUint16(b[16:], uint16(len(m.Key)))
	binary.BigEndian.PutUint16(b[18:], uint16(len(m.Value)))
	b = append(b, m.Key...)
	return append(b, m.Value...)
}

// ErrNotKV is returned by Unmarshal for a payload that is not kv's.
var ErrNotKV = errors.New("not a kv message (magic or version)")

// Unmarshal decodes a UDP payload.
func Unmarshal(b []byte) (*Message, error) {
	if len(b) < HeaderLen {
		return nil, fmt.Errorf("kv message of %d bytes is shorter than its %d-byte header", len(b), HeaderLen)
	}
	if b[0] != magic || b[1] != version {
		return nil, ErrNotKV
	}
	klen := int(binary.BigEndian.Uint16(b[16:]))
	vlen := int(binary.BigEndian.Uint16(b[18:]))
	if HeaderLen+klen+vlen != len(b) {
		return nil, fmt.Errorf("kv message says %d+%d bytes of key and value but carries %d", klen, vlen, len(b)-HeaderLen)
	}
	return &Message{
		Op:    Op(b[2]),
		Flags: b[3],
		ReqID: binary.BigEndian.Uint32(b[4:]),
		TxID:  binary.BigEndian.Uint64(b[8:]),
		Key:   b[HeaderLen : HeaderLen+klen],
		Value: b[HeaderLen+klen:],
	}, nil
}

// ScanEntry is one key and value of a SCAN reply.
type ScanEntry struct {
	Key, Value []byte
}

// ScanEntries decodes a SCAN reply's value: klen u16 | vlen u16 | key | value, repeated.
func ScanEntries(v []byte) ([]ScanEntry, error) {
	var out []ScanEntry
	for len(v) > 0 {
		if len(v) < 4 {
			return out, fmt.Errorf("SCAN reply: %d stray bytes at the end", len(v))
		}
		kl, vl := int(binary.BigEndian.Uint16(v)), int(binary.BigEndian.Uint16(v[2:]))
		if 4+kl+vl > len(v) {
			return out, fmt.Errorf("SCAN reply: entry of %d+%d bytes runs past the end", kl, vl)
		}
		out = append(out, ScanEntry{Key: v[4 : 4+kl], Value: v[4+kl : 4+kl+vl]})
		v = v[4+kl+vl:]
	}
	return out, nil
}

// ScanMore reports whether a SCAN reply left out keys that matched: the
// program says so in the reply's transaction id field, which SCAN, being
// outside transactions, has no other use for.
func (m *Message) ScanMore() bool { return m.Op == OpScan && m.TxID != 0 }
