// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// pgInNetns moves the calling goroutine's thread into a new, private
// network namespace for the rest of the test and returns to the original
// namespace when the test ends; devices made there vanish with it.
// Everything the test goroutine does (bpfsh run in-process, bpftool
// started from it) then sees only that namespace; subtests (t.Run) run on
// other goroutines and would not, so namespaced tests check in sequence.
func pgInNetns(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Skipf("skipped: cannot make a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with the goroutine rather
			// than run other code in the wrong namespace.
			t.Errorf("back to the original netns: %v", err)
			return
		}
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	})
}

// pgVeth makes a veth pair (up) in the current namespace.
func pgVeth(t *testing.T, a, b string) (netlink.Link, netlink.Link) {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		t.Fatalf("add veth %s/%s: %v", a, b, err)
	}
	var links []netlink.Link
	for _, name := range []string{a, b} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		links = append(links, l)
	}
	return links[0], links[1]
}

// pgClsact adds a clsact qdisc to l and cls_bpf filters running prog on
// its ingress and egress, as "tc filter add ... bpf da" would.
func pgClsact(t *testing.T, l netlink.Link, prog *ebpf.Program, name string) {
	t.Helper()
	idx := l.Attrs().Index
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscAdd(qdisc); err != nil {
		t.Fatalf("add clsact: %v", err)
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		f := &netlink.BpfFilter{
			FilterAttrs:  netlink.FilterAttrs{LinkIndex: idx, Parent: parent, Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1},
			Fd:           prog.FD(),
			Name:         name,
			DirectAction: true,
		}
		if err := netlink.FilterAdd(f); err != nil {
			t.Fatalf("add cls_bpf filter: %v", err)
		}
	}
}

// pgNetJSON is "net show -j" for one device.
type pgNetJSON []struct {
	XDP []struct {
		Devname string `json:"devname"`
		Ifindex int    `json:"ifindex"`
		Mode    string `json:"mode"`
		ID      uint32 `json:"id"`
		Name    string `json:"name"`
		LinkID  uint32 `json:"link_id"`
	} `json:"xdp"`
	TC []struct {
		Devname string `json:"devname"`
		Ifindex int    `json:"ifindex"`
		Kind    string `json:"kind"`
		Name    string `json:"name"`
		ID      uint32 `json:"id"`
		ProgID  uint32 `json:"prog_id"`
		LinkID  uint32 `json:"link_id"`
	} `json:"tc"`
	Cgroup  []any `json:"cgroup"`
	Sockmap []any `json:"sockmap"`
}

// pgLinkJSON is "link show -j".
type pgLinkJSON struct {
	ID         uint32 `json:"id"`
	Type       string `json:"type"`
	ProgID     uint32 `json:"prog_id"`
	Devname    string `json:"devname"`
	Ifindex    int    `json:"ifindex"`
	AttachType string `json:"attach_type"`
}

func TestNetShowAndLinks(t *testing.T) {
	root, objs := pgFixture(t)
	pgInNetns(t)
	xdpID, tcID := pgProgID(t, objs.XdpCount), pgProgID(t, objs.TcCount)
	pid := os.Getpid() % 100000
	name0, name1 := fmt.Sprintf("pga%d", pid), fmt.Sprintf("pgb%d", pid)
	v0, v1 := pgVeth(t, name0, name1)
	i0, i1 := v0.Attrs().Index, v1.Attrs().Index

	// veth0: XDP in driver mode and cls_bpf on both directions, by netlink.
	if err := netlink.LinkSetXdpFdWithFlags(v0, objs.XdpCount.FD(), nl.XDP_FLAGS_DRV_MODE); err != nil {
		t.Fatalf("attach XDP (driver) to %s: %v", name0, err)
	}
	pgClsact(t, v0, objs.TcCount, "tc_count")
	// veth1: XDP and TCX through links.
	xl, err := link.AttachXDP(link.XDPOptions{Program: objs.XdpCount, Interface: i1})
	if err != nil {
		t.Fatalf("XDP link on %s: %v", name1, err)
	}
	defer xl.Close()
	// A kernel without tcx (before 6.6) has no tcx link to show.
	tl, err := link.AttachTCX(link.TCXOptions{Program: objs.TcCount, Interface: i1, Attach: ebpf.AttachTCXIngress})
	haveTCX := !errors.Is(err, ebpf.ErrNotSupported)
	if haveTCX && err != nil {
		t.Fatalf("TCX link on %s: %v", name1, err)
	}
	xInfo, _ := xl.Info()
	xLink, tLink := uint32(xInfo.ID), uint32(0)
	if haveTCX {
		defer tl.Close()
		tInfo, _ := tl.Info()
		tLink = uint32(tInfo.ID)
	} else {
		t.Log("this kernel has no tcx (Linux 6.6+): no tcx link is checked")
	}
	// lo: generic XDP (loopback has no driver mode).
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetXdpFdWithFlags(lo, objs.XdpCount.FD(), nl.XDP_FLAGS_SKB_MODE); err != nil {
		t.Fatalf("attach XDP (generic) to lo: %v", err)
	}

	want0 := []string{
		fmt.Sprintf("%s(%d) driver id %d name xdp_count\n", name0, i0, xdpID),
		fmt.Sprintf("%s(%d) clsact/ingress tc_count id %d\n", name0, i0, tcID),
		fmt.Sprintf("%s(%d) clsact/egress tc_count id %d\n", name0, i0, tcID),
	}
	want1 := []string{
		fmt.Sprintf("%s(%d) driver id %d name xdp_count link_id %d\n", name1, i1, xdpID, xLink),
	}
	if haveTCX {
		want1 = append(want1, fmt.Sprintf("%s(%d) tcx/ingress tc_count prog_id %d link_id %d\n", name1, i1, tcID, tLink))
	}
	wantLo := fmt.Sprintf("lo(%d) generic id %d name xdp_count\n", lo.Attrs().Index, xdpID)

	// "net show dev IFACE" shows that device's XDP and TC programs only.
	{
		out := bpfshOK(t, root, "net show dev "+name0)
		for _, w := range want0 {
			if !strings.Contains(out, w) {
				t.Errorf("net show dev %s lacks %q:\n%s", name0, w, out)
			}
		}
		if strings.Contains(out, name1) || strings.Contains(out, "sockmap:") {
			t.Errorf("net show dev %s shows more than that device:\n%s", name0, out)
		}
		out = bpfshOK(t, root, "net show dev "+name1)
		for _, w := range want1 {
			if !strings.Contains(out, w) {
				t.Errorf("net show dev %s lacks %q:\n%s", name1, w, out)
			}
		}
		if out := bpfshOK(t, root, "net list dev lo"); !strings.Contains(out, wantLo) {
			t.Errorf("net list dev lo lacks %q:\n%s", wantLo, out)
		}
	}

	// "net show" shows every device and every section.
	{
		out := bpfshOK(t, root, "net show")
		for _, w := range append(append(want0, want1...), wantLo, "xdp:\n", "\ntc:\n", "\nflow_dissector:\n", "\nsockmap:\n", "\ncgroup:\n") {
			if !strings.Contains(out, w) {
				t.Errorf("net show lacks %q:\n%s", w, out)
			}
		}
	}

	// -j prints bpftool's JSON.
	{
		js := decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+name0, "-j"))
		if len(js) != 1 || len(js[0].XDP) != 1 || len(js[0].TC) != 2 {
			t.Fatalf("net show dev -j: %+v", js)
		}
		x := js[0].XDP[0]
		if x.Devname != name0 || x.Ifindex != i0 || x.Mode != "driver" || x.ID != xdpID || x.Name != "xdp_count" {
			t.Errorf("xdp entry %+v", x)
		}
		var kinds []string
		for _, c := range js[0].TC {
			if c.ID != tcID || c.Devname != name0 || c.Name != "tc_count" {
				t.Errorf("tc entry %+v", c)
			}
			kinds = append(kinds, c.Kind)
		}
		if !slices.Equal(kinds, []string{"clsact/ingress", "clsact/egress"}) {
			t.Errorf("tc kinds %v", kinds)
		}
		js = decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+name1, "-j"))
		if haveTCX && (len(js[0].TC) != 1 || js[0].TC[0].Kind != "tcx/ingress" || js[0].TC[0].ProgID != tcID || js[0].TC[0].LinkID != tLink) ||
			!haveTCX && len(js[0].TC) != 0 {
			t.Errorf("tcx entry: %+v", js[0].TC)
		}
		if len(js[0].XDP) != 1 || js[0].XDP[0].LinkID != xLink {
			t.Errorf("xdp link entry: %+v", js[0].XDP)
		}
	}

	// bpftool sees the same XDP and cls_bpf programs.
	if _, err := os.Stat(pgBpftool); err == nil {
		bt := decodeJSON[pgNetJSON](t, pgBpftoolRun(t, "-j", "net", "show", "dev", name0))
		ours := decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show dev "+name0, "-j"))
		if len(bt) != 1 || len(bt[0].XDP) != 1 || bt[0].XDP[0].ID != ours[0].XDP[0].ID || bt[0].XDP[0].Mode != ours[0].XDP[0].Mode {
			t.Errorf("xdp: bpftool %+v, bpfsh %+v", bt, ours)
		}
		if len(bt[0].TC) != len(ours[0].TC) {
			t.Fatalf("tc: bpftool %+v, bpfsh %+v", bt[0].TC, ours[0].TC)
		}
		for i := range bt[0].TC {
			if bt[0].TC[i].Kind != ours[0].TC[i].Kind || bt[0].TC[i].ID != ours[0].TC[i].ID || bt[0].TC[i].Name != ours[0].TC[i].Name {
				t.Errorf("tc %d: bpftool %+v, bpfsh %+v", i, bt[0].TC[i], ours[0].TC[i])
			}
		}
	}

	// The links appear in "link list" and "link show" and can be pinned.
	{
		out := bpfshOK(t, root, "link list")
		wantLinks := []string{fmt.Sprintf("%d  xdp  %d  xdp_count  %s(%d)", xLink, xdpID, name1, i1)}
		if haveTCX {
			wantLinks = append(wantLinks, fmt.Sprintf("%d  tcx  %d  tc_count  %s(%d) tcx_ingress", tLink, tcID, name1, i1))
		}
		for _, w := range wantLinks {
			if !containsSpaced(out, w) {
				t.Errorf("link list lacks %q:\n%s", w, out)
			}
		}
		if haveTCX {
			links := decodeJSON[[]pgLinkJSON](t, bpfshOK(t, root, "link list", "-j"))
			want := pgLinkJSON{ID: tLink, Type: "tcx", ProgID: tcID, Devname: name1, Ifindex: i1, AttachType: "tcx_ingress"}
			if !slices.Contains(links, want) {
				t.Errorf("link list -j lacks %+v: %+v", want, links)
			}
			if got := decodeJSON[pgLinkJSON](t, bpfshOK(t, root, fmt.Sprintf("link show id %d", tLink), "-j")); got != want {
				t.Errorf("link show -j: %+v, want %+v", got, want)
			}
		}
		out = bpfshOK(t, root, fmt.Sprintf("link show id %d", xLink))
		for _, w := range []string{"type:", "xdp", fmt.Sprintf("%d (xdp_count)", xdpID), "devname:", name1, fmt.Sprint(i1)} {
			if !strings.Contains(out, w) {
				t.Errorf("link show lacks %q:\n%s", w, out)
			}
		}

		// Pin the XDP link; ls, link show and bpftool find it there.
		path := filepath.Join(root, "links", "xdp")
		bpfshOK(t, root, fmt.Sprintf("link pin %d %s", xLink, path))
		if got := decodeJSON[pgLinkJSON](t, bpfshOK(t, root, "link show links/xdp", "-j")); got.ID != xLink || got.Type != "xdp" {
			t.Errorf("link show of the pin: %+v", got)
		}
		ls := bpfshOK(t, root, "ls links")
		if !containsSpaced(ls, fmt.Sprintf("xdp  link  xdp  %d  xdp_count", xLink)) {
			t.Errorf("ls of a pinned link:\n%s", ls)
		}
		bpfshFails(t, root, fmt.Sprintf("link pin %d %s", xLink, path), 1, "exists already")
		if _, err := os.Stat(pgBpftool); err == nil {
			bt := decodeJSON[pgLinkJSON](t, pgBpftoolRun(t, "-j", "link", "show", "pinned", path))
			if bt.ID != xLink || bt.ProgID != xdpID {
				t.Errorf("bpftool link show pinned: %+v", bt)
			}
		}
	}

	// Bad input gets one line each.
	{
		bpfshFails(t, root, "net show dev nosuch0", 1, "no interface nosuch0; 'ip link' lists them")
		bpfshFails(t, root, "net show "+name0, 2, "only 'dev IFACE'")
		bpfshFails(t, root, "net show dev", 2, "one interface name")
		bpfshFails(t, root, "link show name xdp_count", 1, "links have no name")
		bpfshFails(t, root, "link show id 4000000000", 1, "no link with id 4000000000")
		bpfshFails(t, root, "link show "+filepath.Join(root, "xdp_count"), 1, "is a pinned program, not a link")
		bpfshFails(t, root, "link pin", 2, "needs a link and a path")
		bpfshFails(t, root, fmt.Sprintf("link pin %d", xLink), 2, "needs one PATH")
		bpfshFails(t, root, fmt.Sprintf("link pin %d /tmp/nope", xLink), 1, "not on a bpf file system")
		bpfshFails(t, root, "link list x", 2, "takes no arguments")
	}
}

// containsSpaced reports whether out has a line containing want, where
// each run of two spaces in want matches any run of two or more spaces
// (table columns are padded to their widest cell).
func containsSpaced(out, want string) bool {
	parts := strings.Split(want, "  ")
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for i, p := range parts {
			j := strings.Index(rest, p)
			if j < 0 || (i > 0 && strings.TrimLeft(rest[:j], " ") != "") || (i > 0 && j < 2) {
				ok = false
				break
			}
			rest = rest[j+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

// pgCgroup2 is where cgroup v2 is mounted, or "" if it is not.
func pgCgroup2(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		// "... mountpoint opts ... - cgroup2 source opts"
		if pre, post, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) > 4 {
				return f[4]
			}
		}
	}
	return ""
}

func TestNetShowSockmapAndCgroup(t *testing.T) {
	root := bpftest.PinRoot(t)
	ret := func(typ ebpf.ProgramType, attach ebpf.AttachType, name string, v int32) *ebpf.Program {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: name, Type: typ, AttachType: attach, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, v), asm.Return()},
		})
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}

	// A program on a sockmap of our own.
	sm, err := ebpf.NewMap(&ebpf.MapSpec{Name: "pg_socks", Type: ebpf.SockMap, KeySize: 4, ValueSize: 4, MaxEntries: 2})
	if err != nil {
		t.Fatalf("make sockmap: %v", err)
	}
	t.Cleanup(func() { sm.Close() })
	verdict := ret(ebpf.SkSKB, ebpf.AttachSkSKBStreamVerdict, "pg_verdict", 1)
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: sm.FD(), Program: verdict, Attach: ebpf.AttachSkSKBStreamVerdict}); err != nil {
		t.Fatalf("attach to sockmap: %v", err)
	}
	smID, vID := pgMapID(t, sm), pgProgID(t, verdict)

	// A cgroup link on a cgroup of our own, which holds no process.
	var cgID uint64
	var cl link.Link
	if cg := pgCgroup2(t); cg != "" {
		dir := filepath.Join(cg, fmt.Sprintf("bpfsh-pg-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("make cgroup: %v", err)
		}
		t.Cleanup(func() { os.Remove(dir) })
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		cgID = st.Ino
		skb := ret(ebpf.CGroupSKB, ebpf.AttachCGroupInetIngress, "pg_cgskb", 1)
		cl, err = link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: ebpf.AttachCGroupInetIngress, Program: skb})
		if err != nil {
			t.Fatalf("cgroup link: %v", err)
		}
		defer cl.Close() // before the cgroup is removed
	}

	out := bpfshOK(t, root, "net show")
	if w := fmt.Sprintf("map %d (pg_socks) sk_skb_stream_verdict prog_id %d name pg_verdict\n", smID, vID); !strings.Contains(out, w) {
		t.Errorf("net show lacks %q:\n%s", w, out)
	}
	if cl == nil {
		t.Skip("skipped the cgroup part: cgroup v2 is not mounted")
	}
	info, _ := cl.Info()
	w := fmt.Sprintf("cgroup %d cgroup_inet_ingress prog_id %d name pg_cgskb link_id %d\n", cgID, info.Program, info.ID)
	if !strings.Contains(out, w) {
		t.Errorf("net show lacks %q:\n%s", w, out)
	}
	js := decodeJSON[pgNetJSON](t, bpfshOK(t, root, "net show", "-j"))
	if len(js) != 1 || len(js[0].Sockmap) == 0 || len(js[0].Cgroup) == 0 {
		t.Errorf("net show -j has no sockmap or cgroup entries: %+v", js)
	}
	l := decodeJSON[map[string]any](t, bpfshOK(t, root, fmt.Sprintf("link show id %d", info.ID), "-j"))
	if l["type"] != "cgroup" || l["cgroup_id"] != float64(cgID) || l["attach_type"] != "cgroup_inet_ingress" {
		t.Errorf("link show of a cgroup link: %v", l)
	}
}
