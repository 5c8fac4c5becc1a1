// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/fixture"
	"github.com/bpfsh/bpfsh/commands"
)

// mapFixture loads the fixture pinned as <root>/fx/NAME and returns root.
func mapFixture(t *testing.T) (string, *fixture.FixtureObjects) {
	t.Helper()
	root := bpftest.PinRoot(t)
	dir := filepath.Join(root, "fx")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, bpftest.Fixture(t, dir)
}

// mapFormatted is what bpf.FormatValue makes of data, as it reads in JSON:
// the tests compare against it so that they check the plumbing of map
// commands, whatever the value codec prints.
func mapFormatted(t *testing.T, data []byte, typ btf.Type) any {
	t.Helper()
	_, obj := bpf.FormatValue(data, typ)
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	json.Unmarshal(b, &v)
	return v
}

func mapJSONEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// mapRequireTypedLiterals skips tests of BTF-typed literals while bpf's value
// codec only knows hex.
func mapDescribe(t *testing.T, m *ebpf.Map) *bpf.MapDetails {
	t.Helper()
	d, err := bpf.DescribeMap(m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mapLE32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func mapLE64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

func mapHexWords(b []byte) string {
	var s []string
	for _, c := range b {
		s = append(s, strconv.FormatUint(uint64(c)|0x100, 16)[1:])
	}
	return "hex " + strings.Join(s, " ")
}

func TestMapShowAndList(t *testing.T) {
	root, objs := mapFixture(t)
	d := mapDescribe(t, objs.Flows)
	if d.Key == nil || d.Value == nil || d.KeyTypeID == 0 {
		t.Fatalf("flows has no BTF key/value types: %+v", d)
	}

	out := bpfshOK(t, root, "map show fx/flows")
	for _, want := range []string{"id:", strconv.Itoa(int(d.ID)), "type:", "hash", "name:", "flows",
		"struct flow_key, 8 bytes", "struct flow_stats, 40 bytes", "max_entries:  1024", filepath.Join(root, "fx/flows")} {
		if !strings.Contains(out, want) {
			t.Errorf("map show: no %q in\n%s", want, out)
		}
	}

	j := decodeJSON[map[string]any](t, bpfshOK(t, root, "map show fx/flows", "-j"))
	want := map[string]any{"id": float64(d.ID), "type": "hash", "name": "flows", "flags": float64(0),
		"bytes_key": float64(8), "bytes_value": float64(40), "max_entries": float64(1024), "frozen": float64(0),
		"btf_id": float64(d.BTFID), "key_type": "struct flow_key", "value_type": "struct flow_stats"}
	for k, v := range want {
		if j[k] != v {
			t.Errorf("map show -j: %s = %v, want %v", k, j[k], v)
		}
	}
	if j["bytes_memlock"].(float64) <= 0 {
		t.Errorf("map show -j: bytes_memlock %v", j["bytes_memlock"])
	}
	if !mapJSONEqual(j["pinned"], []string{filepath.Join(root, "fx/flows")}) {
		t.Errorf("map show -j: pinned %v", j["pinned"])
	}

	// By id, too; and "show" without a map is "list".
	if byID := bpfshOK(t, root, "map show id "+strconv.Itoa(int(d.ID))); byID != out {
		t.Errorf("map show id differs from pinned:\n%s\n%s", byID, out)
	}
	for _, line := range []string{"map list", "map show"} {
		list := decodeJSON[[]map[string]any](t, bpfshOK(t, root, line, "-j"))
		found := false
		for _, m := range list {
			if m["id"] == float64(d.ID) {
				found = true
				if m["name"] != "flows" || !mapJSONEqual(m["pinned"], []string{filepath.Join(root, "fx/flows")}) {
					t.Errorf("%s: %v", line, m)
				}
			}
		}
		if !found {
			t.Errorf("%s -j does not list map %d", line, d.ID)
		}
	}
	text := bpfshOK(t, root, "map list")
	if !strings.HasPrefix(text, "ID ") || !strings.Contains(text, filepath.Join(root, "fx/jobs")) {
		t.Errorf("map list:\n%s", text)
	}
	// Unique prefixes work as in bpftool.
	if p := bpfshOK(t, root, "m s fx/flows"); p != out {
		t.Errorf("'m s' differs from 'map show'")
	}
}

func TestMapUpdateLookupDelete(t *testing.T) {
	root, objs := mapFixture(t)
	cd := mapDescribe(t, objs.Counters)

	// Array: update by bpfsh, read by the kernel, and back by bpfsh.
	bpfshOK(t, root, "map update fx/counters key hex 01 00 00 00 value hex 2a 00 00 00 00 00 00 00")
	var got uint64
	if err := objs.Counters.Lookup(uint32(1), &got); err != nil || got != 42 {
		t.Fatalf("kernel has counters[1] = %d (%v), want 42", got, err)
	}
	j := decodeJSON[map[string]any](t, bpfshOK(t, root, "map lookup fx/counters key hex 01 00 00 00", "-j"))
	if !mapJSONEqual(j["key"], mapFormatted(t, mapLE32(1), cd.Key)) || !mapJSONEqual(j["value"], mapFormatted(t, mapLE64(42), cd.Value)) {
		t.Errorf("map lookup -j: %v", j)
	}
	text := bpfshOK(t, root, "map lookup fx/counters key hex 01 00 00 00")
	vt, _ := bpf.FormatValue(mapLE64(42), cd.Value)
	if !strings.Contains(text, "value:") || !strings.Contains(text, vt) {
		t.Errorf("map lookup: %q, want value %q", text, vt)
	}
	// bpftool's byte syntax without "hex" works as well, once the codec
	// knows it; the hex form must always work.
	bpfshOK(t, root, "map update fx/counters key hex 01 00 00 00 value hex 2b 00 00 00 00 00 00 00 exist")
	objs.Counters.Lookup(uint32(1), &got)
	if got != 43 {
		t.Errorf("update ... exist: counters[1] = %d, want 43", got)
	}
	bpfshFails(t, root, "map update fx/counters key hex 01 00 00 00 value hex 01 00 00 00 00 00 00 00 noexist", 1, "noexist")
	bpfshFails(t, root, "map update fx/counters key hex 08 00 00 00 value hex 01 00 00 00 00 00 00 00", 1, "past the end", "max_entries 8")
	bpfshFails(t, root, "map delete fx/counters key hex 01 00 00 00", 1, "cannot delete")

	// Hash: add, replace, delete, miss.
	key := append(mapLE32(0x0100000a), 0x50, 0, 0, 0)
	val := make([]byte, 40)
	val[0] = 7
	bpfshOK(t, root, "map update fx/flows key "+mapHexWords(key)+" value "+mapHexWords(val)+" noexist")
	raw := make([]byte, 40)
	if err := objs.Flows.Lookup(key, raw); err != nil || raw[0] != 7 {
		t.Fatalf("kernel flows entry %x (%v)", raw, err)
	}
	bpfshFails(t, root, "map update fx/flows key "+mapHexWords(key)+" value "+mapHexWords(val)+" noexist", 1, "already")
	other := append(mapLE32(9), 0, 0, 0, 0)
	bpfshFails(t, root, "map update fx/flows key "+mapHexWords(other)+" value "+mapHexWords(val)+" exist", 1, "key not found")
	bpfshOK(t, root, "map delete fx/flows key "+mapHexWords(key))
	if err := objs.Flows.Lookup(key, raw); err == nil {
		t.Errorf("key still there after map delete")
	}
	bpfshFails(t, root, "map delete fx/flows key "+mapHexWords(key), 1, "key not found")
	bpfshFails(t, root, "map lookup fx/flows key "+mapHexWords(key), 1, "key not found", "flows")

	// In JSON mode the miss is bpftool's error object.
	code, out, _ := bpfsh(t, root, "-j", "-c", "map lookup fx/flows key "+mapHexWords(key))
	e := decodeJSON[map[string]string](t, out)
	if code != 1 || !strings.Contains(e["error"], "key not found") {
		t.Errorf("-j miss: exit %d, %q", code, out)
	}
}

func TestMapTypedLiterals(t *testing.T) {
	root, objs := mapFixture(t)
	bpfshOK(t, root, `map update fx/flows key {saddr: 10.0.0.1, sport: 1} value {packets: 5, comment: "hi"}`)
	key := []byte{10, 0, 0, 1, 0, 1, 0, 0} // saddr and sport in network order, as named
	raw := make([]byte, 40)
	if err := objs.Flows.Lookup(key, raw); err != nil {
		t.Fatalf("kernel has no entry for %x: %v", key, err)
	}
	if binary.NativeEndian.Uint64(raw) != 5 || string(raw[16:18]) != "hi" {
		t.Errorf("kernel value %x", raw)
	}
	out := bpfshOK(t, root, "map dump fx/flows", "-j")
	entries := decodeJSON[[]map[string]map[string]any](t, out)
	if len(entries) != 1 || entries[0]["value"]["packets"] != float64(5) || entries[0]["value"]["comment"] != "hi" || entries[0]["key"]["sport"] != float64(256) { // JSON: the raw number, as bpftool
		t.Errorf("map dump -j: %s", out)
	}
	j := decodeJSON[map[string]map[string]any](t, bpfshOK(t, root, `map lookup fx/flows key {saddr: 10.0.0.1, sport: 1}`, "-j"))
	if j["value"]["packets"] != float64(5) {
		t.Errorf("map lookup -j: %v", j)
	}
	bpfshOK(t, root, "map update fx/counters key 3 value 99")
	var got uint64
	objs.Counters.Lookup(uint32(3), &got)
	if got != 99 {
		t.Errorf("counters[3] = %d", got)
	}
	bpfshFails(t, root, `map update fx/flows key {saddr: 10.0.0.1, nosuch: 1} value {}`, 2, "nosuch")
	bpfshOK(t, root, `map delete fx/flows key {saddr: 10.0.0.1, sport: 1}`)
}

func TestMapDumpPerCPU(t *testing.T) {
	root, objs := mapFixture(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	d := mapDescribe(t, objs.Percpu)
	// A different value on each CPU, written straight into the kernel.
	per := make([]uint64, cpus)
	var sum uint64
	for i := range per {
		per[i] = uint64(10 * (i + 1))
		sum += per[i]
	}
	if err := objs.Percpu.Put(uint32(7), per); err != nil {
		t.Fatal(err)
	}
	out := bpfshOK(t, root, "map dump fx/percpu", "-j")
	type cpuVal struct {
		CPU   int `json:"cpu"`
		Value any `json:"value"`
	}
	entries := decodeJSON[[]struct {
		Key    any      `json:"key"`
		Values []cpuVal `json:"values"`
		Sum    uint64   `json:"sum"`
	}](t, out)
	if len(entries) != 1 {
		t.Fatalf("map dump -j: %s", out)
	}
	e := entries[0]
	if e.Sum != sum || len(e.Values) != cpus || !mapJSONEqual(e.Key, mapFormatted(t, mapLE32(7), d.Key)) {
		t.Errorf("per-CPU entry: %s (want sum %d over %d CPUs)", out, sum, cpus)
	}
	for i, v := range e.Values {
		if v.CPU != i || !mapJSONEqual(v.Value, mapFormatted(t, mapLE64(per[i]), d.Value)) {
			t.Errorf("cpu %d: %v", i, v)
		}
	}
	text := bpfshOK(t, root, "map dump fx/percpu")
	if !strings.Contains(text, "SUM") || !strings.Contains(text, " "+strconv.FormatUint(sum, 10)+" ") {
		t.Errorf("map dump text:\n%s", text)
	}
	// update puts one value on every CPU; lookup sums them.
	bpfshOK(t, root, "map update fx/percpu key hex 08 00 00 00 value hex 05 00 00 00 00 00 00 00")
	var back []uint64
	if err := objs.Percpu.Lookup(uint32(8), &back); err != nil {
		t.Fatal(err)
	}
	for i, v := range back {
		if v != 5 {
			t.Errorf("cpu %d holds %d after update, want 5", i, v)
		}
	}
	lk := decodeJSON[map[string]any](t, bpfshOK(t, root, "map lookup fx/percpu key hex 08 00 00 00", "-j"))
	if lk["sum"] != float64(5*cpus) {
		t.Errorf("map lookup -j sum: %v", lk)
	}
}

func TestMapQueueAndStack(t *testing.T) {
	root, objs := mapFixture(t)
	jd := mapDescribe(t, objs.Jobs)
	ud := mapDescribe(t, objs.Undo)

	bpfshFails(t, root, "map pop fx/jobs", 1, "queue jobs is empty")
	out := bpfshOK(t, root, "map dump fx/jobs")
	if !strings.Contains(out, "head:") || !strings.Contains(out, "(empty)") || !strings.Contains(out, "only at its head") {
		t.Errorf("dump of an empty queue:\n%s", out)
	}
	for i := uint32(1); i <= 3; i++ {
		bpfshOK(t, root, "map push fx/jobs value "+mapHexWords(mapLE32(i)))
		bpfshOK(t, root, "map push fx/undo value "+mapHexWords(mapLE64(uint64(i))))
	}
	// Queue: first in, first out; peek does not consume.
	for range 2 {
		j := decodeJSON[map[string]any](t, bpfshOK(t, root, "map peek fx/jobs", "-j"))
		if !mapJSONEqual(j["value"], mapFormatted(t, mapLE32(1), jd.Value)) {
			t.Errorf("map peek -j: %v", j)
		}
	}
	dj := decodeJSON[map[string]any](t, bpfshOK(t, root, "map dump fx/jobs", "-j"))
	if !mapJSONEqual(dj["head"], mapFormatted(t, mapLE32(1), jd.Value)) || dj["type"] != "queue" {
		t.Errorf("map dump -j of a queue: %v", dj)
	}
	for _, want := range []uint32{1, 2} {
		j := decodeJSON[map[string]any](t, bpfshOK(t, root, "map pop fx/jobs", "-j"))
		if !mapJSONEqual(j["value"], mapFormatted(t, mapLE32(want), jd.Value)) {
			t.Errorf("map pop -j = %v, want %d", j, want)
		}
	}
	// bpftool's names for the same.
	bpfshOK(t, root, "map enqueue fx/jobs value "+mapHexWords(mapLE32(4)))
	j := decodeJSON[map[string]any](t, bpfshOK(t, root, "map dequeue fx/jobs", "-j"))
	if !mapJSONEqual(j["value"], mapFormatted(t, mapLE32(3), jd.Value)) {
		t.Errorf("map dequeue: %v", j)
	}
	// Stack: last in, first out.
	j = decodeJSON[map[string]any](t, bpfshOK(t, root, "map pop fx/undo", "-j"))
	if !mapJSONEqual(j["value"], mapFormatted(t, mapLE64(3), ud.Value)) {
		t.Errorf("stack pop: %v", j)
	}
	sd := bpfshOK(t, root, "map dump fx/undo")
	if !strings.Contains(sd, "top:") {
		t.Errorf("stack dump:\n%s", sd)
	}
	// A full queue refuses a push, unless told to drop the oldest.
	objs.Jobs.LookupAndDelete(nil, new(uint32))
	for i := uint32(100); i < 116; i++ {
		if err := objs.Jobs.Update(nil, i, ebpf.UpdateAny); err != nil {
			t.Fatalf("fill queue: %v", err)
		}
	}
	bpfshFails(t, root, "map push fx/jobs value "+mapHexWords(mapLE32(999)), 1, "queue jobs is full (max_entries 16)")
	bpfshOK(t, root, "map push fx/jobs value "+mapHexWords(mapLE32(999))+" exist")
	var head uint32
	objs.Jobs.Lookup(nil, &head)
	if head != 101 {
		t.Errorf("after push exist on a full queue the head is %d, want 101", head)
	}
	// Keyed commands on a queue, and queue commands on a hash, say what to use.
	bpfshFails(t, root, "map lookup fx/jobs key hex 00", 1, "has no keys", "map peek")
	bpfshFails(t, root, "map peek fx/flows", 1, "queue and stack", "hash")
}

func TestMapDumpRingBuf(t *testing.T) {
	root, objs := mapFixture(t)
	// A socket filter that writes one 8-byte record to the ring buffer,
	// run once through BPF_PROG_TEST_RUN.
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, 0x11223344),
			asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
			asm.LoadMapPtr(asm.R1, objs.Events.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -8),
			asm.Mov.Imm(asm.R3, 8),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load ringbuf writer: %v", err)
	}
	defer prog.Close()
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
		t.Fatalf("run ringbuf writer: %v", err)
	}
	j := decodeJSON[struct {
		Type         string `json:"type"`
		Size         uint64 `json:"size"`
		ConsumerPos  uint64 `json:"consumer_pos"`
		ProducerPos  uint64 `json:"producer_pos"`
		PendingBytes uint64 `json:"pending_bytes"`
		Records      []struct {
			Len  int    `json:"len"`
			Data string `json:"data"`
		} `json:"records"`
	}](t, bpfshOK(t, root, "map dump fx/events", "-j"))
	if j.Type != "ringbuf" || j.Size != 4096 || j.ProducerPos != 16 || j.ConsumerPos != 0 || j.PendingBytes != 16 {
		t.Errorf("ringbuf state: %+v", j)
	}
	if len(j.Records) != 1 || j.Records[0].Len != 8 || j.Records[0].Data != "4433221100000000" {
		t.Errorf("ringbuf records: %+v", j.Records)
	}
	// Dumping consumed nothing.
	out := bpfshOK(t, root, "map dump fx/events")
	if !strings.Contains(out, "consumer_pos:  0") || !strings.Contains(out, "4433221100000000") {
		t.Errorf("second dump:\n%s", out)
	}
}

func TestMapPin(t *testing.T) {
	root, objs := mapFixture(t)
	d := mapDescribe(t, objs.Counters)
	id := strconv.Itoa(int(d.ID))
	check := func(path string) {
		t.Helper()
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			t.Fatalf("nothing pinned at %s: %v", path, err)
		}
		defer m.Close()
		if mapDescribe(t, m).ID != d.ID {
			t.Errorf("%s is not map %s", path, id)
		}
	}
	abs := filepath.Join(root, "again", "counters")
	out := bpfshOK(t, root, "map pin id "+id+" "+abs)
	if !strings.Contains(out, abs) {
		t.Errorf("map pin: %q", out)
	}
	check(abs)
	// bpftool's "map pin ID PATH", a REF, and a path relative to the pin root.
	bpfshOK(t, root, "map pin "+id+" "+filepath.Join(root, "bare"))
	check(filepath.Join(root, "bare"))
	bpfshOK(t, root, "map pin fx/counters rel/c")
	check(filepath.Join(root, "rel", "c"))

	bpfshFails(t, root, "map pin id "+id+" "+abs, 1, abs+" exists already")
	outside := filepath.Join(t.TempDir(), "sub", "m")
	bpfshFails(t, root, "map pin id "+id+" "+outside, 1, "is not on a bpf file system")
	if _, err := os.Stat(filepath.Dir(outside)); err == nil {
		t.Errorf("a failed pin left %s behind", filepath.Dir(outside))
	}
	bpfshFails(t, root, "map pin id "+id, 2, "PATH")
}

func TestMapErrors(t *testing.T) {
	root, _ := mapFixture(t)
	cases := []struct {
		line  string
		code  int
		wants []string
	}{
		{"map show fx/nope", 1, []string{"nothing is pinned at " + filepath.Join(root, "fx/nope")}},
		{"map dump fx/xdp_count", 1, []string{"is a pinned program, not a map"}},
		{"map show id 4294967295", 1, []string{"no such object"}},
		{"map lookup fx/counters key hex 01 02 03", 2, []string{"key for map counters", "__u32", "3", "4"}},
		{"map lookup fx/flows key hex 01 02 03", 2, []string{"key for map flows", "struct flow_key", "8"}},
		{"map lookup fx/counters key hex zz", 2, []string{"key for map counters"}},
		{"map update fx/counters key hex 00 00 00 00 value hex 01", 2, []string{"value for map counters", "__u64", "8"}},
		{"map lookup fx/counters", 2, []string{"needs a key"}},
		{"map update fx/counters key hex 00 00 00 00", 2, []string{"needs a value"}},
		{"map lookup fx/counters 1 2", 2, []string{"expected 'key'"}},
		{"map lookup", 2, []string{"needs a map"}},
		{"map dump fx/flows extra", 2, []string{"extra"}},
		{"map frobnicate", 2, []string{"unknown map sub-command"}},
		{"map show pinned /tmp", 1, []string{"not a map"}},
	}
	for _, c := range cases {
		bpfshFails(t, root, c.line, c.code, c.wants...)
	}

	// A small hash map filled up: E2BIG is "map is full".
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "tiny", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(filepath.Join(root, "tiny")); err != nil {
		t.Fatal(err)
	}
	m.Put(uint32(1), uint32(1))
	m.Put(uint32(2), uint32(2))
	bpfshFails(t, root, "map update "+filepath.Join(root, "tiny")+" key hex 03 00 00 00 value hex 03 00 00 00", 1, "map tiny is full (max_entries 2)")

	// A frozen map refuses changes from user space.
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	bpfshFails(t, root, "map delete "+filepath.Join(root, "tiny")+" key hex 01 00 00 00", 1, "read-only")
	bpfshFails(t, root, "map update "+filepath.Join(root, "tiny")+" key hex 01 00 00 00 value hex 03 00 00 00", 1, "read-only")
	if out := bpfshOK(t, root, "map show "+filepath.Join(root, "tiny")); !strings.Contains(out, "frozen:") {
		t.Errorf("map show of a frozen map:\n%s", out)
	}
}

// TestMapUpdateObjects stores a program in a program array and a map in a
// map of maps by reference, as bpftool's "value pinned PATH" does.
func TestMapUpdateObjects(t *testing.T) {
	root, objs := mapFixture(t)
	pa, err := ebpf.NewMap(&ebpf.MapSpec{Name: "jump", Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	pa.Pin(filepath.Join(root, "jump"))
	outer, err := ebpf.NewMap(&ebpf.MapSpec{Name: "outer", Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 2,
		InnerMap: &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	outer.Pin(filepath.Join(root, "outer"))

	bpfshOK(t, root, "map update "+filepath.Join(root, "jump")+" key hex 01 00 00 00 value fx/sock_count")
	info, _ := objs.SockCount.Info()
	progID, _ := info.ID()
	var got uint32
	if err := pa.Lookup(uint32(1), &got); err != nil || got != uint32(progID) {
		t.Errorf("program array slot 1 holds %d (%v), want program %d", got, err, progID)
	}
	bpfshOK(t, root, "map update "+filepath.Join(root, "outer")+" key hex 00 00 00 00 value pinned "+filepath.Join(root, "fx/counters"))
	if err := outer.Lookup(uint32(0), &got); err != nil || got != uint32(mapDescribe(t, objs.Counters).ID) {
		t.Errorf("map of maps slot 0 holds %d (%v), want map %d", got, err, mapDescribe(t, objs.Counters).ID)
	}
	bpfshFails(t, root, "map update "+filepath.Join(root, "jump")+" key hex 00 00 00 00 value fx/nope", 1, "nothing is pinned")
	bpfshFails(t, root, "map update "+filepath.Join(root, "jump")+" key hex 00 00 00 00 value hex 01 00 00 00", 2, "the value is a program")
}

func TestMapNotRoot(t *testing.T) {
	root, objs := mapFixture(t)
	dir := nobodyDir(t)
	id := strconv.Itoa(int(mapDescribe(t, objs.Counters).ID))
	for _, line := range []string{"map list", "map show id " + id, "map dump " + filepath.Join(root, "fx/counters")} {
		cmd := nobodyCmd(dir, "-c", line)
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("%q as nobody: exit %d (%v), want 1: %s", line, code, err, out)
		}
		if !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), "root") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("%q as nobody: %q", line, out)
		}
	}
}

func TestMapBPFFSUnmounted(t *testing.T) {
	bpftest.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("skipped: unshare(1) from util-linux is not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// In a private mount namespace, take bpffs away: nothing outside sees
	// it. bpfsh there is this test binary, as TestMain runs it. The last
	// line is the file system's magic in hex (BPF_FS_MAGIC), which GNU and
	// busybox stat both print; only GNU's knows the name bpf_fs.
	script := `umount -l /sys/fs/bpf || exit 99
"$0" -- map show pinned /sys/fs/bpf/bpfsh/x/y; echo "status $?"
"$0" -- map pin id "$1" /sys/fs/bpf/t/m; echo "status $?"
stat -f -c %t /sys/fs/bpf`
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, self, strconv.Itoa(int(mapDescribe(t, m).ID)))
	cmd.Env = append(os.Environ(), helperEnv+"=bpfsh")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("skipped: cannot make a private mount namespace without bpffs: %v %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "bpffs is not mounted at /sys/fs/bpf") || !strings.Contains(lines[0], "mount -t bpf bpf /sys/fs/bpf") ||
		lines[1] != "status 1" || !strings.Contains(lines[2], "pinned map") || lines[3] != "status 0" || lines[4] != "cafe4a11" {
		t.Errorf("without bpffs:\n%s", out)
	}
}

func TestMapDump100k(t *testing.T) {
	root := bpftest.PinRoot(t)
	const n = 100000
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "big", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: n})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	keys := make([]uint32, n)
	vals := make([]uint64, n)
	for i := range keys {
		keys[i] = uint32(i)
		vals[i] = uint64(i) * 3
	}
	if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "big")
	if err := m.Pin(path); err != nil {
		t.Fatal(err)
	}
	out := bpfshOK(t, root, "map dump "+path, "-j")
	var entries []struct{ Key, Value any }
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("dump -j is not JSON: %v", err)
	}
	if len(entries) != n {
		t.Fatalf("dump -j has %d entries, want %d", len(entries), n)
	}
	want := map[string]any{}
	for _, k := range []uint32{0, 1, 4242, n - 1} {
		kb, _ := json.Marshal(mapFormatted(t, mapLE32(k), nil))
		want[string(kb)] = mapFormatted(t, mapLE64(uint64(k)*3), nil)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		kb, _ := json.Marshal(e.Key)
		if seen[string(kb)] {
			t.Fatalf("key %s twice", kb)
		}
		seen[string(kb)] = true
		if w, ok := want[string(kb)]; ok && !mapJSONEqual(e.Value, w) {
			t.Errorf("key %s: value %v, want %v", kb, e.Value, w)
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("key %s missing", k)
		}
	}
	text := bpfshOK(t, root, "map dump "+path)
	if lines := strings.Count(text, "\n"); lines != n+1 {
		t.Errorf("text dump has %d lines, want header + %d", lines, n)
	}
}

// TestMapDumpWithoutBatch dumps a map type the kernel has no batch lookup
// for (a hash of network devices), which bpfsh reads key by key.
func TestMapDumpWithoutBatch(t *testing.T) {
	root := bpftest.PinRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "devs", Type: ebpf.DevMapHash, KeySize: 4, ValueSize: 4, MaxEntries: 5000})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var c ebpf.MapBatchCursor
	if _, err := m.BatchLookup(&c, make([]uint32, 1), make([]uint32, 1), nil); !errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("skipped: devmap_hash has batch lookup on this kernel (%v); nothing left to test the fallback with", err)
	}
	const n = 4500 // more than one chunk
	for i := range uint32(n) {
		if err := m.Put(i, uint32(1)); err != nil { // ifindex 1: lo
			t.Fatal(err)
		}
	}
	path := filepath.Join(root, "devs")
	if err := m.Pin(path); err != nil {
		t.Fatal(err)
	}
	entries := decodeJSON[[]map[string]any](t, bpfshOK(t, root, "map dump "+path, "-j"))
	if len(entries) != n {
		t.Fatalf("dump without batch: %d entries, want %d", len(entries), n)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		k, _ := json.Marshal(e["key"])
		seen[string(k)] = true
		if !mapJSONEqual(e["value"], mapFormatted(t, mapLE32(1), nil)) {
			t.Fatalf("entry %v", e)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct keys, want %d", len(seen), n)
	}
}

func TestMapInteropBpfshToBpftool(t *testing.T) {
	bpftool := mapRequireBpftool(t)
	root, objs := mapFixture(t)
	path := filepath.Join(root, "fx", "counters")
	bpfshOK(t, root, "map update fx/counters key hex 02 00 00 00 value hex 4d 00 00 00 00 00 00 00")

	out, err := exec.Command(bpftool, "-j", "map", "lookup", "pinned", path, "key", "hex", "02", "00", "00", "00").CombinedOutput()
	if err != nil {
		t.Fatalf("bpftool lookup: %v: %s", err, out)
	}
	var lk struct {
		Key   []string `json:"key"`
		Value []string `json:"value"`
	}
	json.Unmarshal(out, &lk)
	if strings.Join(lk.Value, " ") != "0x4d 0x00 0x00 0x00 0x00 0x00 0x00 0x00" {
		t.Errorf("bpftool sees %s", out)
	}

	out, err = exec.Command(bpftool, "-j", "map", "show", "pinned", path).CombinedOutput()
	if err != nil {
		t.Fatalf("bpftool show: %v: %s", err, out)
	}
	theirs := decodeJSON[map[string]any](t, string(out))
	ours := decodeJSON[map[string]any](t, bpfshOK(t, root, "map show fx/counters", "-j"))
	for _, k := range []string{"id", "type", "name", "flags", "bytes_key", "bytes_value", "max_entries", "btf_id", "frozen"} {
		if theirs[k] != ours[k] {
			t.Errorf("%s: bpftool says %v, bpfsh %v", k, theirs[k], ours[k])
		}
	}
	if ours["id"] != float64(mapDescribe(t, objs.Counters).ID) {
		t.Errorf("id %v", ours["id"])
	}
}

func TestMapInteropBpftoolToBpfsh(t *testing.T) {
	bpftool := mapRequireBpftool(t)
	root := bpftest.PinRoot(t)
	path := filepath.Join(root, "bt")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bpftool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("bpftool %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("map", "create", path, "type", "hash", "key", "4", "value", "8", "entries", "16", "name", "bt_test")
	run("map", "update", "pinned", path, "key", "hex", "01", "00", "00", "00", "value", "hex", "2a", "00", "00", "00", "00", "00", "00", "00")

	theirs := decodeJSON[map[string]any](t, run("-j", "map", "show", "pinned", path))
	ours := decodeJSON[map[string]any](t, bpfshOK(t, root, "map show "+path, "-j"))
	for _, k := range []string{"id", "type", "name", "flags", "bytes_key", "bytes_value", "max_entries"} {
		if theirs[k] != ours[k] {
			t.Errorf("%s: bpftool says %v, bpfsh %v", k, theirs[k], ours[k])
		}
	}
	if ours["name"] != "bt_test" || ours["btf_id"] != nil {
		t.Errorf("bpfsh map show: %v", ours)
	}
	entries := decodeJSON[[]map[string]any](t, bpfshOK(t, root, "map dump "+path, "-j"))
	if len(entries) != 1 || !mapJSONEqual(entries[0]["key"], mapFormatted(t, mapLE32(1), nil)) || !mapJSONEqual(entries[0]["value"], mapFormatted(t, mapLE64(42), nil)) {
		t.Errorf("bpfsh dump of bpftool's map: %v", entries)
	}
	// bpfsh updates it; bpftool reads the change.
	bpfshOK(t, root, "map update "+path+" key hex 02 00 00 00 value hex 07 00 00 00 00 00 00 00")
	out := run("-j", "map", "lookup", "pinned", path, "key", "hex", "02", "00", "00", "00")
	if !strings.Contains(out, `"value":["0x07","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]`) {
		t.Errorf("bpftool lookup after bpfsh update: %s", out)
	}
	if n := len(decodeJSON[[]any](t, run("-j", "map", "dump", "pinned", path))); n != 2 {
		t.Errorf("bpftool dump has %d entries, want 2", n)
	}
	bt := bpfshOK(t, root, "btf dump "+path)
	if !strings.Contains(bt, "has no BTF") || !strings.Contains(bt, "keys are 4 bytes, values 8 bytes") {
		t.Errorf("btf dump of a map without BTF: %q", bt)
	}
}

func mapRequireBpftool(t *testing.T) string {
	t.Helper()
	bpftest.RequireRoot(t)
	const path = "/usr/sbin/bpftool"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("skipped: %s not installed (Debian package bpftool)", path)
	}
	return path
}

func TestBTFDump(t *testing.T) {
	root, objs := mapFixture(t)
	out := bpfshOK(t, root, "btf dump fx/flows")
	for _, want := range []string{"struct flow_key {\n\t__u32 saddr;\n\t__u16 sport;\n\t__u16 pad;\n};",
		"typedef unsigned int __u32;", "char comment[16];", "__u8 tags[4];", "struct flow_stats {"} {
		if !strings.Contains(out, want) {
			t.Errorf("btf dump fx/flows lacks %q:\n%s", want, out)
		}
	}
	// Types come before their use.
	if strings.Index(out, "typedef unsigned int __u32;") > strings.Index(out, "struct flow_key {") {
		t.Errorf("__u32 defined after its use:\n%s", out)
	}
	if alias := bpfshOK(t, root, "btf dump map fx/flows"); alias != out {
		t.Errorf("'btf dump map' differs")
	}
	j := decodeJSON[map[string]any](t, bpfshOK(t, root, "btf dump fx/flows", "-j"))
	if j["key_type"] != "struct flow_key" || j["value_type"] != "struct flow_stats" || j["c"] != out {
		t.Errorf("btf dump -j: %v", j)
	}
	prog := bpfshOK(t, root, "btf dump fx/xdp_count")
	if !strings.Contains(prog, "int xdp_count(struct xdp_md *ctx);") || !strings.Contains(prog, "struct xdp_md {") {
		t.Errorf("btf dump of a program:\n%s", prog)
	}
	byID := bpfshOK(t, root, "btf dump id "+strconv.Itoa(int(mapDescribe(t, objs.Flows).BTFID)))
	if !strings.Contains(byID, "struct flow_key {") {
		t.Errorf("btf dump id:\n%s", byID)
	}
	bpfshFails(t, root, "btf dump fx/nope", 1, "nothing is pinned")
	bpfshFails(t, root, "btf dump id 1 2", 2)
	bpfshFails(t, root, "btf dump fx/flows format raw", 2, "format c")
}

// TestMapHelp checks that every map and btf sub-command explains itself.
func TestMapHelp(t *testing.T) {
	for _, c := range commands.All() {
		if c.Name != "map" && c.Name != "btf" {
			continue
		}
		for _, sub := range c.Subs {
			if sub.Short == "" || sub.Long == "" || sub.Example == "" || sub.Run == nil {
				t.Errorf("%s %s lacks help text", c.Name, sub.Name)
			}
			if !strings.HasPrefix(sub.Example, c.Name+" "+sub.Name) {
				t.Errorf("%s %s: example %q", c.Name, sub.Name, sub.Example)
			}
			out := bpfshOK(t, "/sys/fs/bpf", "help "+c.Name+" "+sub.Name)
			if !strings.Contains(out, "usage: "+c.Name+" "+sub.Name) {
				t.Errorf("help %s %s: %q", c.Name, sub.Name, out)
			}
		}
	}
}
