// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// With many gets in flight per socket against memcached alone, every
// reply is matched to its get by request id and checks out: none stale,
// wrong, missing, late or lost, and memcached answers them all (no reply
// carries the cache's TTL). A budget ends the run exactly.
func TestLoadDepthAlone(t *testing.T) {
	l := startLive(t)
	if err := l.Detach(); err != nil { // memcached alone
		t.Fatal(err)
	}
	ks, err := NewKeyspace(500, 24)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Preload(context.Background(), l.Addr(), 2); err != nil {
		t.Fatal(err)
	}
	res, err := Load(context.Background(), LoadOptions{
		Addr: l.Addr(), Keys: ks, Clients: 3, Depth: 32, GetWeight: 5, SetWeight: 1, Zipf: 0.99,
		Duration: 10 * time.Second, Ops: 20000, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d gets, %d sets; stale %d wrong %d missing %d timeouts %d errors %d late %d",
		res.Get.Count, res.Set.Count, res.Stale, res.Wrong, res.Missing, res.Timeouts, res.Errors, res.Late)
	if got := res.Get.Count + res.Set.Count + res.Timeouts + res.Errors; got != 20000 {
		t.Errorf("%d requests answered, timed out or failed; the budget was 20000", got)
	}
	if res.Set.Count == 0 || res.Hit.Count != 0 || res.Server.Count != res.Get.Count {
		t.Errorf("%d sets, %d of %d gets with the cache's TTL (no cache is attached)", res.Set.Count, res.Hit.Count, res.Get.Count)
	}
	if res.Stale+res.Wrong+res.Missing+res.Timeouts+res.Errors+res.Late != 0 {
		t.Errorf("stale %d wrong %d missing %d timeouts %d errors %d late %d", res.Stale, res.Wrong, res.Missing, res.Timeouts, res.Errors, res.Late)
	}
}

// A depth out of range is refused before any socket is opened.
func TestLoadDepthRefused(t *testing.T) {
	ks, err := NewKeyspace(1, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []int{-1, MaxDepth + 1} {
		if _, err := Load(context.Background(), LoadOptions{Addr: netip.MustParseAddrPort("127.0.0.1:11211"), Keys: ks, Depth: d}); err == nil {
			t.Errorf("depth %d accepted", d)
		}
	}
}

// cmsgTTL reads IP_TTL from a control buffer and says -1 for none or a
// malformed one.
func TestLoadCmsgTTL(t *testing.T) {
	oob := make([]byte, unix.CmsgSpace(4)+unix.CmsgSpace(4))
	put := func(b []byte, level, typ int32, v uint32) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(4))
		binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], v)
	}
	put(oob, unix.SOL_SOCKET, unix.SO_TIMESTAMP, 7)
	put(oob[unix.CmsgSpace(4):], unix.IPPROTO_IP, unix.IP_TTL, 63)
	if got := cmsgTTL(oob); got != 63 {
		t.Errorf("TTL %d, want 63", got)
	}
	if got := cmsgTTL(oob[:unix.CmsgSpace(4)]); got != -1 {
		t.Errorf("no IP_TTL: %d, want -1", got)
	}
	if got := cmsgTTL(oob[:3]); got != -1 {
		t.Errorf("truncated: %d, want -1", got)
	}
}
