// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TC programs with and without tcx
//
// Linux 6.6 attaches TC programs with tcx links, which work like XDP
// links: a link can be pinned, and the program leaves the hook when the
// link's last reference goes. Older kernels (Debian's 6.1) have only the
// classic path: a clsact qdisc on the device and a cls_bpf filter under
// it in direct-action mode (the program's return value is the verdict),
// which is what `tc qdisc add dev X clsact; tc filter add dev X egress
// bpf da ...` makes. AttachTC tries tcx and falls back to that.
//
// A filter is no BPF object: it cannot be pinned, and it stays until
// someone deletes it. So the fallback returns a ClsactFilter that says
// exactly which filter it added (device, parent, pref, handle, program
// id) and whether it added the clsact qdisc too; a caller whose
// attachment outlives the process pins it as a marker (PinMarker) for a
// later process to find, and Remove deletes that filter only while it
// still runs that program.

// NoTCXEnv names the environment variable that, set to 1, makes AttachTC
// take the clsact path even where the kernel has tcx: tests run the
// older kernels' path on a new kernel with it.
const NoTCXEnv = "BPFSH_NO_TCX"

// WhyNoTCX is why AttachTC fell back to clsact on a kernel without tcx.
const WhyNoTCX = "this kernel has no tcx (Linux 6.6+)"

// TCAttached is a program on a TC hook: a tcx link, or a cls_bpf filter
// where the kernel has no tcx.
type TCAttached struct {
	Link   link.Link     // the tcx link, or nil
	Filter *ClsactFilter // the cls_bpf filter, or nil
	// Why says why a filter and not a tcx link (WhyNoTCX, or NoTCXEnv
	// was set); "" for a link.
	Why string

	egress bool
}

// Kind is where the program runs, in net show's words: "tcx/egress" or
// "clsact/egress" (and ingress).
func (a *TCAttached) Kind() string {
	if a.Filter != nil {
		return a.Filter.Kind()
	}
	if !a.egress {
		return "tcx/ingress"
	}
	return "tcx/egress"
}

// Detach takes the program off the hook: it closes the link, or removes
// the filter (and the qdisc AttachTC added, if nothing else uses it).
func (a *TCAttached) Detach() error {
	if a.Link != nil {
		return a.Link.Close()
	}
	_, err := a.Filter.Remove()
	return err
}

// AttachTC attaches prog to the TC egress (egress true) or ingress hook
// of the device ifindex in the calling thread's network namespace: by a
// tcx link, or where the kernel has no tcx (cilium/ebpf probes that once,
// when the first attach fails) by a cls_bpf filter in direct-action mode
// under a clsact qdisc, added if the device has none. A tcx link is the
// caller's to close or pin; a filter is the caller's to remove.
func AttachTC(ifindex int, prog *ebpf.Program, egress bool) (*TCAttached, error) {
	why := fmt.Sprintf("tcx turned off by %s=1", NoTCXEnv)
	if os.Getenv(NoTCXEnv) != "1" {
		attach := ebpf.AttachTCXIngress
		if egress {
			attach = ebpf.AttachTCXEgress
		}
		l, err := link.AttachTCX(link.TCXOptions{Program: prog, Interface: ifindex, Attach: attach})
		if err == nil {
			return &TCAttached{Link: l, egress: egress}, nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return nil, err
		}
		why = WhyNoTCX
	}
	f, err := AddClsactFilter(ifindex, prog, egress)
	if err != nil {
		return nil, err
	}
	return &TCAttached{Filter: f, Why: why, egress: egress}, nil
}

// ClsactFilter is a cls_bpf filter that AddClsactFilter added: what
// deleting exactly it takes.
type ClsactFilter struct {
	Ifindex int    `json:"ifindex"`
	Ifname  string `json:"ifname"`
	// Parent is netlink.HANDLE_MIN_EGRESS or HANDLE_MIN_INGRESS.
	Parent uint32 `json:"parent"`
	// Pref and Handle identify the filter ("tc filter del dev X egress
	// pref P handle H bpf").
	Pref   uint16 `json:"pref"`
	Handle uint32 `json:"handle"`
	// ProgID is the program it runs: Remove deletes the filter only while
	// it still runs this one.
	ProgID uint32 `json:"prog_id"`
	// QdiscAdded says the clsact qdisc was added with the filter, so that
	// Remove deletes it too (when no other filter uses it).
	QdiscAdded bool `json:"qdisc_added"`
}

// Kind is "clsact/egress" or "clsact/ingress", as net show says.
func (f *ClsactFilter) Kind() string {
	if f.Parent == netlink.HANDLE_MIN_INGRESS {
		return "clsact/ingress"
	}
	return "clsact/egress"
}

// clsactHandle is the handle every clsact qdisc has (ffff:).
var clsactHandle = netlink.MakeHandle(0xffff, 0)

// AddClsactFilter adds prog as a cls_bpf filter in direct-action mode on
// the egress (or ingress) hook of ifindex, after the filters already
// there (as a tcx link without an anchor goes last), adding a clsact
// qdisc first when the device has none.
func AddClsactFilter(ifindex int, prog *ebpf.Program, egress bool) (f *ClsactFilter, err error) {
	info, err := prog.Info()
	if err != nil {
		return nil, fmt.Errorf("program info: %w", err)
	}
	id, _ := info.ID()
	dev, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("device %d: %w", ifindex, err)
	}
	f = &ClsactFilter{Ifindex: ifindex, Ifname: dev.Attrs().Name, Parent: netlink.HANDLE_MIN_INGRESS, Handle: 1, ProgID: uint32(id)}
	if egress {
		f.Parent = netlink.HANDLE_MIN_EGRESS
	}
	qdisc, err := clsactQdisc(dev)
	if err != nil {
		return nil, err
	}
	if qdisc == nil {
		qdisc = &netlink.GenericQdisc{QdiscType: "clsact",
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: clsactHandle, Parent: netlink.HANDLE_CLSACT}}
		switch aerr := netlink.QdiscAdd(qdisc); {
		case errors.Is(aerr, unix.EEXIST):
			// Someone added one since the list: theirs, not ours.
		case aerr != nil:
			return nil, fmt.Errorf("add a clsact qdisc to %s: %w", f.Ifname, aerr)
		default:
			f.QdiscAdded = true
			defer func() {
				if err != nil { // the named result: the filter was not added
					netlink.QdiscDel(qdisc)
				}
			}()
		}
	}
	others, err := listFilters(dev, f.Parent)
	if err != nil {
		return nil, err
	}
	f.Pref = 1
	for _, o := range others {
		if p := o.Attrs().Priority; p >= f.Pref {
			if p == 0xffff {
				return nil, fmt.Errorf("%s's %s already has a filter at the last pref (65535); remove it to add one after it", f.Ifname, f.Kind())
			}
			f.Pref = p + 1
		}
	}
	err = netlink.FilterAdd(&netlink.BpfFilter{
		FilterAttrs:  netlink.FilterAttrs{LinkIndex: ifindex, Parent: f.Parent, Handle: f.Handle, Priority: f.Pref, Protocol: unix.ETH_P_ALL},
		Fd:           prog.FD(),
		Name:         info.Name,
		DirectAction: true,
	})
	if err != nil {
		return nil, fmt.Errorf("add a cls_bpf filter to %s's %s: %w", f.Ifname, f.Kind(), err)
	}
	return f, nil
}

// clsactQdisc is dev's clsact qdisc, or nil when it has none. An ingress
// qdisc sits where clsact would and has no egress hook: that is an error
// that says so.
func clsactQdisc(dev netlink.Link) (netlink.Qdisc, error) {
	qs, err := netlink.QdiscList(dev)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		qs, err = netlink.QdiscList(dev)
	}
	if err != nil {
		return nil, fmt.Errorf("list the qdiscs of %s: %w", dev.Attrs().Name, err)
	}
	for _, q := range qs {
		if q.Attrs().Parent != netlink.HANDLE_CLSACT {
			continue
		}
		if q.Type() == "clsact" {
			return q, nil
		}
		return nil, fmt.Errorf("%s has an %s qdisc where clsact goes ('tc qdisc show dev %s'); remove it if it is unused ('tc qdisc del dev %s ingress')",
			dev.Attrs().Name, q.Type(), dev.Attrs().Name, dev.Attrs().Name)
	}
	return nil, nil
}

// listFilters lists the filters under parent on dev; none when there is
// no clsact qdisc.
func listFilters(dev netlink.Link, parent uint32) ([]netlink.Filter, error) {
	fs, err := netlink.FilterList(dev, parent)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		fs, err = netlink.FilterList(dev, parent)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the tc filters of %s: %w", dev.Attrs().Name, err)
	}
	return fs, nil
}

// ClsactRemoved is what Remove found and did.
type ClsactRemoved struct {
	// Filter: the filter was there, running the program, and is gone.
	// False when it had gone already (or now runs another program, which
	// is then left alone).
	Filter bool
	// Qdisc: the clsact qdisc that came with the filter was removed too.
	// Kept when other filters use it.
	Qdisc bool
}

// Remove deletes the filter, but only while it still runs f.ProgID,
// and then the clsact qdisc when f added it and no filter is left under
// it. A device, qdisc or filter that has gone already is no error.
func (f *ClsactFilter) Remove() (ClsactRemoved, error) {
	var r ClsactRemoved
	dev, err := netlink.LinkByIndex(f.Ifindex)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return r, nil // the device went, and its filters with it
	}
	if err != nil {
		return r, fmt.Errorf("device %d (%s): %w", f.Ifindex, f.Ifname, err)
	}
	filters, err := listFilters(dev, f.Parent)
	if err != nil {
		return r, err
	}
	i := slices.IndexFunc(filters, func(x netlink.Filter) bool {
		bf, ok := x.(*netlink.BpfFilter)
		a := x.Attrs()
		return ok && a.Priority == f.Pref && a.Handle == f.Handle && uint32(bf.Id) == f.ProgID
	})
	if i < 0 || f.Handle == 0 { // handle 0 would delete every filter of the pref
		return r, nil
	}
	a := filters[i].Attrs()
	del := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: f.Ifindex, Parent: f.Parent, Handle: a.Handle, Priority: a.Priority, Protocol: a.Protocol}, Fd: -1}
	if err := netlink.FilterDel(del); err != nil && !errors.Is(err, unix.ENOENT) {
		return r, fmt.Errorf("remove the cls_bpf filter pref %d handle %d from %s's %s: %w", f.Pref, f.Handle, f.Ifname, f.Kind(), err)
	}
	r.Filter = true
	// The qdisc goes only when the filter was still in it: then it is
	// the qdisc that came with the filter (a qdisc is not removed with
	// its filters left in it, nor its filters moved to another).
	if !f.QdiscAdded {
		return r, nil
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		if left, err := listFilters(dev, parent); err != nil || len(left) > 0 {
			return r, err
		}
	}
	q := &netlink.GenericQdisc{QdiscType: "clsact",
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: f.Ifindex, Handle: clsactHandle, Parent: netlink.HANDLE_CLSACT}}
	if err := netlink.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return r, fmt.Errorf("remove the clsact qdisc of %s: %w", f.Ifname, err)
	}
	r.Qdisc = true
	return r, nil
}

// The marker
//
// A filter cannot be pinned, so PinMarker pins a one-entry array map
// whose value is the ClsactFilter as JSON: it sits beside the links a
// command pins, goes at reboot as the filter does, and lets a later
// process remove exactly that filter.

const (
	markerMapName   = "bpfsh_clsact"
	markerValueSize = 256
)

// PinMarker pins f at path.
func (f *ClsactFilter) PinMarker(path string) error {
	val, err := json.Marshal(f)
	if err != nil || len(val) > markerValueSize {
		return fmt.Errorf("record the cls_bpf filter: %d bytes of JSON (at most %d): %v", len(val), markerValueSize, err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: markerMapName, Type: ebpf.Array, KeySize: 4, ValueSize: markerValueSize, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("record the cls_bpf filter: %w", err)
	}
	defer m.Close()
	buf := make([]byte, markerValueSize)
	copy(buf, val)
	if err := m.Put(uint32(0), buf); err != nil {
		return fmt.Errorf("record the cls_bpf filter: %w", err)
	}
	if err := m.Pin(path); err != nil {
		return fmt.Errorf("pin the record of the cls_bpf filter at %s: %w", path, err)
	}
	return nil
}

// LoadMarker reads the ClsactFilter PinMarker pinned at path.
func LoadMarker(path string) (*ClsactFilter, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open the cls_bpf filter's record %s: %w", path, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil || info.Name != markerMapName || m.ValueSize() != markerValueSize {
		return nil, fmt.Errorf("%s is no record of a cls_bpf filter that bpfsh pinned", path)
	}
	buf := make([]byte, markerValueSize)
	if err := m.Lookup(uint32(0), &buf); err != nil {
		return nil, fmt.Errorf("read the cls_bpf filter's record %s: %w", path, err)
	}
	var f ClsactFilter
	if err := json.Unmarshal(bytes.TrimRight(buf, "\x00"), &f); err != nil {
		return nil, fmt.Errorf("the cls_bpf filter's record %s is damaged: %v", path, err)
	}
	return &f, nil
}
