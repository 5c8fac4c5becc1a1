// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringConsumer reads the log ring buffer in place and releases records
// only when told to. cilium/ebpf's ringbuf.Reader advances the consumer
// position as soon as a record is read, so a writer killed between
// reading and fsyncing would lose records that the kernel already
// committed; here the position advances only after the records are
// durable in the WAL, so the ring itself holds everything not yet on
// disk, a killed writer loses nothing while the maps live, and a new
// writer picks up where the old one stopped.
//
// The mapping is the kernel's (kernel/bpf/ringbuf.c): page 0 holds the
// consumer position (writable), page 1 the producer position, then the
// data pages mapped twice in a row so that a record that wraps around is
// contiguous. Each record has an 8-byte header: len u32 (bit 31: still
// being written, bit 30: discarded) and a page offset; data is padded to 8.
type ringConsumer struct {
	m    *ebpf.Map
	cons []byte
	prod []byte
	data []byte
	mask uint64
	epfd int
	evfd int
	evs  []unix.EpollEvent
}

const (
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	ringHdrSize    = 8
)

// openRing maps the ring buffer m (cloned: the consumer owns its fd).
func openRing(m *ebpf.Map) (*ringConsumer, error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("log map is a %s, not a ringbuf", m.Type())
	}
	size := int(m.MaxEntries())
	if size == 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("log ring of %d bytes is not a power of two", size)
	}
	m, err := m.Clone()
	if err != nil {
		return nil, fmt.Errorf("log ring: %w", err)
	}
	r := &ringConsumer{m: m, mask: uint64(size - 1), epfd: -1, evfd: -1, evs: make([]unix.EpollEvent, 2)}
	fail := func(what string, err error) (*ringConsumer, error) {
		r.close()
		return nil, fmt.Errorf("log ring: %s: %w", what, err)
	}
	page := os.Getpagesize()
	if r.cons, err = unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("map consumer page", err)
	}
	if r.prod, err = unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return fail("map data pages", err)
	}
	r.data = r.prod[page:]
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fail("epoll", err)
	}
	if r.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail("eventfd", err)
	}
	for _, fd := range []int{m.FD(), r.evfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fail("epoll add", err)
		}
	}
	return r, nil
}

func (r *ringConsumer) close() {
	if r.cons != nil {
		unix.Munmap(r.cons)
		r.cons = nil
	}
	if r.prod != nil {
		unix.Munmap(r.prod)
		r.prod, r.data = nil, nil
	}
	if r.epfd >= 0 {
		unix.Close(r.epfd)
		r.epfd = -1
	}
	if r.evfd >= 0 {
		unix.Close(r.evfd)
		r.evfd = -1
	}
	r.m.Close()
}

// consumerPos is how far records have been released to the kernel.
func (r *ringConsumer) consumerPos() uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.cons[0])))
}

// producerPos is the end of the last reserved record: every record
// reserved so far (committed or not) lies before it.
func (r *ringConsumer) producerPos() uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.prod[0])))
}

// release hands the ring up to pos back to the kernel.
func (r *ringConsumer) release(pos uint64) {
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&r.cons[0])), pos)
}

// ringSample is one record of the ring.
type ringSample struct {
	data    []byte // the record, in the mapped ring: copy before release
	next    uint64 // position of the record after it
	busy    bool   // reserved, not yet submitted: stop here
	discard bool   // discarded by the program: skip it
}

// at reads the record at pos, which must be before prod.
func (r *ringConsumer) at(pos, prod uint64) (ringSample, error) {
	if prod-pos < ringHdrSize {
		return ringSample{}, fmt.Errorf("log ring: %d bytes at position %d are less than a record header", prod-pos, pos)
	}
	// The kernel publishes a record by clearing the busy bit with an
	// atomic exchange; load the header atomically so that the data is
	// visible once the bit is seen clear.
	hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[pos&r.mask])))
	if hdr&ringBusyBit != 0 {
		return ringSample{busy: true}, nil
	}
	n := uint64(hdr &^ (ringBusyBit | ringDiscardBit))
	next := pos + ringHdrSize + (n+7)&^7
	if n > r.mask+1 || next > prod {
		return ringSample{}, fmt.Errorf("log ring: record of %d bytes at position %d runs past the producer position %d", n, pos, prod)
	}
	start := (pos + ringHdrSize) & r.mask
	return ringSample{data: r.data[start : start+n], next: next, discard: hdr&ringDiscardBit != 0}, nil
}

// wait sleeps until the kernel signals new data, wake is called, or
// timeout passes.
func (r *ringConsumer) wait(timeout time.Duration) error {
	n, err := unix.EpollWait(r.epfd, r.evs, int(timeout.Milliseconds()))
	if err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("log ring: epoll: %w", err)
	}
	for _, ev := range r.evs[:max(n, 0)] {
		if int(ev.Fd) == r.evfd {
			var b [8]byte
			unix.Read(r.evfd, b[:])
		}
	}
	return nil
}

// wake interrupts wait.
func (r *ringConsumer) wake() {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	unix.Write(r.evfd, b[:])
}
