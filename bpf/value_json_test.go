// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"
)

// ordered marshals itself, as the value codec's ordered objects do.
type ordered []string

func (o ordered) MarshalJSON() ([]byte, error) {
	return []byte(`{"` + o[0] + `":1,"` + o[1] + `":2}`), nil
}

// TestAppendJSON checks the fast appenders against encoding/json (without
// HTML escaping, as the shell prints JSON).
func TestAppendJSON(t *testing.T) {
	type custom struct {
		A int `json:"a"`
	}
	values := []any{
		nil, "", "plain", "quote\" back\\slash", "ctl\x00\n\t", "<html>&", "ünïcode", "bad\xffutf8", "\u2028",
		true, false, 0, -1, int8(-128), int16(300), int32(-70000), int64(math.MinInt64),
		uint(1), uint8(255), uint16(65535), uint32(math.MaxUint32), uint64(math.MaxUint64),
		big.NewInt(-5), new(big.Int).Lsh(big.NewInt(1), 100), 1.5, json.Number("12"),
		[]any{1, "a", nil, []any{}}, map[string]any{"z": 1, "a": map[string]any{"k": "v"}, "m": []any{true}},
		map[string]any{}, custom{A: 3}, []int{1, 2}, []string{"0x01", "a\"b"}, []string{}, []string(nil), []any(nil), map[string]any(nil), ordered{"b", "a"},
	}
	for _, v := range values {
		want, err := marshalJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendJSON(nil, v); string(got) != string(want) {
			t.Errorf("%#v: got %s, want %s", v, got, want)
		}
	}
	if got := string(AppendJSON([]byte("x"), math.NaN())); got[0] != 'x' || !json.Valid([]byte(got[1:])) {
		t.Errorf("NaN: %s is not valid JSON after the prefix", got)
	}
}
