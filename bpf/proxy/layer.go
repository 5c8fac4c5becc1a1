// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/gopacket/gopacket"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// The PostgreSQL packet layers (PROTOCOL.md "Packet layers"). One layer is
// one v3 message; a segment carrying several is a chain:
//
//	TCP()/PGQuery("select 1")                       Query, to port 5432
//	TCP()/PG("P", data="\x00select $1\x00\x00\x00")/PGSync()
//	TCP(sport=5432)/PG("D", len=100000)             a DataRow header only
//	TCP(sport=5432)/PGReady("I")                    ReadyForQuery, idle
//
// A TCP segment to or from port 5432 or 6432 decodes as PG layers, one per
// message, each naming its message; a message cut by the segment's end
// says how much of it is here.
func init() {
	binds := []packet.Bind{
		{Lower: "TCP", Field: "dport", Value: Port}, {Lower: "TCP", Field: "sport", Value: Port},
		{Lower: "TCP", Field: "dport", Value: BouncerPort}, {Lower: "TCP", Field: "sport", Value: BouncerPort},
	}
	packet.Register(&packet.LayerDef{
		Name:    "PG",
		Summary: "one PostgreSQL v3 message: type, length (computed unless given), body (bpf/proxy/PROTOCOL.md)",
		Fields: []packet.FieldDef{
			{Name: "type", Kind: packet.KindString, Default: "Q", Help: `the type letter: "Q" Query, "S" Sync, "X" Terminate, "Z" ReadyForQuery, "D" DataRow, ...`},
			{Name: "len", Kind: packet.KindUint, Bits: 32, Auto: true, Help: "the length field: 4 + the body's length unless given (a larger one leaves the message to continue in the next segment)"},
			{Name: "data", Kind: packet.KindBytes, Help: `the body as it goes on the wire ("select 1\x00")`},
			{Name: "text", Kind: packet.KindString, BuildOnly: true, Help: "a body of text and its terminating NUL (Query, Parse)"},
		},
		Positional: "type",
		Binds:      binds,
		Build:      buildPG,
		Decode:     decodePG,
	})
	packet.Register(&packet.LayerDef{
		Name:       "PGQuery",
		Summary:    `a PostgreSQL Query message: PGQuery("select 1") is PG("Q", text="select 1")`,
		Fields:     []packet.FieldDef{{Name: "sql", Kind: packet.KindString, Help: "the query text; the NUL is added"}},
		Positional: "sql",
		Binds:      binds,
		Build: func(c *packet.BuildContext) (gopacket.SerializableLayer, error) {
			return pgLayer(Message('Q', append([]byte(c.String("sql")), 0))), nil
		},
	})
	packet.Register(&packet.LayerDef{
		Name:    "PGSync",
		Summary: "a PostgreSQL Sync message (ends an extended-protocol batch)",
		Binds:   binds,
		Build: func(*packet.BuildContext) (gopacket.SerializableLayer, error) {
			return pgLayer(Message('S', nil)), nil
		},
	})
	packet.Register(&packet.LayerDef{
		Name:    "PGTerminate",
		Summary: "a PostgreSQL Terminate message (the client leaves)",
		Binds:   binds,
		Build: func(*packet.BuildContext) (gopacket.SerializableLayer, error) {
			return pgLayer(Message('X', nil)), nil
		},
	})
	packet.Register(&packet.LayerDef{
		Name:       "PGReady",
		Summary:    `a PostgreSQL ReadyForQuery message: PGReady("I") idle, "T" in a transaction, "E" in a failed one`,
		Fields:     []packet.FieldDef{{Name: "status", Kind: packet.KindString, Default: "I", Help: "I, T or E"}},
		Positional: "status",
		Binds:      []packet.Bind{{Lower: "TCP", Field: "sport", Value: Port}, {Lower: "TCP", Field: "sport", Value: BouncerPort}},
		Build: func(c *packet.BuildContext) (gopacket.SerializableLayer, error) {
			st := c.String("status")
			if len(st) != 1 {
				return nil, c.Errorf("status", "%q: one letter, I, T or E", st)
			}
			return pgLayer(Message('Z', []byte(st))), nil
		},
	})
}

// Message encodes one PostgreSQL v3 message: the type, the length
// (4 + len(body)) big-endian, the body.
func Message(typ byte, body []byte) []byte {
	b := make([]byte, 5, 5+len(body))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// messageNames are the v3 message types by letter, for display; where a
// letter means different things each way, both are given.
var messageNames = map[byte]string{
	'Q': "Query", 'S': "Sync or ParameterStatus", 'X': "Terminate", 'Z': "ReadyForQuery",
	'P': "Parse", 'B': "Bind", 'E': "Execute or ErrorResponse", 'D': "Describe or DataRow",
	'C': "Close or CommandComplete", 'H': "Flush", 'F': "FunctionCall", 'd': "CopyData",
	'c': "CopyDone", 'f': "CopyFail", 'p': "password message", 'T': "RowDescription",
	'1': "ParseComplete", '2': "BindComplete", '3': "CloseComplete", 'n': "NoData",
	'I': "EmptyQueryResponse", 'N': "NoticeResponse", 'A': "NotificationResponse",
	'K': "BackendKeyData", 'R': "Authentication", 's': "PortalSuspended", 't': "ParameterDescription",
	'G': "CopyInResponse", 'W': "CopyBothResponse", 'V': "FunctionCallResponse",
}

// MessageName names a message type letter ("Query"), or says it is unknown.
func MessageName(typ byte) string {
	if n := messageNames[typ]; n != "" {
		return n
	}
	return "unknown type"
}

type pgLayer []byte

func (p pgLayer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	out, err := b.PrependBytes(len(p))
	if err != nil {
		return err
	}
	copy(out, p)
	return nil
}

func (pgLayer) LayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

func buildPG(c *packet.BuildContext) (gopacket.SerializableLayer, error) {
	typ := c.String("type")
	if len(typ) != 1 {
		return nil, c.Errorf("type", "%q: a message type is one letter (Q, S, X, Z, D, ...)", typ)
	}
	body := c.Bytes("data")
	if c.Has("text") {
		if c.Has("data") {
			return nil, c.Errorf("text", "give data or text, not both")
		}
		body = append([]byte(c.String("text")), 0)
	}
	m := Message(typ[0], body)
	if l, ok := c.Given("len"); ok {
		binary.BigEndian.PutUint32(m[1:], uint32(l))
	}
	return pgLayer(m), nil
}

func decodePG(data []byte, _ *packet.Layer) (*packet.Decoded, error) {
	if len(data) < 5 {
		return nil, fmt.Errorf("a PostgreSQL message header is 5 bytes, %d are here (the rest is in the next segment)", len(data))
	}
	l := binary.BigEndian.Uint32(data[1:])
	if l < 4 || l > MaxMessageLen {
		return nil, fmt.Errorf("length %d is malformed (4 to %d)", l, uint32(MaxMessageLen))
	}
	end := min(uint64(l)+1, uint64(len(data)))
	body := data[5:end]
	d := &packet.Decoded{HeaderLen: int(end), Next: "PG", Note: describe(data[0], body), Fields: []packet.FieldValue{
		{Name: "type", Value: string(data[:1]), Off: 0, Len: 1},
		{Name: "len", Value: uint64(l), Off: 1, Len: 4},
		{Name: "data", Value: body, Off: 5, Len: len(body)},
	}}
	if want := uint64(l) + 1; want > uint64(len(data)) {
		d.Note += fmt.Sprintf("; %d of %d body bytes here, the rest follows in later segments", len(body), l-4)
	}
	return d, nil
}

// describe says what a message is, with its text where that helps.
func describe(typ byte, body []byte) string {
	name := MessageName(typ)
	switch typ {
	case 'Q':
		return name + ": " + strings.TrimRight(string(body), "\x00")
	case 'Z':
		if len(body) == 1 {
			return name + " " + map[byte]string{'I': "idle", 'T': "in a transaction", 'E': "in a failed transaction"}[body[0]]
		}
	}
	return name
}
