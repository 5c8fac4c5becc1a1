// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// TestLayout checks the structs' sizes against PROTOCOL.md: user space
// (the WAL writer, map dumps) reads them by these layouts.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"struct kv_key", unsafe.Sizeof(KvKvKey{}), 68},
		{"struct kv_value", unsafe.Sizeof(KvKvValue{}), 528},
		{"struct kv_meta", unsafe.Sizeof(KvKvMeta{}), 24},
		{"struct kv_txn", unsafe.Sizeof(KvKvTxn{}), 10600},
		{"struct kv_log_record", unsafe.Sizeof(KvKvLogRecord{}), LogRecordSize},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d bytes, PROTOCOL.md says %d", c.name, c.got, c.want)
		}
	}
}

// TestLayerBuild: the KV layer builds exactly what Message.Marshal does,
// and UDP()/KV() goes to port 6390.
func TestLayerBuild(t *testing.T) {
	b, err := packet.Build(`UDP(sport=40000, chksum=0)/KV(op="SET", key="a", value="1", txid=5, reqid=7)`)
	if err != nil {
		t.Fatal(err)
	}
	want := (&Message{Op: OpSet, ReqID: 7, TxID: 5, Key: []byte("a"), Value: []byte("1")}).Marshal()
	if !bytes.Equal(b[8:], want) {
		t.Errorf("KV built %x, Marshal gives %x", b[8:], want)
	}
	if port := int(b[2])<<8 | int(b[3]); port != Port {
		t.Errorf("UDP()/KV() went to port %d, want %d", port, Port)
	}
	// Lengths can be written wrong on purpose.
	b, err = packet.Build(`UDP(chksum=0)/KV(GET, key="abc", klen=9)`)
	if err != nil {
		t.Fatal(err)
	}
	if b[8+16] != 0 || b[8+17] != 9 || b[8+2] != byte(OpGet) {
		t.Errorf("KV(GET, klen=9) built %x", b[8:])
	}
	for _, bad := range []string{`UDP()/KV(op=FETCH)`, `UDP()/KV(status=MAYBE)`, `UDP()/KV(reqid=0x100000000)`} {
		if _, err := packet.Build(bad); err == nil {
			t.Errorf("%s built", bad)
		}
	}
}

// TestLayerReply sends frames built by the layer through the program and
// decodes the replies with it: status by name, every field, and back to an
// expression that builds the same bytes.
func TestLayerReply(t *testing.T) {
	k := load(t, nil)
	run := func(expr string) []packet.Layer {
		t.Helper()
		frame, err := packet.Build(expr)
		if err != nil {
			t.Fatal(err)
		}
		ret, out, err := k.c.Exchange(frame)
		if err != nil || ret != xdpTX {
			t.Fatalf("%s: retval %d, %v", expr, ret, err)
		}
		layers := packet.Decode(out, "Ether")
		if len(layers) != 4 || layers[3].Name != "KV" {
			t.Fatalf("%s: reply decodes as %v", expr, layers)
		}
		return layers
	}
	field := func(l packet.Layer, name string) string {
		if f := l.Field(name); f != nil {
			if f.Note != "" && name == "chksum" {
				t.Errorf("%s: %s", name, f.Note)
			}
			return f.Value
		}
		return "<none>"
	}
	ls := run(`Ether()/IPv4()/UDP()/KV(op="SET", key="a", value="1", txid=5, reqid=7)`)
	kvl := ls[3]
	for name, want := range map[string]string{"op": "SET", "status": "NO_TXN", "reqid": "7", "txid": "5", "key": `"a"`, "value": `""`, "klen": "1", "vlen": "0"} {
		if got := field(kvl, name); got != want {
			t.Errorf("reply %s = %s, want %s", name, got, want)
		}
	}
	field(ls[1], "chksum")
	field(ls[2], "chksum")

	run(`Ether()/IPv4()/UDP()/KV(op=SET, key="a", value="hello")`)
	ls = run(`Ether()/IPv4()/UDP()/KV(op=GET, key="a", reqid=8)`)
	if got := field(ls[3], "value"); got != `"hello"` || field(ls[3], "status") != "OK" {
		t.Errorf("GET reply value %s status %s", got, field(ls[3], "status"))
	}
	if ls[2].Field("sport").Value != "6390" {
		t.Errorf("reply from port %s", ls[2].Field("sport").Value)
	}
	// The decoded reply writes back as an expression that builds it.
	frame, err := packet.Build(`Ether()/IPv4()/UDP()/KV(op=GET, key="a", reqid=8)`)
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := k.c.Exchange(frame)
	again, err := packet.Build(packet.Format(packet.Decode(out, "Ether")))
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("the reply's expression builds %x (%v), not %x", again, err, out)
	}
	// SCAN replies say how many entries they carry.
	ls = run(`Ether()/IPv4()/UDP()/KV(op=SCAN, key="")`)
	if f := ls[3].Field("value"); f == nil || f.Note != "1 entry" {
		t.Errorf("SCAN reply value note %+v", f)
	}
}

// TestLayerDecodeOdd: what is not a whole kv message decodes as Raw or
// says it is truncated.
func TestLayerDecodeOdd(t *testing.T) {
	for _, c := range []struct {
		expr, first, note string
	}{
		{`Ether()/IPv4()/UDP(dport=6390)/Raw("K\x01")`, "Raw", ""},
		{`Ether()/IPv4()/UDP(dport=6390)/KV(key="abc", klen=9)`, "KV", "truncated"},
		{`Ether()/IPv4()/UDP(dport=6390)/KV(magic=0x4c)`, "Raw", ""},
	} {
		b, err := packet.Build(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		ls := packet.Decode(b, "Ether")
		l := ls[len(ls)-1]
		if l.Name != c.first || !bytes.Contains([]byte(l.Note), []byte(c.note)) {
			t.Errorf("%s decodes to %s (%s)", c.expr, l.Name, l.Note)
		}
	}
}
