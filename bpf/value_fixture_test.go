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
	if want := hexBytes(t, "0a000001 409c 0000"); !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
	text, obj := bpf.FormatValue(b, key)
	if want := "{saddr: 16777226, sport: 40000, pad: 0}"; text != want {
		t.Errorf("text %s, want %s", text, want)
	}
	j, _ := json.Marshal(obj)
	if want := `{"saddr":16777226,"sport":40000,"pad":0}`; string(j) != want {
		t.Errorf("json %s, want %s", j, want)
	}
	// bpftool's byte syntax gives the same key.
	for _, words := range [][]string{
		{"0x0a", "0", "0", "1", "0x40", "0x9c", "0", "0"},
		{"hex", "0a", "00", "00", "01", "40", "9c", "00", "00"},
		{"hex", "0a000001409c0000"},
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
	bpftest.RequireRoot(t)
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		t.Skip("skipped: bpftool is not installed (apt-get install bpftool)")
	}
	flowsSpec := fixtureMaps(t)["flows"].Copy()
	flowsSpec.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(flowsSpec)
	if err != nil {
		t.Fatalf("create flows map: %v", err)
	}
	defer m.Close()

	entries := [][2]string{
		{"{saddr: 10.0.0.1, sport: 40000}", `{packets: 3, bytes: 180, comment: "first flow", tags: [1, 2]}`},
		{"{saddr: 255.255.255.255, sport: 65535, pad: 65535}", `{packets: 18446744073709551615, comment: "0123456789abcdef", tags: [255, 255, 255, 255]}`},
	}
	ours := map[string]any{}
	for _, e := range entries {
		k, err := bpf.ParseValue([]string{e[0]}, flowsSpec.Key, int(flowsSpec.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		v, err := bpf.ParseValue([]string{e[1]}, flowsSpec.Value, int(flowsSpec.ValueSize))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Put(k, v); err != nil {
			t.Fatalf("put: %v", err)
		}
		_, kobj := bpf.FormatValue(k, flowsSpec.Key)
		_, vobj := bpf.FormatValue(v, flowsSpec.Value)
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
			t.Errorf("key %s: bpftool shows value %v, FormatValue %v", key, got, want)
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
