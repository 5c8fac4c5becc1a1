// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Sizes of the map elements as PROTOCOL.md lays them out (host byte order).
const (
	// StoreKeySize is sizeof(struct kv_key): len u32, bytes[64].
	StoreKeySize = 4 + MaxKey
	// StoreValueSize is sizeof(struct kv_value): version u64, len u32, pad u32, bytes[512].
	StoreValueSize = 16 + MaxValue
	// MetaSize is sizeof(struct kv_meta): commit_seq u64, next_txid u64, commit_lock u32, pad u32.
	MetaSize = 24
)

// EncodeStoreKey makes the store map's key for key: struct kv_key,
// zero-padded.
func EncodeStoreKey(key []byte) ([StoreKeySize]byte, error) {
	var k [StoreKeySize]byte
	if len(key) < 1 || len(key) > MaxKey {
		return k, fmt.Errorf("key of %d bytes: keys have 1..%d bytes", len(key), MaxKey)
	}
	binary.NativeEndian.PutUint32(k[:], uint32(len(key)))
	copy(k[4:], key)
	return k, nil
}

// DecodeStoreKey returns the key bytes of a struct kv_key.
func DecodeStoreKey(k []byte) ([]byte, error) {
	if len(k) != StoreKeySize {
		return nil, fmt.Errorf("store key of %d bytes, want %d (struct kv_key)", len(k), StoreKeySize)
	}
	n := binary.NativeEndian.Uint32(k)
	if n < 1 || n > MaxKey {
		return nil, fmt.Errorf("store key says len %d (1..%d)", n, MaxKey)
	}
	return k[4 : 4+n], nil
}

// StoreValue is a decoded struct kv_value: the value and the commit_seq
// of the commit that wrote it.
type StoreValue struct {
	Version uint64
	Value   []byte
}

// EncodeStoreValue makes the store map's value: struct kv_value, zero-padded.
func EncodeStoreValue(version uint64, value []byte) ([StoreValueSize]byte, error) {
	var v [StoreValueSize]byte
	if len(value) > MaxValue {
		return v, fmt.Errorf("value of %d bytes: values have at most %d", len(value), MaxValue)
	}
	binary.NativeEndian.PutUint64(v[:], version)
	binary.NativeEndian.PutUint32(v[8:], uint32(len(value)))
	copy(v[16:], value)
	return v, nil
}

// DecodeStoreValue decodes a struct kv_value; Value shares v's memory.
func DecodeStoreValue(v []byte) (StoreValue, error) {
	if len(v) != StoreValueSize {
		return StoreValue{}, fmt.Errorf("store value of %d bytes, want %d (struct kv_value)", len(v), StoreValueSize)
	}
	n := binary.NativeEndian.Uint32(v[8:])
	if n > MaxValue {
		return StoreValue{}, fmt.Errorf("store value says len %d (at most %d)", n, MaxValue)
	}
	return StoreValue{Version: binary.NativeEndian.Uint64(v), Value: v[16 : 16+n]}, nil
}

// Meta is struct kv_meta, the one element of the meta map.
type Meta struct {
	CommitSeq  uint64 // seq of the last commit
	LastTxID   uint64 // the last transaction id handed out (next_txid)
	CommitLock uint32 // held by a commit in progress
}

// MarshalBinary encodes m as struct kv_meta.
func (m Meta) MarshalBinary() ([]byte, error) {
	b := make([]byte, MetaSize)
	binary.NativeEndian.PutUint64(b, m.CommitSeq)
	binary.NativeEndian.PutUint64(b[8:], m.LastTxID)
	binary.NativeEndian.PutUint32(b[16:], m.CommitLock)
	return b, nil
}

// UnmarshalBinary decodes struct kv_meta.
func (m *Meta) UnmarshalBinary(b []byte) error {
	if len(b) != MetaSize {
		return fmt.Errorf("meta value of %d bytes, want %d (struct kv_meta)", len(b), MetaSize)
	}
	m.CommitSeq = binary.NativeEndian.Uint64(b)
	m.LastTxID = binary.NativeEndian.Uint64(b[8:])
	m.CommitLock = binary.NativeEndian.Uint32(b[16:])
	return nil
}

// ReadMeta reads element 0 of the meta map.
func ReadMeta(meta *ebpf.Map) (Meta, error) {
	if meta.ValueSize() != MetaSize {
		return Meta{}, fmt.Errorf("read kv meta: map has %d-byte values, want %d (struct kv_meta)", meta.ValueSize(), MetaSize)
	}
	b := make([]byte, MetaSize)
	if err := meta.Lookup(uint32(0), &b); err != nil {
		return Meta{}, fmt.Errorf("read kv meta: %w", err)
	}
	var m Meta
	return m, m.UnmarshalBinary(b)
}

// WriteMeta writes element 0 of the meta map.
func WriteMeta(meta *ebpf.Map, m Meta) error {
	b, _ := m.MarshalBinary()
	if err := meta.Update(uint32(0), b, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write kv meta: %w", err)
	}
	return nil
}

// checkStore makes sure m looks like the kv store map before anything
// writes to it.
func checkStore(m *ebpf.Map) error {
	if m.KeySize() != StoreKeySize || m.ValueSize() != StoreValueSize {
		return fmt.Errorf("store map has %d-byte keys and %d-byte values, want %d and %d (struct kv_key, struct kv_value)",
			m.KeySize(), m.ValueSize(), StoreKeySize, StoreValueSize)
	}
	return nil
}

// applyRecord installs r's writes into the store: SET with version =
// r.Seq, DEL removes the key (a missing key is fine: replay may run twice).
func applyRecord(store *ebpf.Map, r *LogRecord) error {
	for _, w := range r.Writes {
		k, err := EncodeStoreKey(w.Key)
		if err != nil {
			return fmt.Errorf("seq %d: %w", r.Seq, err)
		}
		switch w.Op {
		case WriteSet:
			v, err := EncodeStoreValue(r.Seq, w.Value)
			if err != nil {
				return fmt.Errorf("seq %d: %w", r.Seq, err)
			}
			if err := store.Update(k[:], v[:], ebpf.UpdateAny); err != nil {
				return fmt.Errorf("seq %d: set %q: %w", r.Seq, w.Key, explainStoreErr(err))
			}
		case WriteDel:
			if err := store.Delete(k[:]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("seq %d: del %q: %w", r.Seq, w.Key, err)
			}
		}
	}
	return nil
}

// explainStoreErr turns a full hash map's E2BIG into words.
func explainStoreErr(err error) error {
	if errors.Is(err, unix.E2BIG) {
		return fmt.Errorf("the store map is full: %w", err)
	}
	return err
}
