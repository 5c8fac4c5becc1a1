// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

func TestMapCreateFreezeGetnext(t *testing.T) {
	root := bpftest.PinRoot(t)
	path := filepath.Join(root, "made", "counts")

	out := bpfshOK(t, root, "map create "+path+" type hash key 4 value 8 entries 16 name pg_counts")
	if !strings.Contains(out, "(pg_counts, hash) pinned at "+path) {
		t.Errorf("map create says %q", out)
	}
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		t.Fatalf("the created map is not pinned at %s: %v", path, err)
	}
	defer m.Close()
	info, _ := m.Info()
	if info.Type != ebpf.Hash || info.KeySize != 4 || info.ValueSize != 8 || info.MaxEntries != 16 || info.Name != "pg_counts" {
		t.Errorf("created map: %+v", info)
	}
	id := pgMapID(t, m)

	// getnext: the first key without KEY, then the one after; the end.
	bpfshFails(t, root, "map getnext "+path, 1, "map pg_counts is empty")
	bpfshOK(t, root, "map update made/counts key 1 0 0 0 value 7 0 0 0 0 0 0 0; map update made/counts key 2 0 0 0 value 9 0 0 0 0 0 0 0")
	var first, second []byte = make([]byte, 4), make([]byte, 4)
	if err := m.NextKey(nil, first); err != nil {
		t.Fatal(err)
	}
	if err := m.NextKey(first, second); err != nil {
		t.Fatal(err)
	}
	hexOf := func(b []byte) string { return fmt.Sprintf("%02x %02x %02x %02x", b[0], b[1], b[2], b[3]) }
	out = bpfshOK(t, root, fmt.Sprintf("map getnext id %d", id))
	if !strings.Contains(out, "next key:  "+hexOf(first)) {
		t.Errorf("map getnext without a key says:\n%s\nwant next key %s", out, hexOf(first))
	}
	js := decodeJSON[map[string]any](t, bpfshOK(t, root, fmt.Sprintf("map getnext id %d key %d %d %d %d", id, first[0], first[1], first[2], first[3]), "-j"))
	if js["key"] == nil || js["next_key"] == nil {
		t.Errorf("map getnext -j: %v", js)
	}
	out = bpfshOK(t, root, fmt.Sprintf("map getnext made/counts key hex %s", hexOf(first)))
	if !strings.Contains(out, "next key:  "+hexOf(second)) {
		t.Errorf("map getnext after %s says:\n%s\nwant %s", hexOf(first), out, hexOf(second))
	}
	bpfshFails(t, root, fmt.Sprintf("map getnext made/counts key hex %s", hexOf(second)), 1, "is the last in map pg_counts")
	bpfshFails(t, root, "map getnext made/counts key 1 2", 2, "key")
	bpfshFails(t, root, "map getnext made/counts value 1", 2, "expected 'key'")

	// freeze: user space can read, not write.
	out = bpfshOK(t, root, "map freeze pinned "+path)
	if !strings.Contains(out, fmt.Sprintf("froze map %d (pg_counts)", id)) {
		t.Errorf("map freeze says %q", out)
	}
	if out := bpfshOK(t, root, "map show made/counts"); !strings.Contains(out, "frozen") {
		t.Errorf("map show does not say frozen:\n%s", out)
	}
	bpfshFails(t, root, "map update made/counts key 3 0 0 0 value 1 0 0 0 0 0 0 0", 1, "read-only from user space")
	bpfshFails(t, root, "map freeze made/counts", 1, "frozen already")
	bpfshOK(t, root, "map lookup made/counts key 1 0 0 0")

	// A lpm_trie with its flag by name, and a map of maps with its template.
	bpfshOK(t, root, "map create made/trie type lpm_trie key 8 value 4 entries 16 name pg_trie flags no_prealloc")
	bpfshOK(t, root, "map create made/outer type array_of_maps key 4 value 4 entries 2 name pg_outer inner_map made/counts")
	if out := bpfshOK(t, root, "map show made/outer"); !strings.Contains(out, "array_of_maps") {
		t.Errorf("map show of the map of maps:\n%s", out)
	}

	// Typed wrong: 2. Refused by the kernel or the pin: 1.
	bpfshFails(t, root, "map create", 2, "needs the PATH")
	bpfshFails(t, root, "map create made/x type hash key 4 value 8 entries 16", 2, "needs 'name'")
	bpfshFails(t, root, "map create made/x type hashy key 4 value 8 entries 16 name x", 2, `unknown map type "hashy"`, "lru_hash")
	bpfshFails(t, root, "map create made/x type hash key four value 8 entries 16 name x", 2, `key "four" is not a number`)
	bpfshFails(t, root, "map create made/x type hash key 4 value 8 entries 16 name x flags sideways", 2, `unknown flag "sideways"`)
	bpfshFails(t, root, "map create made/x type hash key 4 value 8 entries 16 name x bogus 1", 2, `unexpected "bogus"`)
	bpfshFails(t, root, "map create made/x type array_of_maps key 4 value 4 entries 2 name x", 2, "needs inner_map")
	bpfshFails(t, root, "map create made/x type lpm_trie key 8 value 4 entries 16 name x", 1, "the kernel refused a lpm_trie", "no_prealloc")
	bpfshFails(t, root, "map create made/counts type hash key 4 value 8 entries 16 name x", 1, "exists already")
	if _, err := os.Stat(filepath.Join(root, "made", "x")); err == nil {
		t.Error("a refused map create left a pin")
	}

	// bpftool reads what bpfsh made.
	pgNeedBpftool(t)
	if out := pgBpftoolRun(t, "map", "show", "pinned", filepath.Join(root, "made", "trie")); !strings.Contains(out, "lpm_trie  name pg_trie  flags 0x1") {
		t.Errorf("bpftool map show of the created lpm_trie:\n%s", out)
	}
}
