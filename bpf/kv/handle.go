// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// Handle is a loaded kv program and its maps.
type Handle struct {
	Prog  *ebpf.Program
	Store *ebpf.Map // struct kv_key -> struct kv_value
	Txns  *ebpf.Map // txid -> struct kv_txn
	Meta  *ebpf.Map // 0 -> struct kv_meta
	Log   *ebpf.Map // ring buffer of struct kv_log_record
	Stats *ebpf.Map // per-CPU counters, see StatNames
}

// Open opens the program and maps that "load kv" pinned in dir
// (<pin-root>/kv, or the NAME it was loaded as).
func Open(dir string) (*Handle, error) {
	h := &Handle{}
	var err error
	if h.Prog, err = ebpf.LoadPinnedProgram(filepath.Join(dir, ProgramName), nil); err != nil {
		return nil, fmt.Errorf("open kv in %s: program %s: %w", dir, ProgramName, err)
	}
	for _, m := range []struct {
		name string
		dst  **ebpf.Map
	}{{StoreMap, &h.Store}, {TxnsMap, &h.Txns}, {MetaMap, &h.Meta}, {LogMap, &h.Log}, {StatsMap, &h.Stats}} {
		if *m.dst, err = ebpf.LoadPinnedMap(filepath.Join(dir, m.name), nil); err != nil {
			h.Close()
			return nil, fmt.Errorf("open kv in %s: map %s: %w", dir, m.name, err)
		}
	}
	return h, nil
}

// FromCollection takes the program and maps out of a loaded collection
// (the embedded object, or a Spec changed and loaded). The handle shares
// them with the collection: close one or the other.
func FromCollection(c *ebpf.Collection) (*Handle, error) {
	h := &Handle{Prog: c.Programs[ProgramName], Store: c.Maps[StoreMap], Txns: c.Maps[TxnsMap],
		Meta: c.Maps[MetaMap], Log: c.Maps[LogMap], Stats: c.Maps[StatsMap]}
	if h.Prog == nil || h.Store == nil || h.Txns == nil || h.Meta == nil || h.Log == nil || h.Stats == nil {
		return nil, errors.New("the collection is not kv's: it lacks xdp_kv or one of its maps")
	}
	return h, nil
}

// Close closes the program and maps.
func (h *Handle) Close() error {
	var errs []error
	if h.Prog != nil {
		errs = append(errs, h.Prog.Close())
	}
	for _, m := range []*ebpf.Map{h.Store, h.Txns, h.Meta, h.Log, h.Stats} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// ReadMeta reads the meta map.
func (h *Handle) ReadMeta() (Meta, error) { return ReadMeta(h.Meta) }

// Entry is one key of the store.
type Entry struct {
	Key     []byte
	Value   []byte
	Version uint64 // the commit_seq of the commit that wrote it
	Pending bool   // a commit is installing it; readers do not see it yet
}

// Dump reads every entry of the store, in the map's order.
func (h *Handle) Dump() ([]Entry, error) {
	var (
		k   KvKvKey
		v   KvKvValue
		out []Entry
	)
	it := h.Store.Iterate()
	for it.Next(&k, &v) {
		out = append(out, entryOf(&k, &v))
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("dump kv store: %w", err)
	}
	return out, nil
}

func entryOf(k *KvKvKey, v *KvKvValue) Entry {
	return Entry{
		Key:     append([]byte(nil), k.Bytes[:min(int(k.Len), MaxKey)]...),
		Value:   append([]byte{}, v.Bytes[:min(int(v.Len), MaxValue)]...),
		Version: v.Version,
		Pending: v.Flags&valuePending != 0,
	}
}

// valuePending is KV_VALUE_PENDING in kv_value.flags.
const valuePending = 1

// StoreKey is key as the store map's key (struct kv_key, zero-padded).
func StoreKey(key []byte) (KvKvKey, error) {
	var k KvKvKey
	if len(key) == 0 || len(key) > MaxKey {
		return k, fmt.Errorf("kv key of %d bytes; keys are 1 to %d bytes", len(key), MaxKey)
	}
	k.Len = uint32(len(key))
	copy(k.Bytes[:], key)
	return k, nil
}

// TxnState is what a transaction has read and buffered so far.
type TxnState struct {
	ID       uint64
	StartSeq uint64 // commit_seq when it began
	Busy     uint32 // 0 idle, 1 a request is using it, 2 expiring
	Reads    []TxnRead
	Writes   []TxnWrite
}

// TxnRead is one key a transaction read and the version it saw (0: absent).
type TxnRead struct {
	Key     []byte
	Version uint64
}

// TxnWrite is one buffered write.
type TxnWrite struct {
	Op    WriteOp // WriteSet or WriteDel
	Key   []byte
	Value []byte
}

// Txn reads the state of open transaction id; ebpf.ErrKeyNotExist (wrapped)
// when there is none.
func (h *Handle) Txn(id uint64) (*TxnState, error) {
	var t KvKvTxn
	if err := h.Txns.Lookup(id, &t); err != nil {
		return nil, fmt.Errorf("kv transaction %d: %w", id, err)
	}
	return txnState(&t), nil
}

// TxnIDs lists the open transactions.
func (h *Handle) TxnIDs() ([]uint64, error) {
	var (
		id  uint64
		ids []uint64
	)
	it := h.Txns.Iterate()
	var t KvKvTxn
	for it.Next(&id, &t) {
		ids = append(ids, id)
	}
	if err := it.Err(); err != nil {
		return ids, fmt.Errorf("list kv transactions: %w", err)
	}
	return ids, nil
}

func txnState(t *KvKvTxn) *TxnState {
	s := &TxnState{ID: t.Id, StartSeq: t.StartSeq, Busy: t.Busy}
	for i := 0; i < int(min(t.Nreads, MaxReads)); i++ {
		r := &t.R[i]
		s.Reads = append(s.Reads, TxnRead{Key: append([]byte(nil), r.Key.Bytes[:min(int(r.Key.Len), MaxKey)]...), Version: r.Version})
	}
	for i := 0; i < int(min(t.Nwrites, MaxWrites)); i++ {
		w := &t.W[i]
		s.Writes = append(s.Writes, TxnWrite{Op: WriteOp(w.Op), Key: append([]byte(nil), w.Key[:min(int(w.Klen), MaxKey)]...),
			Value: append([]byte{}, w.Value[:min(int(w.Vlen), MaxValue)]...)})
	}
	return s
}
