// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

func TestNetAttachDetach(t *testing.T) {
	root, objs := pgFixture(t)
	pgInNetns(t)
	pgVeth(t, "pga0", "pga1")
	xdp, tc := pgProgID(t, objs.XdpCount), pgProgID(t, objs.TcCount)
	xdpRef, tcRef := filepath.Join(root, "xdp_count"), filepath.Join(root, "tc_count")

	out := bpfshOK(t, root, "net attach xdp "+xdpRef+" dev pga0")
	if !strings.Contains(out, fmt.Sprintf("attached program %d (xdp_count) to pga0 xdp", xdp)) {
		t.Errorf("net attach says %q", out)
	}
	// A second XDP program is refused without overwrite, taken with it.
	bpfshFails(t, root, "net attach xdp "+xdpRef+" dev pga0", 1, "pga0 already runs an XDP program", fmt.Sprintf("id %d", xdp), "overwrite")
	bpfshOK(t, root, "net attach xdp "+xdpRef+" dev pga0 overwrite")
	// tcx came in Linux 6.6: before it, net attach says so (as bpftool's
	// does, it attaches without a link), and the tcx half is not tested.
	major, minor, err := bpf.KernelVersion()
	if err != nil {
		t.Fatal(err)
	}
	tcx := major > 6 || major == 6 && minor >= 6
	wantShown := []string{fmt.Sprintf("pga0(%d) driver id %d name xdp_count\n", pgIfindex(t, "pga0"), xdp)}
	if tcx {
		bpfshOK(t, root, "net attach tcx_ingress "+tcRef+" dev pga0; net attach tcx_egress "+tcRef+" dev pga0")
		wantShown = append(wantShown, fmt.Sprintf("tcx/ingress tc_count prog_id %d\n", tc), fmt.Sprintf("tcx/egress tc_count prog_id %d\n", tc))
	} else {
		bpfshFails(t, root, "net attach tcx_ingress "+tcRef+" dev pga0", 1, "this kernel has no tcx hooks (they came in Linux 6.6)", "clsact")
	}

	out = bpfshOK(t, root, "net show dev pga0")
	for _, want := range wantShown {
		if !strings.Contains(out, want) {
			t.Errorf("net show after net attach lacks %q:\n%s", want, out)
		}
	}

	// Typed wrong: exit 2; refused by the kernel or the device: exit 1.
	bpfshFails(t, root, "net attach", 2, "needs an attach type", "xdpgeneric", "tcx_ingress")
	bpfshFails(t, root, "net attach bogus "+xdpRef+" dev pga0", 2, `got "bogus"`)
	bpfshFails(t, root, "net attach xdp "+xdpRef, 2, "needs 'dev IFACE'")
	bpfshFails(t, root, "net attach xdp "+xdpRef+" dev pga0 sideways", 2, `unexpected "sideways"`)
	bpfshFails(t, root, "net attach tcx_ingress "+xdpRef+" dev pga0", 1, "tcx_ingress takes a TC (sched_cls) program", "xdp_count is of type xdp")
	bpfshFails(t, root, "net attach xdpgeneric "+tcRef+" dev pga0", 1, "takes an XDP program")
	bpfshFails(t, root, "net attach xdp "+xdpRef+" dev pga9", 1, "no device pga9")
	bpfshFails(t, root, "net detach xdp pga0", 2, "needs 'dev IFACE'")

	detach, wantDetached := "net detach xdp dev pga0", []string{fmt.Sprintf("detached program %d from pga0 xdp", xdp)}
	if tcx {
		detach += "; net detach tcx_ingress dev pga0; net detach tcx_egress dev pga0"
		wantDetached = append(wantDetached, fmt.Sprintf("detached program %d from pga0 tcx_ingress", tc), fmt.Sprintf("detached program %d from pga0 tcx_egress", tc))
	}
	out = bpfshOK(t, root, detach)
	for _, want := range wantDetached {
		if !strings.Contains(out, want) {
			t.Errorf("net detach lacks %q:\n%s", want, out)
		}
	}
	if out := bpfshOK(t, root, "net show dev pga0"); strings.Contains(out, "xdp_count") || strings.Contains(out, "tc_count") {
		t.Errorf("programs left after net detach:\n%s", out)
	}
	bpfshFails(t, root, "net detach xdp dev pga0", 1, "pga0 runs no XDP program")
	if tcx {
		bpfshFails(t, root, "net detach tcx_ingress dev pga0", 1, "no program is attached to pga0 tcx_ingress")
	}

	// What bpfsh attaches, bpftool sees and detaches.
	pgNeedBpftool(t)
	bpfshOK(t, root, "net attach xdpgeneric "+xdpRef+" dev pga1")
	if out := pgBpftoolRun(t, "net", "show", "dev", "pga1"); !strings.Contains(out, fmt.Sprintf("generic id %d", xdp)) {
		t.Errorf("bpftool net show does not see the XDP program:\n%s", out)
	}
	pgBpftoolRun(t, "net", "detach", "xdpgeneric", "dev", "pga1")
	if out := bpfshOK(t, root, "net show dev pga1"); strings.Contains(out, "xdp_count") {
		t.Errorf("XDP program left after bpftool net detach:\n%s", out)
	}
}

// pgIfindex is the index of the device name.
func pgIfindex(t *testing.T, name string) int {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

func TestProgAttachSockmap(t *testing.T) {
	root := bpftest.PinRoot(t)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "pga_verdict", Type: ebpf.SkSKB, AttachType: ebpf.AttachSkSKBStreamVerdict, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer p.Close()
	sm, err := ebpf.NewMap(&ebpf.MapSpec{Name: "pga_socks", Type: ebpf.SockMap, KeySize: 4, ValueSize: 4, MaxEntries: 2})
	if err != nil {
		t.Fatalf("make sockmap: %v", err)
	}
	defer sm.Close()
	hash, err := ebpf.NewMap(&ebpf.MapSpec{Name: "pga_hash", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer hash.Close()
	for path, pin := range map[string]interface{ Pin(string) error }{"verdict": p, "socks": sm, "hash": hash} {
		if err := pin.Pin(filepath.Join(root, path)); err != nil {
			t.Fatal(err)
		}
	}
	pid, mid := pgProgID(t, p), pgMapID(t, sm)
	pRef, mRef := filepath.Join(root, "verdict"), filepath.Join(root, "socks")

	attached := func() bool {
		q, err := link.QueryPrograms(link.QueryOptions{Target: sm.FD(), Attach: ebpf.AttachSkSKBStreamVerdict})
		if err != nil {
			t.Fatalf("query sockmap: %v", err)
		}
		for _, ap := range q.Programs {
			if uint32(ap.ID) == pid {
				return true
			}
		}
		return false
	}

	out := bpfshOK(t, root, "prog attach "+pRef+" sk_skb_stream_verdict "+mRef)
	if want := fmt.Sprintf("attached program %d (pga_verdict) to map %d (pga_socks) as sk_skb_stream_verdict", pid, mid); !strings.Contains(out, want) {
		t.Errorf("prog attach says %q, want %q", out, want)
	}
	if !attached() {
		t.Fatal("the kernel does not list the program on the sockmap")
	}
	if out := bpfshOK(t, root, "net show"); !strings.Contains(out, fmt.Sprintf("map %d (pga_socks) sk_skb_stream_verdict prog_id %d", mid, pid)) {
		t.Errorf("net show does not show the attachment:\n%s", out)
	}
	out = bpfshOK(t, root, fmt.Sprintf("prog detach id %d sk_skb_stream_verdict id %d", pid, mid))
	if !strings.Contains(out, "detached program") || attached() {
		t.Errorf("prog detach says %q; still attached: %v", out, attached())
	}

	bpfshFails(t, root, "prog detach "+pRef+" sk_skb_stream_verdict "+mRef, 1, "not attached there")
	bpfshFails(t, root, "prog attach "+pRef+" sk_skb_stream_verdict "+filepath.Join(root, "hash"), 1, "attaches to a sockmap or sockhash", "pga_hash is a hash")
	bpfshFails(t, root, "prog attach "+pRef+" sk_skb_stream_verdict", 2, "needs the sockmap or sockhash")
	bpfshFails(t, root, "prog attach "+pRef+" xdp", 2, "net attach xdp")
	bpfshFails(t, root, "prog attach "+pRef+" sideways "+mRef, 2, "needs an attach type", `got "sideways"`)
	bpfshFails(t, root, "prog attach "+pRef+" sk_skb_stream_verdict "+mRef+" more", 2, `unexpected "more"`)

	// bpftool sees what bpfsh attached and detaches it.
	pgNeedBpftool(t)
	bpfshOK(t, root, "prog attach "+pRef+" sk_skb_stream_verdict "+mRef)
	pgBpftoolRun(t, "prog", "detach", "pinned", pRef, "stream_verdict", "pinned", mRef)
	if attached() {
		t.Error("still attached after bpftool prog detach")
	}
}
