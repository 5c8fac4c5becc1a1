// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/cache"
)

// Bad words and values are refused with one line each, before anything
// is made (exit 2: usage).
func TestCacheBenchRefusesBadArgs(t *testing.T) {
	cmd := cacheBenchCommand()
	for _, args := range [][]string{
		{"clients"}, {"clients", "0"}, {"depth", "0"}, {"depth", "257"}, {"depth"}, {"keys", "70000"}, {"value", "8"}, {"value", "1025"},
		{"mix", "3"}, {"mix", "0:0"}, {"zipf", "1"}, {"zipf", "-2"}, {"for", "10ms"}, {"bogus"},
	} {
		_, err := cmd.Run(&Session{}, args)
		var u *UsageError
		if err == nil || !errors.As(err, &u) || strings.Contains(err.Error(), "\n") {
			t.Errorf("cache bench %v: %v, want one usage line", args, err)
		}
	}
}

// A short bench through the command: both phases measured, the cache
// answers hits, the table and its JSON carry the figures.
func TestCacheBenchShort(t *testing.T) {
	bpftest.RequireRoot(t)
	if err := cache.MemcachedMissing(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	res, err := cacheBenchCommand().Run(&Session{}, strings.Fields("clients 2 depth 4 keys 200 value 32 for 300ms"))
	if err != nil {
		t.Fatal(err)
	}
	tab, ok := res.(*Table)
	if !ok {
		t.Fatalf("result %T, want a table", res)
	}
	r := tab.JSON.(*cache.BenchResult)
	if r.Alone.Load.Get.Count == 0 || r.Cached.Load.Hit.Count == 0 || r.Alone.Load.Hit.Count != 0 || r.Cached.HitRate <= 0 || r.Throughput <= 0 {
		t.Errorf("alone %d gets %d hits; cached %d hits, hit rate %g, ratio %g", r.Alone.Load.Get.Count, r.Alone.Load.Hit.Count, r.Cached.Load.Hit.Count, r.Cached.HitRate, r.Throughput)
	}
	if r.Alone.Load.Wrong+r.Cached.Load.Wrong+r.Alone.Load.Missing+r.Cached.Load.Missing != 0 {
		t.Errorf("wrong or missing replies: %+v %+v", r.Alone.Load, r.Cached.Load)
	}
	if r.Cached.CPU.Capacity <= 0 || r.Cached.CPU.LoadGen <= 0 {
		t.Errorf("CPU figures: %+v", r.Cached.CPU)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Error(err)
	}
	if len(tab.Rows) < 3 || tab.Rows[2][0] != "cache / memcached" {
		t.Errorf("rows: %v", tab.Rows)
	}
}
