// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Packet is a packet given on a command line, ready to run or compare.
type Packet struct {
	// Data is the packet's bytes.
	Data []byte
	// First names the layer Data starts with: the expression's first
	// layer; "Ether" for hex and files (IPv4 or IPv6 for a raw-IP pcap).
	First string
	// Expr is the expression the packet was built from; nil for hex and
	// files. expect packet matches with it when set.
	Expr *Expr
	// Source says where the packet came from: "hex", "@FILE", "$NAME" or
	// the expression's text.
	Source string
}

// Layers decodes the packet.
func (p *Packet) Layers() []Layer { return Decode(p.Data, p.First) }

// Summary is "42 bytes: Ether/IPv4/UDP/Raw".
func (p *Packet) Summary() string {
	return fmt.Sprintf("%d bytes: %s", len(p.Data), Summary(p.Layers()))
}

// Input reads a packet from the words of a command line where a packet is
// expected, in any of these forms:
//
//	hex 00 11 22 ...     bytes in hex, in one word or several (0x optional)
//	@FILE                a file's bytes, or the first packet of a pcap or
//	                     pcapng file (recognised by its magic number)
//	$NAME                a packet kept with let NAME = ...
//	EXPR                 a layer expression; the words are joined with
//	                     single blanks first, so "Ether() / IPv4()" works
//
// vars are the session's variables; a variable may hold a *Packet (as let
// stores it) or []byte. Errors from an expression are *Error, with the
// column counted in the joined words.
func Input(words []string, vars map[string]any) (*Packet, error) {
	if len(words) == 0 {
		return nil, errors.New("no packet given; write a layer expression such as Ether()/IPv4()/UDP()/Raw(\"ping\"), hex 00 11 .., @FILE or $NAME")
	}
	first := words[0]
	switch {
	case first == "hex":
		data, err := parseHexWords(words[1:])
		if err != nil {
			return nil, err
		}
		return &Packet{Data: data, First: "Ether", Source: "hex"}, nil
	case strings.HasPrefix(first, "@"):
		if len(words) > 1 {
			return nil, fmt.Errorf("%s: unexpected %q after the file name", first, words[1])
		}
		return readFile(first[1:])
	case strings.HasPrefix(first, "$"):
		if len(words) > 1 {
			return nil, fmt.Errorf("%s: unexpected %q after the variable", first, words[1])
		}
		return lookupVar(first[1:], vars)
	}
	text := strings.Join(words, " ")
	e, err := Parse(text)
	if err != nil {
		return nil, err
	}
	data, err := e.Build()
	if err != nil {
		return nil, err
	}
	return &Packet{Data: data, First: e.Layers[0].Def.Name, Expr: e, Source: text}, nil
}

// Expected reads the expected packet of "expect packet ...": a layer
// expression, parsed but not built so that '*' wildcards are allowed, or
// any other form Input reads. For a packet kept from an expression the
// expression is used (only its written fields are compared); for bytes
// (hex, @FILE), an expression of every decoded field, so all must match.
func Expected(words []string, vars map[string]any) (*Expr, error) {
	if len(words) > 0 && words[0] != "hex" && !strings.HasPrefix(words[0], "@") && !strings.HasPrefix(words[0], "$") {
		return Parse(strings.Join(words, " "))
	}
	p, err := Input(words, vars)
	if err != nil {
		return nil, err
	}
	return p.Expectation()
}

// Expectation is the expression a packet is compared with: the one it was
// built from, or one that writes every decoded field.
func (p *Packet) Expectation() (*Expr, error) {
	if p.Expr != nil {
		return p.Expr, nil
	}
	if len(p.Data) == 0 {
		return nil, errors.New("the packet is empty")
	}
	return Parse(Format(p.Layers()))
}

func parseHexWords(words []string) ([]byte, error) {
	if len(words) == 0 {
		return nil, errors.New("hex: no bytes given; write hex 00 11 22 or hex 001122")
	}
	var data []byte
	for _, w := range words {
		b, err := parseHex(w)
		if err != nil {
			return nil, fmt.Errorf("hex: %v", err)
		}
		data = append(data, b...)
	}
	return data, nil
}

func lookupVar(name string, vars map[string]any) (*Packet, error) {
	v, ok := vars[name]
	if !ok {
		return nil, fmt.Errorf("$%s: no such variable; keep a packet with let %s = EXPR", name, name)
	}
	switch p := v.(type) {
	case *Packet:
		c := *p
		c.Source = "$" + name
		return &c, nil
	case []byte:
		return &Packet{Data: p, First: "Ether", Source: "$" + name}, nil
	}
	return nil, fmt.Errorf("$%s holds %T, not a packet", name, v)
}

// pcap magic numbers, as the file's first 4 bytes read big-endian.
var pcapMagics = map[uint32]bool{
	0xa1b2c3d4: true, 0xd4c3b2a1: true, // microseconds
	0xa1b23c4d: true, 0x4d3cb2a1: true, // nanoseconds
}

const pcapngMagic = 0x0a0d0d0a // section header block

// readFile reads a raw packet file or the first packet of a capture.
func readFile(path string) (*Packet, error) {
	if path == "" {
		return nil, errors.New("@: no file name; write @FILE")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("@%s: %w", path, err)
	}
	src := "@" + path
	if len(data) >= 4 {
		magic := uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3])
		switch {
		case pcapMagics[magic]:
			r, err := pcapgo.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("%s: pcap file: %w", src, err)
			}
			return firstPacket(src, r, r.LinkType())
		case magic == pcapngMagic:
			r, err := pcapgo.NewNgReader(bufio.NewReader(bytes.NewReader(data)), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				return nil, fmt.Errorf("%s: pcapng file: %w", src, err)
			}
			return firstPacket(src, r, r.LinkType())
		}
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", src)
	}
	return &Packet{Data: data, First: "Ether", Source: src}, nil
}

// packetReader is what pcapgo's pcap and pcapng readers have in common.
type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

func firstPacket(src string, r packetReader, link layers.LinkType) (*Packet, error) {
	data, _, err := r.ReadPacketData()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the capture holds no packets", src)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read the first packet: %w", src, err)
	}
	first := "Ether"
	switch link {
	case layers.LinkTypeEthernet:
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		first = "IPv4"
		if len(data) > 0 && data[0]>>4 == 6 {
			first = "IPv6"
		}
	default:
		return nil, fmt.Errorf("%s: link type %v is not Ethernet or raw IP; export the capture as Ethernet", src, link)
	}
	return &Packet{Data: bytes.Clone(data), First: first, Source: src}, nil
}
