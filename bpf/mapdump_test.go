// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for bpf(2)")
	}
}

// readAll reads m with the given number of readers and returns each key
// (a u32) with its value (a u64). With prepared, the entries are decoded
// by the readers (ReadMapPrepared's way) rather than by the consumer.
func readAll(t *testing.T, m *ebpf.Map, readers int, prepared bool) map[uint32]uint64 {
	t.Helper()
	type kv struct {
		k uint32
		v uint64
	}
	decode := func(c *MapChunk) []kv {
		out := make([]kv, c.N)
		for i := range c.N {
			out[i] = kv{binary.NativeEndian.Uint32(c.Key(i)), binary.NativeEndian.Uint64(c.Value(i, 0))}
		}
		return out
	}
	got := map[uint32]uint64{}
	take := func(kvs []kv) error {
		for _, e := range kvs {
			if _, dup := got[e.k]; dup {
				return fmt.Errorf("key %d read twice", e.k)
			}
			got[e.k] = e.v
		}
		return nil
	}
	var err error
	if prepared {
		err = readMapChunks(m, readers, func(c *MapChunk) any { return decode(c) },
			func(it chunkItem) error { return take(it.v.([]kv)) })
	} else {
		err = readMapChunks(m, readers, nil, func(it chunkItem) error { return take(decode(it.c)) })
	}
	if err != nil {
		t.Fatalf("%d readers: %v", readers, err)
	}
	return got
}

// TestReadMapChunksSplit reads hash maps of several fills with one to four
// readers: every entry exactly once, whatever falls near the boundaries
// between the readers' shares of the buckets.
func TestReadMapChunksSplit(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		typ        ebpf.MapType
		maxEntries uint32
		fill       int
	}{
		{ebpf.Hash, 1 << 17, 0},
		{ebpf.Hash, 1 << 17, 1},
		{ebpf.Hash, 1 << 17, 7},
		{ebpf.Hash, 1 << 17, 5000},
		{ebpf.Hash, 100000, 100000},
		{ebpf.LRUHash, 70000, 30000},
	} {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: tc.typ, KeySize: 4, ValueSize: 8, MaxEntries: tc.maxEntries})
		if err != nil {
			t.Fatal(err)
		}
		want := map[uint32]uint64{}
		for i := range tc.fill {
			k := uint32(i*7919) % tc.maxEntries
			if _, dup := want[k]; dup {
				continue
			}
			want[k] = uint64(k) * 3
			if err := m.Put(k, want[k]); err != nil {
				t.Fatal(err)
			}
		}
		for readers := 1; readers <= 4; readers++ {
			got := readAll(t, m, readers, readers%2 == 0)
			if len(got) != len(want) {
				t.Errorf("%v %d/%d, %d readers: %d entries, want %d", tc.typ, tc.fill, tc.maxEntries, readers, len(got), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%v %d readers: key %d = %d, want %d", tc.typ, readers, k, got[k], v)
					break
				}
			}
		}
		m.Close()
	}
}

// TestReadMapChunksStops checks that an error from fn ends the read and
// is returned, with the parallel readers stopped too.
func TestReadMapChunksStops(t *testing.T) {
	requireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1 << 17})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range uint32(50000) {
		m.Put(i, uint64(i))
	}
	stop := errors.New("enough")
	for readers := 1; readers <= 4; readers++ {
		for _, prepare := range []func(*MapChunk) any{nil, func(c *MapChunk) any { return c.N }} {
			calls := 0
			err := readMapChunks(m, readers, prepare, func(chunkItem) error {
				calls++
				return stop
			})
			if !errors.Is(err, stop) || calls != 1 {
				t.Errorf("%d readers: err %v after %d calls", readers, err, calls)
			}
		}
	}
}

// TestHashBuckets checks the bucket count the split assumes against the
// kernel: a batch that starts at the last bucket works, one past it is
// the end of the map.
func TestHashBuckets(t *testing.T) {
	requireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 100000})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nb := hashBuckets(100000)
	if nb != 1<<17 {
		t.Fatalf("hashBuckets(100000) = %d", nb)
	}
	keys, vals := make([]byte, 4*16), make([]byte, 8*16)
	// The kernel walks to the end and reports the bucket after the last.
	cur := nb - 1
	if _, err := lookupBatch(m.FD(), &cur, keys, vals, 16); !errors.Is(err, unix.ENOENT) || cur != nb {
		t.Errorf("batch from bucket %d: cursor %d, %v; want the end at %d", nb-1, cur, err, nb)
	}
	// Past the end it refuses at once and leaves the cursor alone.
	cur = nb
	if n, err := lookupBatch(m.FD(), &cur, keys, vals, 16); !errors.Is(err, unix.ENOENT) || n != 0 || cur != 0 {
		t.Errorf("batch from past the last bucket: %d entries, cursor %d, %v", n, cur, err)
	}
}
