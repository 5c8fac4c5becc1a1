// SPDX-License-Identifier: Apache-2.0

// Package packet crafts and decodes packets for bpfsh's tests and runs:
// a scapy-like layer expression becomes bytes, and bytes become layers of
// named fields that can be shown, compared with an expectation, or diffed.
//
//	Ether(src=02:00:00:00:00:01, dst=02:00:00:00:00:02)/IPv4(src=10.0.0.1, dst=10.0.0.2)/UDP(sport=40000, dport=7777)/Raw("ping")
//
// # Building
//
// Parse reads an expression (grammar on Parse) and checks every layer,
// field and value against the registry, reporting mistakes as *Error with
// the column. Expr.Build serializes it with gopacket. Omitted fields take
// defaults: Ether 02:00:00:00:00:01 -> 02:00:00:00:00:02, IPv4 10.0.0.1 ->
// 10.0.0.2 with ttl 64 and id 1, IPv6 fd00::1 -> fd00::2 with hlim 64, UDP
// 40000 -> 7777, TCP 40000 -> 80 with flags S (a SYN, as scapy) and window
// 8192, ICMP echo-request. Fields that name the next layer (Ether.type,
// Dot1Q.type, IPv4.proto, IPv6.nh) come from the next layer's Bind; with
// nothing known after them they are 0x88b5 (IEEE local experimental), 0
// and 59 (no next header). Lengths and checksums are computed over the
// bytes built unless written; a value written is kept as typed, so
// IPv4(chksum=0x1234) sends a bad checksum. Nothing pads a frame unless
// asked: Ether(pad=true) pads to the 60-byte minimum, Padding(4) appends
// four zero bytes outside every length and checksum. '*' is a wildcard for
// expect packet; building with it is an error.
//
// # Decoding, matching, diffing
//
// Decode turns bytes into []Layer, each with its fields in header order as
// canonical text plus the byte range each covers; checksums are verified
// and a wrong one is noted on its field. Format writes layers back as an
// expression that builds the same bytes. Match checks decoded layers
// against an expression for expect packet (only what is written is
// compared; see Match), Diff pairs the layers of an input and an output
// packet and marks the changed fields, Dump shows a packet as a layer tree
// and a hexdump. Input reads the other ways to give a packet: hex bytes,
// @file (raw bytes or the first packet of a pcap/pcapng), $NAME.
//
// # Adding a layer
//
// Protocol layers register themselves from an init function. A layer
// lists its fields, says through Binds which lower-layer value announces
// it, builds a gopacket.SerializableLayer, and decodes its header:
//
//	func init() {
//		packet.Register(&packet.LayerDef{
//			Name:    "KV",
//			Summary: "bpfsh kv request",
//			Fields: []packet.FieldDef{
//				{Name: "op", Kind: packet.KindEnum, Bits: 8, Names: map[string]uint64{"GET": 1, "SET": 2}, Default: "GET"},
//				{Name: "key", Kind: packet.KindBytes},
//			},
//			// UDP()/KV() gets dport=6390; UDP port 6390 either way decodes as KV.
//			Binds: []packet.Bind{{Lower: "UDP", Field: "dport", Value: 6390}, {Lower: "UDP", Field: "sport", Value: 6390}},
//			Build: func(c *packet.BuildContext) (gopacket.SerializableLayer, error) {
//				key := c.Bytes("key")
//				if len(key) > 255 {
//					return nil, c.Errorf("key", "%d bytes, at most 255", len(key))
//				}
//				return gopacket.Payload(append([]byte{byte(c.Uint("op")), byte(len(key))}, key...)), nil
//			},
//			Decode: func(data []byte, lower *packet.Layer) (*packet.Decoded, error) {
//				if len(data) < 2 || len(data) < 2+int(data[1]) {
//					return nil, fmt.Errorf("a KV request needs 2 bytes and its key")
//				}
//				n := int(data[1])
//				return &packet.Decoded{HeaderLen: 2 + n, Fields: []packet.FieldValue{
//					{Name: "op", Value: uint64(data[0]), Off: 0, Len: 1},
//					{Name: "key", Value: data[2 : 2+n], Off: 2, Len: n},
//				}}, nil
//			},
//		})
//	}
//
// After that, UDP()/KV(op=SET, key="a") builds, packet KV(...) shows it,
// and a UDP packet to or from port 6390 decodes as KV. Values reach Build in
// their FieldKind's Go type (uint64, net.IP, []byte...) through the
// BuildContext accessors, and Decode reports them in the same types so
// that decoded text and expected text are written by the same code. A
// field whose length depends on the payload reads it in SerializeTo (the
// payload is already in the buffer); a layer whose bytes follow a header
// field that says how many there are reports that end in Decoded.End.
package packet
