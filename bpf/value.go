package bpf

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// ParseValue turns the words a user typed for a key or value into the
// size bytes the kernel expects, typed by t (nil when the map has no BTF).
//
// STUB: only "hex 01 02 ..." for now; the full literal grammar replaces it.
func ParseValue(words []string, t btf.Type, size int) ([]byte, error) {
	if len(words) == 0 || words[0] != "hex" {
		return nil, fmt.Errorf("only hex literals are supported yet")
	}
	b, err := hex.DecodeString(strings.Join(words[1:], ""))
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, fmt.Errorf("got %d bytes, want %d", len(b), size)
	}
	return b, nil
}

// FormatValue renders data typed by t (nil: hex bytes) for people (text)
// and for JSON (obj: numbers, strings, objects and arrays).
//
// STUB: hex only for now.
func FormatValue(data []byte, t btf.Type) (text string, obj any) {
	h := hex.EncodeToString(data)
	return h, h
}
