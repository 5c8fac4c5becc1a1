package cache

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// ct is one test's own cache: the embedded object loaded and pinned under
// the test's private pin root.
type ct struct {
	t    testing.TB
	coll *ebpf.Collection
	dir  string
}

func load(t testing.TB) *ct {
	t.Helper()
	dir := bpftest.PinRoot(t)
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load cache: %v", err)
	}
	t.Cleanup(coll.Close)
	for name, p := range coll.Programs {
		if err := p.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for name, m := range coll.Maps {
		if err := m.Pin(filepath.Join(dir, strings.TrimPrefix(name, "."))); err != nil {
			t.Fatal(err)
		}
	}
	return &ct{t: t, coll: coll, dir: dir}
}
