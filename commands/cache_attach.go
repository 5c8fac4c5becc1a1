// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/cache"
)

// cacheAttachCmd and cacheDetachCmd are in cacheCmd's Subs.
var cacheAttachCmd = &Command{
	Name:  "attach",
	Usage: "IFACE [--name NAME] | --redis [port N] [cgroup PATH] [trace]",
	Short: "attach xdp_cache_rx (XDP) and tc_cache_fill (TC egress) to a real interface, or the live Redis cache",
	Long: "attach puts the cache in front of a memcached reachable through IFACE: xdp_cache_rx on the " +
		"interface's XDP hook (native mode when the driver has it, generic otherwise; it says which) and " +
		"tc_cache_fill on its TC egress hook as a tcx link (Linux 6.6 or later). Both links are pinned under " +
		"<pin-root>/NAME/ as link_xdp_IFACE and link_tc_IFACE, so they stay attached after the shell ends; " +
		"'cache detach' removes them, and so does 'unload cache'. On a kernel without tcx tc_cache_fill goes in as " +
		"a cls_bpf filter in direct-action mode on the clsact qdisc's egress (the qdisc is added when the interface " +
		"has none), as 'tc filter add dev IFACE egress bpf da' would; a filter cannot be pinned, so what detaching it " +
		"takes is recorded in <pin-root>/NAME/filter_tc_IFACE, and detach removes that filter (only while it still " +
		"runs tc_cache_fill) and the qdisc if attach added it and nothing else uses it. The programs watch cache_port (11211 unless " +
		"loaded with 'load cache set cache_port=N'). An interface with another XDP program is refused. " +
		"With '--redis [port N]' it attaches the live Redis cache instead (no IFACE): redis_sockops on the cgroup v2 root " +
		"(found in /proc/self/mountinfo) puts every connection redis-server accepts on port N (6379) into a sockhash, " +
		"redis_verdict answers GETs of cached keys from redis-server's own socket, and redis_replies fills the cache " +
		"from redis-server's replies; it is pinned under <pin-root>/redis_cache/ (bpf/cache/PROTOCOL.md, Redis, live). " +
		"Connections accepted before attach stay uncached. 'cgroup PATH' attaches redis_sockops to that cgroup v2 " +
		"directory instead of the root (absolute, or relative to the cgroup v2 mount): it then sees only the connections " +
		"of the processes in it, so redis-server must run there ('redis start' runs one in bpfsh-redis-PORT). 'trace' makes " +
		"the programs print a line for every hit, miss, fill and invalidation, which 'trace grep redis' shows.",
	Example: "cache attach eth0",
	Args:    []ArgKind{ArgIface},
	Run:     runCacheAttach,
}

var cacheDetachCmd = &Command{
	Name:    "detach",
	Usage:   "[IFACE] [--name NAME] | --redis",
	Short:   "remove what cache attach attached (from IFACE, or from every interface; or the Redis cache)",
	Long:    "detach removes the pinned XDP and tcx links that 'cache attach' made on IFACE, or on every interface without one (on kernels without tcx: the cls_bpf filter it added, and the clsact qdisc if it added that); the programs stay loaded. With --redis (or without arguments when only the Redis cache is attached) it removes the live Redis cache: the sock_ops link, the programs on its sockhash, and its pins, after which its connections are plain TCP again. It is an error when there is nothing to detach.",
	Example: "cache detach eth0",
	Args:    []ArgKind{ArgIface},
	Run:     runCacheDetach,
}

func init() { onLoad(&loadHook{Match: isCache, Unloading: cacheUnloading}) }

// isCache says whether objects are the cache's programs and maps (the
// built-in under any NAME, or cache.bpf.c built with changes).
func isCache(objects []bpf.Pinned) bool {
	want := map[string]string{cache.RxProgram: bpf.KindProgram, cache.FillProgram: bpf.KindProgram,
		cache.CacheMap: bpf.KindMap, cache.StatsMap: bpf.KindMap}
	for _, o := range objects {
		if want[o.Name] == o.Kind {
			delete(want, o.Name)
		}
	}
	return len(want) == 0
}

// cacheUnloading detaches the cache from every interface before unload
// removes its pins: the links pinned beside the programs are no pins of
// load's, and would otherwise keep the programs attached and the
// directory there.
func cacheUnloading(s *Session, name string) (Result, error) {
	atts, err := cacheAttachments(filepath.Join(s.PinRoot, name))
	if err != nil || len(atts) == 0 {
		return nil, err
	}
	var done []string
	for _, a := range atts {
		if err := a.detach(); err != nil {
			return nil, fmt.Errorf("unload %s: %w", name, err)
		}
		done = append(done, a.iface)
	}
	return &Message{Text: fmt.Sprintf("detached %s from %s first", name, strings.Join(done, ", ")), Data: map[string]any{"detached": done}}, nil
}

// Pin names of the links, followed by the interface's name (bpffs
// refuses dots, which interface names may have: see pinIface). Without
// tcx the fill program is a cls_bpf filter, which cannot be pinned: its
// record (bpf.ClsactFilter.PinMarker) is pinned instead.
const (
	cacheXDPLinkPrefix  = "link_xdp_"
	cacheTCLinkPrefix   = "link_tc_"
	cacheTCFilterPrefix = "filter_tc_"
)

// pinIface is an interface name as it can be pinned: letters, digits, '-'
// and '_' kept, any other byte (a dot, as in eth0.100) written _xHH.
func pinIface(iface string) string {
	var b strings.Builder
	for i := 0; i < len(iface); i++ {
		c := iface[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_x%02x", c)
		}
	}
	return b.String()
}

// unpinIface reverses pinIface.
func unpinIface(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && i+4 <= len(s) && s[i+1] == 'x' {
			if c, err := hex.DecodeString(s[i+2 : i+4]); err == nil {
				b.Write(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cacheAttachment is what 'cache attach' pinned for one interface: the
// XDP link and the tcx link or the cls_bpf filter's record (any may be
// missing, if removed by hand).
type cacheAttachment struct {
	iface     string
	xdpPin    string
	tcPin     string
	filterPin string
	xdpLink   uint32
	tcLink    uint32
	// filter is the cls_bpf filter filterPin recorded, once detach has
	// read it; removed says what detach found of it and removed.
	filter  *bpf.ClsactFilter
	removed bpf.ClsactRemoved
}

// cacheAttachments lists the interfaces whose links are pinned in dir.
func cacheAttachments(dir string) ([]*cacheAttachment, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	by := map[string]*cacheAttachment{}
	get := func(enc string) *cacheAttachment {
		iface := unpinIface(enc)
		if by[iface] == nil {
			by[iface] = &cacheAttachment{iface: iface}
		}
		return by[iface]
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, cacheXDPLinkPrefix):
			get(strings.TrimPrefix(n, cacheXDPLinkPrefix)).xdpPin = filepath.Join(dir, n)
		case strings.HasPrefix(n, cacheTCLinkPrefix):
			get(strings.TrimPrefix(n, cacheTCLinkPrefix)).tcPin = filepath.Join(dir, n)
		case strings.HasPrefix(n, cacheTCFilterPrefix):
			get(strings.TrimPrefix(n, cacheTCFilterPrefix)).filterPin = filepath.Join(dir, n)
		}
	}
	var out []*cacheAttachment
	for _, a := range by {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].iface < out[j].iface })
	return out, nil
}

// detach removes the attachment's pins; the links go with them, and the
// programs leave the interface. A cls_bpf filter is removed by what its
// record says, and then the record.
func (a *cacheAttachment) detach() error {
	for _, p := range []struct {
		path string
		id   *uint32
	}{{a.xdpPin, &a.xdpLink}, {a.tcPin, &a.tcLink}} {
		if p.path == "" {
			continue
		}
		l, err := link.LoadPinnedLink(p.path, nil)
		if err != nil {
			return fmt.Errorf("open the link pinned at %s: %w", p.path, err)
		}
		if info, err := l.Info(); err == nil {
			*p.id = uint32(info.ID)
		}
		err = l.Unpin()
		l.Close()
		if err != nil {
			return fmt.Errorf("remove the link pinned at %s: %w", p.path, err)
		}
	}
	if a.filterPin == "" {
		return nil
	}
	f, err := bpf.LoadMarker(a.filterPin)
	if err != nil {
		return err
	}
	if a.removed, err = f.Remove(); err != nil {
		return err
	}
	a.filter = f
	if err := os.Remove(a.filterPin); err != nil {
		return fmt.Errorf("remove the cls_bpf filter's record %s: %w", a.filterPin, err)
	}
	return nil
}

// tcText says what detach did at the TC hook, e.g. "tcx link 7" or
// "cls_bpf filter on clsact/egress pref 1 handle 1 (program 42) and the
// clsact qdisc".
func (a *cacheAttachment) tcText() string {
	f := a.filter
	if f == nil {
		return fmt.Sprintf("tcx link %d", a.tcLink)
	}
	s := fmt.Sprintf("cls_bpf filter on %s pref %d handle %d (program %d)", f.Kind(), f.Pref, f.Handle, f.ProgID)
	switch {
	case !a.removed.Filter:
		s += ", which had gone already (or runs another program now, and stays)"
	case a.removed.Qdisc:
		s += " and the clsact qdisc attach added"
	case f.QdiscAdded:
		s += "; the clsact qdisc attach added stays: other filters use it"
	}
	return s
}

func runCacheAttach(s *Session, args []string) (Result, error) {
	const cmd = "cache attach"
	redis, port, rest, err := redisFlags(cmd, args)
	if err != nil {
		return nil, err
	}
	if redis {
		return runRedisAttach(s, cmd, port, rest)
	}
	name, _, _, words, err := cacheFlags(cmd, rest, false)
	if err != nil {
		return nil, err
	}
	if len(words) != 1 {
		return nil, Usagef("%s takes one IFACE, e.g. cache attach eth0", cmd)
	}
	iface := words[0]
	dev, err := netlink.LinkByName(iface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%s: no interface %s; 'ip link' lists them", cmd, iface)
		}
		return nil, fmt.Errorf("%s: find interface %s: %w", cmd, iface, err)
	}
	t, err := openCache(s, cmd, name)
	if err != nil {
		return nil, err
	}
	defer t.close()
	xdpPin := filepath.Join(t.dir, cacheXDPLinkPrefix+pinIface(iface))
	tcPin := filepath.Join(t.dir, cacheTCLinkPrefix+pinIface(iface))
	filterPin := filepath.Join(t.dir, cacheTCFilterPrefix+pinIface(iface))
	for _, p := range []string{xdpPin, tcPin, filterPin} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s: %s is already attached to %s (%s); 'cache detach %s' first", cmd, name, iface, p, iface)
		}
	}
	idx := dev.Attrs().Index

	mode := "driver"
	xl, err := link.AttachXDP(link.XDPOptions{Program: t.rx, Interface: idx, Flags: link.XDPDriverMode})
	var driverErr error
	if err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EEXIST) {
		driverErr = err
		mode = "generic"
		xl, err = link.AttachXDP(link.XDPOptions{Program: t.rx, Interface: idx, Flags: link.XDPGenericMode})
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("%s: %s already has an XDP program ('net show dev %s' shows it); detach it first", cmd, iface, iface)
		}
		return nil, fmt.Errorf("%s: attach %s to %s's XDP hook: %w", cmd, cache.RxProgram, iface, err)
	}
	defer xl.Close()
	if err := xl.Pin(xdpPin); err != nil {
		return nil, fmt.Errorf("%s: pin the XDP link at %s: %w", cmd, xdpPin, err)
	}
	tc, err := bpf.AttachTC(idx, t.fill, true)
	if err != nil {
		xl.Unpin()
		return nil, fmt.Errorf("%s: attach %s to %s's TC egress hook: %w; nothing stays attached", cmd, cache.FillProgram, iface, err)
	}
	tcJSON := map[string]any{"program": cache.FillProgram, "attach": tc.Kind()}
	var tcLine string
	if tc.Link != nil {
		defer tc.Link.Close()
		if err := tc.Link.Pin(tcPin); err != nil {
			xl.Unpin()
			return nil, fmt.Errorf("%s: pin the tcx link at %s: %w; nothing stays attached", cmd, tcPin, err)
		}
		var tid uint32
		if ti, err := tc.Link.Info(); err == nil {
			tid = uint32(ti.ID)
		}
		tcLine = fmt.Sprintf("%s on %s, link %d, pinned %s", cache.FillProgram, tc.Kind(), tid, tcPin)
		tcJSON["mode"], tcJSON["link_id"], tcJSON["pin"] = "tcx", tid, tcPin
	} else {
		f := tc.Filter
		if err := f.PinMarker(filterPin); err != nil {
			xl.Unpin()
			if _, rerr := f.Remove(); rerr != nil {
				return nil, fmt.Errorf("%s: %v; and the filter stays: %v", cmd, err, rerr)
			}
			return nil, fmt.Errorf("%s: %w; nothing stays attached", cmd, err)
		}
		qdisc := "on the clsact qdisc that was there"
		if f.QdiscAdded {
			qdisc = "clsact qdisc added (detach removes it)"
		}
		tcLine = fmt.Sprintf("%s on %s (cls_bpf, direct action): %s; pref %d handle %d, %s, recorded in %s",
			cache.FillProgram, tc.Kind(), tc.Why, f.Pref, f.Handle, qdisc, filterPin)
		tcJSON["mode"], tcJSON["why"], tcJSON["pref"], tcJSON["handle"] = "cls_bpf", tc.Why, f.Pref, f.Handle
		tcJSON["prog_id"], tcJSON["qdisc_added"], tcJSON["pin"] = f.ProgID, f.QdiscAdded, filterPin
	}
	var xid uint32
	if xi, err := xl.Info(); err == nil {
		xid = uint32(xi.ID)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "attached %s to %s (ifindex %d), for memcached on port %d:\n", name, iface, idx, t.port)
	modeText := "native (driver) mode"
	if mode == "generic" {
		modeText = "generic mode: the driver has no native XDP"
	}
	fmt.Fprintf(&b, "xdp:  %s in %s, link %d, pinned %s\n", cache.RxProgram, modeText, xid, xdpPin)
	fmt.Fprintf(&b, "tc:   %s\n", tcLine)
	j := map[string]any{"iface": iface, "ifindex": idx, "port": t.port,
		"xdp": map[string]any{"program": cache.RxProgram, "mode": mode, "link_id": xid, "pin": xdpPin},
		"tc":  tcJSON}
	if driverErr != nil {
		j["driver_error"] = driverErr.Error()
	}
	if dev.Type() == "veth" {
		note := "on a veth, frames sent back with XDP_TX reach the peer only if the peer has an XDP program (XDP_PASS is enough) or GRO on"
		fmt.Fprintf(&b, "note: %s\n", note)
		j["note"] = note
	}
	return &Text{Body: b.String(), JSON: j}, nil
}

func runCacheDetach(s *Session, args []string) (Result, error) {
	const cmd = "cache detach"
	redis, _, args, err := redisFlags(cmd, args)
	if err != nil {
		return nil, err
	}
	if redis {
		if len(args) > 0 {
			return nil, Usagef("%s --redis takes no other arguments, not %q", cmd, args[0])
		}
		return runRedisDetach(s, cmd)
	}
	name, _, _, words, err := cacheFlags(cmd, args, false)
	if err != nil {
		return nil, err
	}
	if len(words) > 1 {
		return nil, Usagef("%s takes at most one IFACE", cmd)
	}
	dir := filepath.Join(s.PinRoot, name)
	if _, err := os.Stat(dir); err != nil && len(args) == 0 && redisAttached(s) {
		// Only the Redis cache is attached: plain 'cache detach' removes it.
		return runRedisDetach(s, cmd)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%s: %s is not loaded under %s, so nothing is attached", cmd, name, s.PinRoot)
	}
	atts, err := cacheAttachments(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if len(words) == 1 {
		var keep []*cacheAttachment
		for _, a := range atts {
			if a.iface == words[0] {
				keep = append(keep, a)
			}
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("%s: %s is not attached to %s ('cache detach' without IFACE detaches it everywhere)", cmd, name, words[0])
		}
		atts = keep
	}
	if len(atts) == 0 {
		return nil, fmt.Errorf("%s: %s is not attached to any interface", cmd, name)
	}
	var b strings.Builder
	var js []map[string]any
	for _, a := range atts {
		if err := a.detach(); err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		fmt.Fprintf(&b, "detached %s from %s: xdp link %d, %s (pins removed)\n", name, a.iface, a.xdpLink, a.tcText())
		j := map[string]any{"iface": a.iface, "xdp_link_id": a.xdpLink, "tc_link_id": a.tcLink}
		if f := a.filter; f != nil {
			j["tc_filter"] = map[string]any{"attach": f.Kind(), "pref": f.Pref, "handle": f.Handle, "prog_id": f.ProgID,
				"removed": a.removed.Filter, "qdisc_removed": a.removed.Qdisc}
		}
		js = append(js, j)
	}
	return &Text{Body: b.String(), JSON: js}, nil
}
