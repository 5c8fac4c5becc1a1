// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/fixture"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// fixtureMaps is the fixture object's map specs, whose key and value types
// come from the BTF clang wrote.
func fixtureMaps(t *testing.T) map[string]*ebpf.MapSpec {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(fixture.FixtureObject()))
	if err != nil {
		t.Fatalf("load fixture spec: %v", err)
	}
	return spec.Maps
}

func TestFixtureFlowKey(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(fixture.FixtureObject()))
	if err != nil {
		t.Fatal(err)
	}
	var key *btf.Struct
	if err := spec.TypeByName("flow_key", &key); err != nil {
		t.Fatal(err)
	}
	b, err := bpf.ParseValue([]string{"{saddr: 10.0.0.1, sport: 40000}"}, key, 8)
	if err != nil {
		t.Fatal(err)
	}
	// The port goes in network order, as named (see value_hints.go).
	if want := hexBytes(t, "0a000001 9c40 0000"); !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
	text, obj := bpf.FormatValue(b, key)
	if want := "{saddr: 10.0.0.1, sport: 40000, pad: 0}"; text != want {
		t.Errorf("text %s, want %s", text, want)
	}
	j, _ := json.Marshal(obj)
	if want := `{"saddr":16777226,"sport":16540,"pad":0}`; string(j) != want {
		t.Errorf("json %s, want %s", j, want)
	}
	// bpftool's byte syntax gives the same key.
	for _, words := range [][]string{
		{"0x0a", "0", "0", "1", "0x9c", "0x40", "0", "0"},
		{"hex", "0a", "00", "00", "01", "9c", "40", "00", "00"},
		{"hex", "0a0000019c400000"},
	} {
		got, err := bpf.ParseValue(words, key, 8)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("ParseValue(%q) = % x, %v; want % x", words, got, err, b)
		}
	}
}

func TestFixtureFlowStats(t *testing.T) {
	maps := fixtureMaps(t)
	flows := maps["flows"]
	lit := `{packets: 3, bytes: 180, comment: "first \x22flow\x22", tags: [1, 2]}`
	b, err := bpf.ParseValue([]string{lit}, flows.Value, int(flows.ValueSize))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 40)
	copy(want, hexBytes(t, "0300000000000000 b400000000000000"))
	copy(want[16:], `first "flow"`)
	copy(want[32:], []byte{1, 2})
	if !bytes.Equal(b, want) {
		t.Fatalf("got % x\nwant % x", b, want)
	}
	text, obj := bpf.FormatValue(b, flows.Value)
	if want := `{packets: 3, bytes: 180, comment: "first \x22flow\x22", tags: [1, 2, 0, 0]}`; text != want {
		t.Errorf("text %s\nwant %s", text, want)
	}
	j, _ := json.Marshal(obj)
	if want := `{"packets":3,"bytes":180,"comment":"first \"flow\"","tags":[1,2,0,0]}`; string(j) != want {
		t.Errorf("json %s\nwant %s", j, want)
	}

	for _, c := range []struct{ lit, want string }{
		{`{comment: "a comment far too long"}`, `field comment: "a comment far too long" is 22 bytes, the field holds 16`},
		{`{tags: [1, 2, 3, 4, 5]}`, `field tags: 5 elements given, the field holds 4`},
		{`{tags: [1, 2, 3, 256]}`, `field tags[3]: 256 is out of range for __u8 (0..255)`},
		{`{packets: -1}`, `field packets: -1 is out of range for __u64 (0..18446744073709551615)`},
		{`{packet: 1}`, `field packet: struct flow_stats has no such field; its fields are packets, bytes, comment, tags`},
	} {
		_, err := bpf.ParseValue([]string{c.lit}, flows.Value, int(flows.ValueSize))
		if err == nil || err.Error() != c.want {
			t.Errorf("ParseValue(%s): %v, want %s", c.lit, err, c.want)
		}
	}
}

func TestFixtureSizes(t *testing.T) {
	maps := fixtureMaps(t)
	counters := maps["counters"]
	_, err := bpf.ParseValue([]string{"hex", "01", "02", "03", "04"}, counters.Value, int(counters.ValueSize))
	if want := "4 bytes given, the map wants 8 (__u64)"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = bpf.ParseValue([]string{"0x01", "0", "0"}, maps["flows"].Key, int(maps["flows"].KeySize))
	if want := "3 bytes given, the map wants 8 (struct flow_key)"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	b, err := bpf.ParseValue([]string{"7"}, counters.Key, int(counters.KeySize))
	if err != nil || !bytes.Equal(b, []byte{7, 0, 0, 0}) {
		t.Errorf("counters key 7: % x, %v", b, err)
	}
}

// TestBpftoolReadsParsedValues writes entries parsed by ParseValue into a
// real map and checks that bpftool decodes them by BTF exactly as
// FormatValue does (bpftool's "formatted" JSON).
func TestBpftoolReadsParsedValues(t *testing.T) {
	flows := fixtureMaps(t)["flows"].Copy()
	flows.Pinning = ebpf.PinNone
	checkBpftoolAgrees(t, flows, [][2]string{
		{"{saddr: 10.0.0.1, sport: 40000}", `{packets: 3, bytes: 180, comment: "first flow", tags: [1, 2]}`},
		{"{saddr: 255.255.255.255, sport: 65535, pad: 65535}", `{packets: 18446744073709551615, comment: "0123456789abcdef", tags: [255, 255, 255, 255]}`},
	})
}

// TestBpftoolAgreesOnTypes does the same for the kinds of BTF on which
// bpfsh and bpftool agree: signed and unsigned integers, bools, chars,
// enums (signed too), pointers, text, arrays and nested structs. (They
// differ on purpose elsewhere: bpftool shows bitfields and 128-bit
// integers as raw hex, an anonymous union as a member named "", and
// cannot show floats.)
func TestBpftoolAgreesOnTypes(t *testing.T) {
	value := &btf.Struct{Name: "agree", Size: 64, Members: []btf.Member{
		{Name: "t", Type: tTuple, Offset: 0},
		{Name: "name", Type: tName, Offset: 128},
		{Name: "ports", Type: tPorts, Offset: 256},
		{Name: "lv", Type: tLevel, Offset: 304},
		{Name: "b", Type: tBool, Offset: 312},
		{Name: "c", Type: tChar, Offset: 320},
		{Name: "col", Type: tColor, Offset: 352},
		{Name: "s", Type: tS64, Offset: 384},
		{Name: "p", Type: tPtr, Offset: 448},
	}}
	spec := &ebpf.MapSpec{Name: "bpfsh_agree", Type: ebpf.Hash, KeySize: 16, ValueSize: 64, MaxEntries: 4, Key: tTuple, Value: value}
	checkBpftoolAgrees(t, spec, [][2]string{
		{"{saddr: 10.0.0.1, sport: 1, proto: 6}", `{t: {saddr: 10.0.0.1, sport: 1}, name: "bpfsh", ports: [1, 2, 3], lv: LOW, b: true, c: -5, col: BLUE, s: -9, p: 0xffff888000000000}`},
		{"{}", "{}"},
		{"{proto: 17}", `{name: "a\x01", lv: 7, c: 'x', col: 9, s: -9223372036854775808, p: 0xffffffffffffffff}`},
	})
}

// checkBpftoolAgrees creates a map from spec (not pinned), puts entries
// parsed by ParseValue, and compares bpftool's "formatted" JSON of each
// entry with FormatValue's.
func checkBpftoolAgrees(t *testing.T, spec *ebpf.MapSpec, entries [][2]string) {
	t.Helper()
	bpftest.RequireRoot(t)
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		t.Skip("skipped: bpftool is not installed (apt-get install bpftool)")
	}
	m, err := ebpf.NewMap(spec)
	if err != nil {
		t.Fatalf("create map: %v", err)
	}
	defer m.Close()

	ours := map[string]any{}
	for _, e := range entries {
		k, err := bpf.ParseValue([]string{e[0]}, spec.Key, int(spec.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		v, err := bpf.ParseValue([]string{e[1]}, spec.Value, int(spec.ValueSize))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Put(k, v); err != nil {
			t.Fatalf("put: %v", err)
		}
		_, kobj := bpf.FormatValue(k, spec.Key)
		_, vobj := bpf.FormatValue(v, spec.Value)
		ours[normJSON(t, kobj)] = normJSONValue(t, vobj)
	}

	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	out, err := exec.Command(bpftool, "-j", "map", "dump", "id", strconv.Itoa(int(id))).Output()
	if err != nil {
		t.Fatalf("bpftool map dump: %v", err)
	}
	var dumped []struct {
		Formatted struct {
			Key   json.RawMessage `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"formatted"`
	}
	if err := json.Unmarshal(out, &dumped); err != nil {
		t.Fatalf("bpftool output %s: %v", out, err)
	}
	if len(dumped) != len(entries) {
		t.Fatalf("bpftool dumped %d entries, want %d: %s", len(dumped), len(entries), out)
	}
	for _, d := range dumped {
		key := normJSON(t, d.Formatted.Key)
		want, ok := ours[key]
		if !ok {
			t.Errorf("bpftool shows key %s, which FormatValue never produced (ours: %v)", key, ours)
			continue
		}
		if got := normJSONValue(t, d.Formatted.Value); !reflect.DeepEqual(got, want) {
			t.Errorf("key %s:\nbpftool shows %v\nFormatValue   %v", key, got, want)
		}
	}
}

// normJSON turns a value (or raw JSON) into canonical JSON text.
func normJSON(t *testing.T, v any) string {
	t.Helper()
	j, err := json.Marshal(normJSONValue(t, v))
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

// normJSONValue decodes v's JSON into plain maps, slices and json.Numbers.
func normJSONValue(t *testing.T, v any) any {
	t.Helper()
	raw, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return out
}
