// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParseExpr: no expression makes Parse or Build panic; their errors
// are *Error with a column inside the text; and what builds decodes into
// layers that, written back with Format, build the same bytes.
func FuzzParseExpr(f *testing.F) {
	for _, c := range roundTrips {
		f.Add(c.expr)
	}
	for _, s := range []string{
		`Ether(src 02:00:00:00:00:01)`, `Raw("a\x00b")`, `TCP(options=[opt=(30), raw=0x0102])`,
		`IPv4(ihl=3)/UDP()`, `Ether()/IPv4(len=0)/UDP(len=0)`, `Padding(3)`, `ICMP(chksum=1)`, `[`, `Raw(*)`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			checkError(t, s, err)
			return
		}
		data, err := e.Build()
		if err != nil {
			checkError(t, s, err)
			return
		}
		ls := Decode(data, e.Layers[0].Def.Name)
		if len(data) == 0 {
			return
		}
		Match(e, ls)
		again, err := Build(Format(ls))
		if err != nil {
			t.Fatalf("%q built, but its decoded form %q does not: %v", s, Format(ls), err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("%q: its decoded form %q builds other bytes:\n%x\n%x", s, Format(ls), data, again)
		}
	})
}

func checkError(t *testing.T, s string, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("%q: error %v is a %T, not *Error", s, err, err)
	}
	if pe.Col < 1 || pe.Col > utf8.RuneCountInString(s)+1 {
		t.Fatalf("%q: column %d outside the text: %v", s, pe.Col, err)
	}
}

// FuzzDecode: any bytes decode without a panic, and the decoded layers,
// written back with Format, build exactly those bytes: nothing a program
// writes is lost or changed in what bpfsh shows.
func FuzzDecode(f *testing.F) {
	for _, c := range roundTrips {
		f.Add(MustBuild(c.expr))
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		ls := Decode(data, "Ether")
		if len(data) == 0 {
			return
		}
		Dump(data, ls)
		again, err := Build(Format(ls))
		if err != nil {
			t.Fatalf("%x decodes to %q, which does not build: %v", data, Format(ls), err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("%x decodes to %q, which builds %x", data, Format(ls), again)
		}
	})
}
