// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"fmt"
	"strings"
)

// dumpValueMax is how much of a long value (a payload) the layer tree
// shows; the hexdump below it has every byte.
const dumpValueMax = 64

// Dump shows a packet for people: a line with its length and layers, each
// layer with its byte range and fields (notes such as a bad checksum
// beside them), then a hexdump of every byte.
//
//	46 bytes: Ether/IPv4/UDP/Raw
//	Ether  0-13 (14 bytes)
//	  dst      02:00:00:00:00:02
//	  ...
//	0000  02 00 00 00 00 02 02 00  00 00 00 01 08 00 45 00  |..............E.|
func Dump(data []byte, layers []Layer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bytes: %s\n", len(data), Summary(layers))
	width := 0
	for _, l := range layers {
		for _, f := range l.Fields {
			width = max(width, len(f.Name))
		}
	}
	for _, l := range layers {
		fmt.Fprintf(&b, "%s  %d-%d (%d bytes)", l.Name, l.Offset, l.Offset+l.Len-1, l.Len)
		if l.Note != "" {
			fmt.Fprintf(&b, "  ! %s", l.Note)
		}
		b.WriteByte('\n')
		for _, f := range l.Fields {
			v := f.Value
			if len(v) > dumpValueMax {
				v = fmt.Sprintf("%s... (%d bytes)", v[:dumpValueMax], f.End-f.Start)
			}
			fmt.Fprintf(&b, "  %-*s  %s", width, f.Name, v)
			if f.Note != "" {
				fmt.Fprintf(&b, "  ! %s", f.Note)
			}
			b.WriteByte('\n')
		}
	}
	if len(data) > 0 {
		b.WriteByte('\n')
		b.WriteString(Hexdump(data))
	}
	return b.String()
}

// Hexdump writes data as hexdump -C does: offset, 16 bytes in two groups
// of 8, and the printable characters.
func Hexdump(data []byte) string {
	var b strings.Builder
	digits := 4
	if len(data) > 0xffff {
		digits = 8
	}
	for off := 0; off < len(data); off += 16 {
		row := data[off:min(off+16, len(data))]
		fmt.Fprintf(&b, "%0*x  ", digits, off)
		for i := range 16 {
			if i == 8 {
				b.WriteByte(' ')
			}
			if i < len(row) {
				fmt.Fprintf(&b, "%02x ", row[i])
			} else {
				b.WriteString("   ")
			}
		}
		b.WriteString(" |")
		for _, c := range row {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			b.WriteByte(c)
		}
		b.WriteString("|\n")
	}
	return b.String()
}
