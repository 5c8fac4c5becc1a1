// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// model is kv's semantics written plainly in Go, for the differential and
// fuzz tests: the program and the model get the same requests in the same
// order and must give the same replies and end in the same state.
//
// It follows PROTOCOL.md: the order in which a request is checked, what a
// transaction records, when a commit conflicts, what it logs. It cannot
// know when the log ring is full, so tests that use it drain the ring
// after every request; everything else (table sizes) it models exactly.
type model struct {
	store    map[string]mValue
	txns     map[uint64]*mTxn
	seq      uint64 // meta.commit_seq
	lastTxID uint64 // meta.next_txid
	storeCap int    // store's max_entries
	txnCap   int    // txns' max_entries
	log      []LogRecord
	commits  int // successful COMMITs
	autos    int // auto-committed SETs and DELs
	conflict int
}

type mValue struct {
	value   []byte
	version uint64
}

type mTxn struct {
	reads  []mRead
	writes []LogWrite
}

type mRead struct {
	key     string
	version uint64
}

func newModel(storeCap, txnCap int) *model {
	return &model{store: map[string]mValue{}, txns: map[uint64]*mTxn{}, storeCap: storeCap, txnCap: txnCap}
}

// apply runs one request payload (the UDP payload, any bytes) and returns
// the reply, or nil when the program is to pass the packet on.
func (m *model) apply(p []byte) *Message {
	if len(p) < 2 || p[0] != magic || p[1] != version {
		return nil
	}
	var h [HeaderLen]byte
	copy(h[:], p)
	r := &Message{Op: Op(h[2]), ReqID: binary.BigEndian.Uint32(h[4:]), TxID: binary.BigEndian.Uint64(h[8:]), Key: []byte{}, Value: []byte{}}
	status := func(s Status) *Message { r.Flags = uint8(s); return r }
	if len(p) < HeaderLen {
		return status(StatusBadRequest)
	}
	op, txid := Op(h[2]), r.TxID
	klen, vlen := int(binary.BigEndian.Uint16(h[16:])), int(binary.BigEndian.Uint16(h[18:]))
	if h[3] != 0 || HeaderLen+klen+vlen != len(p) {
		return status(StatusBadRequest)
	}
	switch op {
	case OpGet, OpSet, OpDel:
		if klen == 0 || (op != OpSet && vlen != 0) {
			return status(StatusBadRequest)
		}
		if klen > MaxKey || vlen > MaxValue {
			return status(StatusTooBig)
		}
	case OpBegin:
		if txid != 0 || klen != 0 || vlen != 0 {
			return status(StatusBadRequest)
		}
	case OpCommit, OpAbort:
		if txid == 0 || klen != 0 || vlen != 0 {
			return status(StatusBadRequest)
		}
	case OpScan:
		if txid != 0 || vlen != 0 {
			return status(StatusBadRequest)
		}
		if klen > MaxKey {
			return status(StatusTooBig)
		}
	default:
		return status(StatusBadRequest)
	}
	key := string(p[HeaderLen : HeaderLen+klen])
	value := bytes.Clone(p[HeaderLen+klen:])
	r.Key = []byte(key)

	switch {
	case op == OpGet && txid == 0:
		v, ok := m.store[key]
		if !ok {
			return status(StatusNotFound)
		}
		r.Value = bytes.Clone(v.value)
	case op == OpGet:
		t := m.txns[txid]
		if t == nil {
			return status(StatusNoTxn)
		}
		if i := t.write(key); i >= 0 {
			if t.writes[i].Op == WriteDel {
				return status(StatusNotFound)
			}
			r.Value = bytes.Clone(t.writes[i].Value)
			return r
		}
		v, ok := m.store[key]
		if !slices.ContainsFunc(t.reads, func(rd mRead) bool { return rd.key == key }) {
			if len(t.reads) >= MaxReads {
				delete(m.txns, txid)
				return status(StatusTxnFull)
			}
			t.reads = append(t.reads, mRead{key, v.version})
		}
		if !ok {
			return status(StatusNotFound)
		}
		r.Value = bytes.Clone(v.value)
	case (op == OpSet || op == OpDel) && txid != 0:
		t := m.txns[txid]
		if t == nil {
			return status(StatusNoTxn)
		}
		i := t.write(key)
		if i < 0 {
			if len(t.writes) >= MaxWrites {
				delete(m.txns, txid)
				return status(StatusTxnFull)
			}
			t.writes = append(t.writes, LogWrite{Key: []byte(key)})
			i = len(t.writes) - 1
		}
		t.writes[i].Op, t.writes[i].Value = WriteDel, []byte{}
		if op == OpSet {
			t.writes[i].Op, t.writes[i].Value = WriteSet, value
		}
	case op == OpSet:
		s := m.install([]LogWrite{{Op: WriteSet, Key: []byte(key), Value: value}}, 0)
		if s == StatusOK {
			m.autos++
		}
		return status(s)
	case op == OpDel:
		if _, ok := m.store[key]; !ok {
			return status(StatusNotFound)
		}
		s := m.install([]LogWrite{{Op: WriteDel, Key: []byte(key), Value: []byte{}}}, 0)
		if s == StatusOK {
			m.autos++
		}
		return status(s)
	case op == OpBegin:
		m.lastTxID++
		if len(m.txns) >= m.txnCap {
			return status(StatusBusy)
		}
		m.txns[m.lastTxID] = &mTxn{}
		r.TxID = m.lastTxID
	case op == OpCommit:
		t := m.txns[txid]
		if t == nil {
			return status(StatusNoTxn)
		}
		for _, rd := range t.reads {
			if m.store[rd.key].version != rd.version {
				delete(m.txns, txid)
				m.conflict++
				return status(StatusConflict)
			}
		}
		if s := m.install(t.writes, txid); s != StatusOK {
			return status(s)
		}
		delete(m.txns, txid)
		m.commits++
	case op == OpAbort:
		if m.txns[txid] == nil {
			return status(StatusNoTxn)
		}
		delete(m.txns, txid)
	case op == OpScan:
		// The program returns matches in hash order up to its limits;
		// the model returns them all, sorted, and checkScan compares.
		var entries []byte
		for _, k := range m.keys() {
			if strings.HasPrefix(k, key) {
				v := m.store[k].value
				entries = binary.BigEndian.AppendUint16(entries, uint16(len(k)))
				entries = binary.BigEndian.AppendUint16(entries, uint16(len(v)))
				entries = append(append(entries, k...), v...)
			}
		}
		r.Value = entries
	}
	return r
}

func (t *mTxn) write(key string) int {
	return slices.IndexFunc(t.writes, func(w LogWrite) bool { return string(w.Key) == key })
}

// install is a commit's second half: room for the new keys, then the
// writes at version seq+1, logged.
func (m *model) install(writes []LogWrite, txid uint64) Status {
	if len(writes) == 0 {
		return StatusOK
	}
	newKeys := 0
	for _, w := range writes {
		if _, ok := m.store[string(w.Key)]; w.Op == WriteSet && !ok {
			newKeys++
		}
	}
	if len(m.store)+newKeys > m.storeCap {
		return StatusStoreFull
	}
	m.seq++
	rec := LogRecord{Seq: m.seq, TxID: txid}
	for _, w := range writes {
		if w.Op == WriteSet {
			m.store[string(w.Key)] = mValue{bytes.Clone(w.Value), m.seq}
		} else {
			delete(m.store, string(w.Key))
		}
		rec.Writes = append(rec.Writes, LogWrite{Op: w.Op, Key: bytes.Clone(w.Key), Value: bytes.Clone(w.Value)})
	}
	m.log = append(m.log, rec)
	return StatusOK
}

func (m *model) keys() []string {
	keys := make([]string, 0, len(m.store))
	for k := range m.store {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sameReply compares a program's reply with the model's; SCANs by
// checkScan, everything else byte for byte.
func sameReply(got, want *Message) error {
	if got.Op == OpScan && want.Status() == StatusOK && got.Status() == StatusOK {
		return checkScan(got, want)
	}
	if got.Op != want.Op || got.Flags != want.Flags || got.ReqID != want.ReqID || got.TxID != want.TxID ||
		!bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) {
		return fmt.Errorf("got %s, model says %s", msgString(got), msgString(want))
	}
	return nil
}

// checkScan checks a SCAN reply against every match the model has: the
// reply's entries are matches with their values, each at most once; when
// it says nothing more matched, they are all the matches; when it says
// more did, some match left out would not have fitted (8 entries or 1200
// bytes), since the program stops at the first that does not.
func checkScan(got, want *Message) error {
	if got.ReqID != want.ReqID || !bytes.Equal(got.Key, want.Key) {
		return fmt.Errorf("got %s, model says %s", msgString(got), msgString(want))
	}
	ge, err := ScanEntries(got.Value)
	if err != nil {
		return fmt.Errorf("SCAN reply: %v", err)
	}
	we, _ := ScanEntries(want.Value)
	all := map[string]string{}
	for _, e := range we {
		all[string(e.Key)] = string(e.Value)
	}
	seen := map[string]bool{}
	size := 0
	for _, e := range ge {
		v, ok := all[string(e.Key)]
		if !ok || v != string(e.Value) || seen[string(e.Key)] {
			return fmt.Errorf("SCAN %q returned %q=%q, which is not a match of the model's or a repeat (%d matches)", got.Key, e.Key, e.Value, len(we))
		}
		seen[string(e.Key)] = true
		size += 4 + len(e.Key) + len(e.Value)
	}
	if len(ge) > 8 || size > 1200 {
		return fmt.Errorf("SCAN returned %d entries of %d bytes, over the limits", len(ge), size)
	}
	if !got.ScanMore() {
		if len(ge) != len(we) {
			return fmt.Errorf("SCAN %q returned %d entries and says that is all; the model has %d", got.Key, len(ge), len(we))
		}
		return nil
	}
	for _, e := range we {
		if !seen[string(e.Key)] && (len(ge) == 8 || size+4+len(e.Key)+len(e.Value) > 1200) {
			return nil
		}
	}
	return fmt.Errorf("SCAN %q says more matched, but every match left out would have fitted", got.Key)
}

func msgString(m *Message) string {
	return fmt.Sprintf("%s %s req=%d txid=%d key=%q value=%q", m.Op, m.Status(), m.ReqID, m.TxID, m.Key, m.Value)
}
