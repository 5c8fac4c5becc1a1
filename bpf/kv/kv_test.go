// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// TestSingleOps: GET, SET and DEL without a transaction, what each reply
// carries, the log records they leave and the counters.
func TestSingleOps(t *testing.T) {
	k := load(t, nil)
	if r := k.set(0, "a", "hello"); r.Status() != StatusOK || string(r.Key) != "a" || len(r.Value) != 0 {
		t.Fatalf("SET a: %s", msgString(r))
	}
	if r := k.get(0, "a"); r.Status() != StatusOK || string(r.Key) != "a" || string(r.Value) != "hello" {
		t.Fatalf("GET a: %s", msgString(r))
	}
	if r := k.get(0, "b"); r.Status() != StatusNotFound || string(r.Key) != "b" || len(r.Value) != 0 {
		t.Fatalf("GET b: %s", msgString(r))
	}
	k.set(0, "a", "") // an empty value is a value
	if r := k.get(0, "a"); r.Status() != StatusOK || len(r.Value) != 0 {
		t.Fatalf("GET a after SET a='': %s", msgString(r))
	}
	k.want(StatusNotFound, &Message{Op: OpDel, Key: []byte("b")})
	k.want(StatusOK, &Message{Op: OpDel, Key: []byte("a")})
	k.want(StatusNotFound, &Message{Op: OpGet, Key: []byte("a")})

	// Two SETs and a DEL committed: seq 1, 2, 3, each one record.
	recs := k.drain()
	if len(recs) != 3 {
		t.Fatalf("%d log records, want 3 (SET, SET, DEL; the DEL of a missing key logs nothing)", len(recs))
	}
	for i, want := range []LogWrite{{WriteSet, []byte("a"), []byte("hello")}, {WriteSet, []byte("a"), []byte{}}, {WriteDel, []byte("a"), []byte{}}} {
		r := recs[i]
		if r.Seq != uint64(i+1) || r.TxID != 0 || len(r.Writes) != 1 || !reflect.DeepEqual(r.Writes[0], want) {
			t.Errorf("record %d: %+v, want seq %d txid 0 write %+v", i, r, i+1, want)
		}
	}
	if m, _ := k.h.ReadMeta(); m.CommitSeq != 3 {
		t.Errorf("commit_seq %d, want 3", m.CommitSeq)
	}
	for _, c := range []struct {
		stat int
		want uint64
	}{{StatOpBase + 1, 2}, {StatOpBase, 4}, {StatOpBase + 2, 2}, {StatAutocommits, 3}, {StatStatusBase + int(StatusNotFound), 3}} {
		if got := k.stat(c.stat); got != c.want {
			t.Errorf("stats %s = %d, want %d", StatNames[c.stat], got, c.want)
		}
	}
}

// TestVersions: a key's version is the seq of the commit that wrote it.
func TestVersions(t *testing.T) {
	k := load(t, nil)
	k.set(0, "x", "1")
	k.set(0, "y", "1")
	k.set(0, "x", "2")
	s := k.state()
	if s.store["x"].Version != 3 || s.store["y"].Version != 2 || string(s.store["x"].Value) != "2" {
		t.Fatalf("store %+v: want x=2 at version 3, y=1 at version 2", s.store)
	}
	for _, e := range s.store {
		if e.Pending {
			t.Errorf("key %q still pending after its commit", e.Key)
		}
	}
}

// TestTransaction: reads see the transaction's own writes and others do
// not until COMMIT; COMMIT installs and logs the write set as one record;
// ABORT leaves no trace; a read-only COMMIT logs nothing.
func TestTransaction(t *testing.T) {
	k := load(t, longTimeout(t))
	k.set(0, "a", "old")
	tx := k.begin()
	if r := k.get(tx, "a"); string(r.Value) != "old" || r.TxID != tx {
		t.Fatalf("GET a in txn: %s", msgString(r))
	}
	k.want(StatusOK, &Message{Op: OpSet, TxID: tx, Key: []byte("a"), Value: []byte("new")})
	k.want(StatusOK, &Message{Op: OpSet, TxID: tx, Key: []byte("b"), Value: []byte("B")})
	// Reads see the transaction's own writes; others do not, yet.
	if r := k.get(tx, "a"); string(r.Value) != "new" {
		t.Fatalf("GET a in txn after SET: %s", msgString(r))
	}
	if r := k.get(0, "a"); string(r.Value) != "old" {
		t.Fatalf("GET a outside the txn before COMMIT: %s", msgString(r))
	}
	k.want(StatusNotFound, &Message{Op: OpGet, Key: []byte("b")})
	k.want(StatusOK, &Message{Op: OpDel, TxID: tx, Key: []byte("a")})
	k.want(StatusNotFound, &Message{Op: OpGet, TxID: tx, Key: []byte("a")})
	k.want(StatusOK, &Message{Op: OpSet, TxID: tx, Key: []byte("a"), Value: []byte("again")})

	st, err := k.h.Txn(tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Reads) != 1 || string(st.Reads[0].Key) != "a" || st.Reads[0].Version != 1 {
		t.Errorf("read set %+v, want a at version 1", st.Reads)
	}
	if len(st.Writes) != 2 || string(st.Writes[0].Value) != "again" || string(st.Writes[1].Key) != "b" {
		t.Errorf("write set %+v, want a=again, b=B", st.Writes)
	}
	k.drain()
	k.want(StatusOK, &Message{Op: OpCommit, TxID: tx})
	if r := k.get(0, "a"); string(r.Value) != "again" {
		t.Fatalf("GET a after COMMIT: %s", msgString(r))
	}
	recs := k.drain()
	if len(recs) != 1 || recs[0].TxID != tx || recs[0].Seq != 2 || len(recs[0].Writes) != 2 {
		t.Fatalf("log after COMMIT: %+v, want one record of txn %d, seq 2, 2 writes", recs, tx)
	}
	if _, err := k.h.Txn(tx); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("transaction %d still open after COMMIT (%v)", tx, err)
	}
	k.want(StatusNoTxn, &Message{Op: OpCommit, TxID: tx})
	k.want(StatusNoTxn, &Message{Op: OpGet, TxID: tx, Key: []byte("a")})

	// ABORT leaves no trace.
	tx2 := k.begin()
	if tx2 != tx+1 {
		t.Errorf("second BEGIN gave %d, want %d", tx2, tx+1)
	}
	k.want(StatusOK, &Message{Op: OpSet, TxID: tx2, Key: []byte("z"), Value: []byte("1")})
	before := k.state()
	k.want(StatusOK, &Message{Op: OpAbort, TxID: tx2})
	after := k.state()
	delete(before.txns, tx2)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("ABORT changed more than its transaction:\n%+v\n%+v", before, after)
	}
	k.want(StatusNoTxn, &Message{Op: OpAbort, TxID: tx2})
	if len(k.drain()) != 0 {
		t.Error("ABORT logged a record")
	}
	// A transaction that only reads commits without a record or a seq.
	tx3 := k.begin()
	k.get(tx3, "a")
	k.want(StatusOK, &Message{Op: OpCommit, TxID: tx3})
	if m, _ := k.h.ReadMeta(); m.CommitSeq != 2 || len(k.drain()) != 0 {
		t.Errorf("a read-only commit moved commit_seq to %d or logged", m.CommitSeq)
	}
}

// TestConflict: of two transactions that read and write the same key the
// first COMMIT wins and the second gets CONFLICT and leaves no trace.
func TestConflict(t *testing.T) {
	k := load(t, longTimeout(t))
	k.set(0, "k", "0")
	t1, t2 := k.begin(), k.begin()
	k.get(t1, "k")
	k.get(t2, "k")
	k.set(t1, "k", "1")
	k.set(t2, "k", "2")
	k.set(t2, "other", "2")
	k.drain()
	k.want(StatusOK, &Message{Op: OpCommit, TxID: t1})
	before := k.state()
	k.want(StatusConflict, &Message{Op: OpCommit, TxID: t2})
	after := k.state()
	// The loser leaves no trace: only its own transaction is gone.
	delete(before.txns, t2)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("a CONFLICT changed the state:\n%+v\n%+v", before, after)
	}
	if r := k.get(0, "k"); string(r.Value) != "1" {
		t.Errorf("k = %q after the conflict, want t1's 1", r.Value)
	}
	k.want(StatusNotFound, &Message{Op: OpGet, Key: []byte("other")})
	recs := k.drain()
	if len(recs) != 1 || recs[0].TxID != t1 {
		t.Errorf("log has %+v, want only t1's record", recs)
	}
	k.want(StatusNoTxn, &Message{Op: OpCommit, TxID: t2})

	// Reading a key as absent conflicts with a commit that creates it.
	t3 := k.begin()
	k.want(StatusNotFound, &Message{Op: OpGet, TxID: t3, Key: []byte("new")})
	k.set(t3, "seen", "absent")
	k.set(0, "new", "x")
	k.want(StatusConflict, &Message{Op: OpCommit, TxID: t3})

	// Blind writes do not conflict: the later commit wins, as in the
	// serial order of the two commits.
	t4, t5 := k.begin(), k.begin()
	k.set(t4, "blind", "4")
	k.set(t5, "blind", "5")
	k.want(StatusOK, &Message{Op: OpCommit, TxID: t4})
	k.want(StatusOK, &Message{Op: OpCommit, TxID: t5})
	if r := k.get(0, "blind"); string(r.Value) != "5" {
		t.Errorf("blind = %q, want 5", r.Value)
	}
	if got := k.stat(StatAbortConflict); got != 2 {
		t.Errorf("abort_conflict = %d, want 2", got)
	}
}

// TestLimits: keys of 64 bytes and values of 512 fit; one more byte is
// TOO_BIG and changes nothing; a 17th write or read is TXN_FULL.
func TestLimits(t *testing.T) {
	k := load(t, longTimeout(t))
	key64, key65 := strings.Repeat("k", MaxKey), strings.Repeat("k", MaxKey+1)
	val512, val513 := strings.Repeat("v", MaxValue), strings.Repeat("v", MaxValue+1)
	k.want(StatusOK, &Message{Op: OpSet, Key: []byte(key64), Value: []byte(val512)})
	if r := k.get(0, key64); string(r.Value) != val512 || string(r.Key) != key64 {
		t.Fatalf("GET of a 64-byte key with a 512-byte value: %d-byte key, %d-byte value", len(r.Key), len(r.Value))
	}
	tx := k.begin()
	before := k.state()
	for _, m := range []*Message{
		{Op: OpSet, Key: []byte(key65), Value: []byte("v")},
		{Op: OpSet, Key: []byte("k"), Value: []byte(val513)},
		{Op: OpGet, Key: []byte(key65)},
		{Op: OpDel, Key: []byte(key65)},
		{Op: OpScan, Key: []byte(key65)},
		{Op: OpSet, TxID: tx, Key: []byte(key65), Value: []byte("v")},
		{Op: OpSet, TxID: tx, Key: []byte("k"), Value: []byte(val513)},
	} {
		r := k.want(StatusTooBig, m)
		if len(r.Key) != 0 || len(r.Value) != 0 {
			t.Errorf("TOO_BIG reply carries key %q value %q", r.Key, r.Value)
		}
	}
	if after := k.state(); !reflect.DeepEqual(before, after) {
		t.Errorf("requests over the limits changed the state")
	}

	// 16 writes fit a transaction; the 17th aborts it and installs nothing.
	for i := range MaxWrites {
		k.want(StatusOK, &Message{Op: OpSet, TxID: tx, Key: fmt.Appendf(nil, "w%d", i), Value: []byte("v")})
	}
	k.want(StatusOK, &Message{Op: OpSet, TxID: tx, Key: []byte("w3"), Value: []byte("again")}) // the same key again takes no slot
	before = k.state()
	k.want(StatusTxnFull, &Message{Op: OpSet, TxID: tx, Key: []byte("w16"), Value: []byte("v")})
	after := k.state()
	delete(before.txns, tx)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("TXN_FULL changed more than removing its transaction")
	}
	k.want(StatusNoTxn, &Message{Op: OpCommit, TxID: tx})

	// 16 distinct reads fit; the 17th aborts.
	tx = k.begin()
	for i := range MaxReads {
		k.want(StatusNotFound, &Message{Op: OpGet, TxID: tx, Key: fmt.Appendf(nil, "r%d", i)})
	}
	k.want(StatusNotFound, &Message{Op: OpGet, TxID: tx, Key: []byte("r0")}) // read again: no new entry
	k.want(StatusTxnFull, &Message{Op: OpGet, TxID: tx, Key: []byte("r16")})
	k.want(StatusNoTxn, &Message{Op: OpCommit, TxID: tx})
	if got := k.stat(StatAbortTxnFull); got != 2 {
		t.Errorf("abort_txn_full = %d, want 2", got)
	}
}

// raw builds a request payload field by field, for malformed requests.
func raw(op Op, flags uint8, txid uint64, klen, vlen uint16, body string) []byte {
	b := []byte{magic, version, byte(op), flags, 0, 0, 0, 9}
	b = binary.BigEndian.AppendUint64(b, txid)
	b = binary.BigEndian.AppendUint16(b, klen)
	b = binary.BigEndian.AppendUint16(b, vlen)
	return append(b, body...)
}

// TestBadRequests: every malformed request is BAD_REQUEST with no key or
// value, unknown transactions NO_TXN, and none of them changes anything.
func TestBadRequests(t *testing.T) {
	k := load(t, longTimeout(t))
	k.set(0, "a", "1")
	tx := k.begin()
	before := k.state()
	for _, c := range []struct {
		name    string
		payload []byte
	}{
		{"short header", raw(OpGet, 0, 0, 1, 0, "a")[:12]},
		{"two bytes", []byte{magic, version}},
		{"flags set", raw(OpGet, 1, 0, 1, 0, "a")},
		{"klen past the end", raw(OpGet, 0, 0, 2, 0, "a")},
		{"bytes beyond klen+vlen", raw(OpGet, 0, 0, 1, 0, "ab")},
		{"empty key", raw(OpGet, 0, 0, 0, 0, "")},
		{"GET with a value", raw(OpGet, 0, 0, 1, 1, "ab")},
		{"DEL with a value", raw(OpDel, 0, 0, 1, 1, "ab")},
		{"SET with an empty key", raw(OpSet, 0, 0, 0, 1, "b")},
		{"unknown op 0", raw(0, 0, 0, 1, 0, "a")},
		{"unknown op 8", raw(8, 0, 0, 1, 0, "a")},
		{"unknown op 255", raw(255, 0, 0, 0, 0, "")},
		{"BEGIN with a txid", raw(OpBegin, 0, tx, 0, 0, "")},
		{"BEGIN with a key", raw(OpBegin, 0, 0, 1, 0, "a")},
		{"COMMIT without a txid", raw(OpCommit, 0, 0, 0, 0, "")},
		{"COMMIT with a key", raw(OpCommit, 0, tx, 1, 0, "a")},
		{"ABORT without a txid", raw(OpAbort, 0, 0, 0, 0, "")},
		{"SCAN in a transaction", raw(OpScan, 0, tx, 1, 0, "a")},
		{"SCAN with a value", raw(OpScan, 0, 0, 1, 1, "ab")},
	} {
		_, r, err := k.c.DoRaw(c.payload)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.Status() != StatusBadRequest || len(r.Key) != 0 || len(r.Value) != 0 {
			t.Errorf("%s: %s, want BAD_REQUEST with no key or value", c.name, msgString(r))
		}
		if len(c.payload) >= 8 && r.ReqID != 9 {
			t.Errorf("%s: request id %d not echoed", c.name, r.ReqID)
		}
	}
	if after := k.state(); !reflect.DeepEqual(before, after) {
		t.Errorf("bad requests changed the state")
	}
	if got := k.stat(StatStatusBase + int(StatusBadRequest)); got != 19 {
		t.Errorf("bad_request = %d, want 19", got)
	}
	// ops 0, 8 and 255, and the two-byte request, whose op reads as 0
	if got := k.stat(StatOpBase + 7); got != 4 {
		t.Errorf("unknown_op = %d, want 4", got)
	}
	// No transaction: NO_TXN, nothing changes.
	for _, m := range []*Message{
		{Op: OpGet, TxID: 999, Key: []byte("a")},
		{Op: OpSet, TxID: 999, Key: []byte("a"), Value: []byte("2")},
		{Op: OpDel, TxID: 999, Key: []byte("a")},
		{Op: OpCommit, TxID: 999},
		{Op: OpAbort, TxID: 999},
	} {
		if r := k.want(StatusNoTxn, m); r.TxID != 999 {
			t.Errorf("%s NO_TXN reply has txid %d, want the request's", m.Op, r.TxID)
		}
	}
	if after := k.state(); !reflect.DeepEqual(before, after) {
		t.Errorf("requests for a missing transaction changed the state")
	}
}

// TestPass: everything that is not a kv request passes untouched.
func TestPass(t *testing.T) {
	k := load(t, nil)
	a := DefaultAddressing()
	req := (&Message{Op: OpSet, Key: []byte("a"), Value: []byte("1")}).Marshal()
	other := a
	other.DstPort = 6391
	frag := a.Frame(req)
	frag[14+6] = 0x20 // more fragments
	arp := packet.MustBuild("Ether(type=0x0806)/Raw(hex=" + strings.Repeat("00", 28) + ")")
	tcp := a.Frame(req)
	tcp[14+9] = 6
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"another port", other.Frame(req)},
		{"wrong magic", a.Frame(append([]byte{'X'}, req[1:]...))},
		{"wrong version", a.Frame(append([]byte{magic, 2}, req[2:]...))},
		{"one byte", a.Frame([]byte{magic})},
		{"no payload", a.Frame(nil)},
		{"a fragment", frag},
		{"ARP", arp},
		{"TCP", tcp},
		{"runt", a.Frame(req)[:30]},
		{"past the linear data", a.Frame(append(raw(OpSet, 0, 0, 1, 4000, "k"), make([]byte, 4000)...))},
	} {
		ret, out, err := k.c.Exchange(c.frame)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ret != xdpPass || !bytes.Equal(out, c.frame) {
			t.Errorf("%s: retval %d (want XDP_PASS) or the frame changed", c.name, ret)
		}
	}
	if got := k.stat(StatPass); got != 10 {
		t.Errorf("pass = %d, want 10", got)
	}
	if s := k.state(); len(s.store) != 0 || s.meta.CommitSeq != 0 {
		t.Error("passed frames changed the store")
	}
}

// TestAddressing: VLAN tags and IPv6, with values of both parities for
// the checksum's byte lanes; CheckReply verifies every reply frame.
func TestAddressing(t *testing.T) {
	k := load(t, nil)
	for _, a := range []Addressing{
		func() Addressing { a := DefaultAddressing(); a.VLAN = 7; return a }(),
		func() Addressing {
			a := DefaultAddressing()
			a.SrcIP, a.DstIP = net.ParseIP("fd00::1"), net.ParseIP("fd00::2")
			return a
		}(),
		func() Addressing {
			a := DefaultAddressing()
			a.SrcIP, a.DstIP, a.VLAN = net.ParseIP("fd00::1"), net.ParseIP("fd00::2"), 100
			return a
		}(),
	} {
		k.c.Addr = a
		key := fmt.Sprintf("%s-%d", a.SrcIP, a.VLAN)
		// Odd and even lengths put the value at both byte lanes of the
		// checksum; CheckReply verifies every checksum.
		for _, v := range []string{"", "x", "xy", "xyz", strings.Repeat("odd", 101)} {
			k.want(StatusOK, &Message{Op: OpSet, Key: []byte(key), Value: []byte(v)})
			if r := k.get(0, key); string(r.Value) != v {
				t.Fatalf("%v: GET %q = %q, want %q", a, key, r.Value, v)
			}
		}
	}
}

// TestIPv4Options: a request with IPv4 options gets a reply with them.
func TestIPv4Options(t *testing.T) {
	k := load(t, nil)
	// A 24-byte IPv4 header (one NOP option word): the reply keeps it and
	// its checksum covers it.
	a := DefaultAddressing()
	f := a.Frame((&Message{Op: OpSet, ReqID: 1, Key: []byte("opt"), Value: []byte("v")}).Marshal())
	f = append(f[:34:34], append([]byte{1, 1, 1, 1}, f[34:]...)...)
	f[14] = 0x46
	binary.BigEndian.PutUint16(f[16:], binary.BigEndian.Uint16(f[16:])+4)
	f[24], f[25] = 0, 0
	binary.BigEndian.PutUint16(f[24:], checksum(f[14:38], 0))
	ret, out, err := k.c.Exchange(f)
	if err != nil || ret != xdpTX {
		t.Fatalf("retval %d, %v", ret, err)
	}
	m, err := CheckReply(a, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status() != StatusOK || out[14] != 0x46 {
		t.Fatalf("%s; IHL byte 0x%02x", msgString(m), out[14])
	}
}

// TestScan: prefixes, the 8-entry and 1200-byte limits and "more".
func TestScan(t *testing.T) {
	k := load(t, nil)
	for i := range 20 {
		k.set(0, fmt.Sprintf("user:%02d", i), fmt.Sprint(i))
	}
	for i := range 8 {
		k.set(0, fmt.Sprintf("e:%d", i), "e")
	}
	k.set(0, "other", "x")
	k.set(0, "us", "short")
	r := k.want(StatusOK, &Message{Op: OpScan, Key: []byte("user:1")})
	es, err := ScanEntries(r.Value)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 8 || !r.ScanMore() || string(r.Key) != "user:1" {
		t.Fatalf("SCAN user:1 (10 matches): %d entries, more %v; want 8 and more", len(es), r.ScanMore())
	}
	for _, e := range es {
		if !strings.HasPrefix(string(e.Key), "user:1") || string(e.Value) != strings.TrimLeft(strings.TrimPrefix(string(e.Key), "user:"), "0") && string(e.Value) != "0" {
			t.Errorf("SCAN entry %q=%q", e.Key, e.Value)
		}
	}
	r = k.want(StatusOK, &Message{Op: OpScan, Key: []byte("e:")})
	if es, _ := ScanEntries(r.Value); len(es) != 8 || r.ScanMore() {
		t.Errorf("SCAN e: (8 matches): %d entries, more %v; want 8 and no more", len(es), r.ScanMore())
	}
	r = k.want(StatusOK, &Message{Op: OpScan, Key: []byte("nothing")})
	if len(r.Value) != 0 || r.ScanMore() {
		t.Errorf("SCAN with no match: %s", msgString(r))
	}
	// The reply holds 1200 bytes of entries at most.
	big := strings.Repeat("b", MaxValue)
	for i := range 3 {
		k.set(0, fmt.Sprintf("big%d", i), big)
	}
	r = k.want(StatusOK, &Message{Op: OpScan, Key: []byte("big")})
	if es, _ := ScanEntries(r.Value); len(es) != 2 || !r.ScanMore() {
		t.Errorf("SCAN of three 512-byte values: %d entries, more %v; want 2 and more", len(es), r.ScanMore())
	}
	// An empty prefix matches everything.
	r = k.want(StatusOK, &Message{Op: OpScan})
	if es, _ := ScanEntries(r.Value); len(es) == 0 || !r.ScanMore() {
		t.Errorf("SCAN '': %d entries, more %v", len(es), r.ScanMore())
	}
}
