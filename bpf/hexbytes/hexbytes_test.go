// SPDX-License-Identifier: Apache-2.0

package hexbytes

import (
	"bytes"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		words []string
		want  []byte
	}{
		{[]string{"01", "00", "00", "00"}, []byte{1, 0, 0, 0}},
		{[]string{"1", "0", "0", "0"}, []byte{1, 0, 0, 0}},
		{[]string{"01000000"}, []byte{1, 0, 0, 0}},
		{[]string{"0x01000000"}, []byte{1, 0, 0, 0}},
		{[]string{"0x01:00:00:00"}, []byte{1, 0, 0, 0}},
		{[]string{"1:0:0:0"}, []byte{1, 0, 0, 0}},
		{[]string{"0xff", "Ab", "0X0c"}, []byte{0xff, 0xab, 0x0c}},
		{[]string{"6162", "63"}, []byte("abc")},
	} {
		got, err := Parse(c.words)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("Parse(%q) = %x, %v; want %x", c.words, got, err, c.want)
		}
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{nil, "no bytes given"},
		{[]string{"0x"}, "has no hex digits"},
		{[]string{"123"}, "odd number of hex digits"},
		{[]string{"zz"}, "is not hex bytes"},
		{[]string{"01:"}, "between ':'"},
		{[]string{"01:123"}, "between ':'"},
		{[]string{"0g:00"}, "is not hex bytes"},
		{[]string{strings.Repeat("z", 1000)}, "..."},
	} {
		_, err := Parse(c.words)
		if err == nil || !strings.Contains(err.Error(), c.want) || len(err.Error()) > 200 {
			t.Errorf("Parse(%q): error %v, want one saying %q", c.words, err, c.want)
		}
	}
}
