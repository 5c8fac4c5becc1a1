// SPDX-License-Identifier: Apache-2.0

package testrun

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf"
)

// The live sockmap harness
//
// The kernel cannot test-run sk_skb and sk_msg programs (BPF_PROG_TEST_RUN
// says ENOTSUPP): they only ever run on real sockets. The harness gives
// them real sockets: N loopback TCP connections in a private network
// namespace, the server end of connection k inserted at key k of the
// program's sockmap (or sockhash), the program attached to the map, and
// the payload sent through connection From:
//
//   - sk_skb: the client end of From writes; the bytes arrive on the server
//     end, whose receive path runs the verdict program;
//   - sk_msg: the server end of From writes; its send path runs the program.
//
// Then every socket is read for a bounded time, and where the bytes turned
// up says what the program did: on the socket they were meant for (passed),
// on another connection (redirected to that key, through its egress or into
// its receive queue), or nowhere (dropped). Afterwards the keys are deleted,
// the program detached (when the harness attached it) and the sockets
// closed; the namespace goes with them.

// HarnessOptions configures the live harness.
type HarnessOptions struct {
	// Map is the sockmap or sockhash to use; nil picks the program's own,
	// when it uses exactly one.
	Map *ebpf.Map
	// Attach is where the program is attached to the map; 0 picks the
	// stream verdict for sk_skb and the msg verdict for sk_msg.
	Attach ebpf.AttachType
	// Sockets is how many connections to insert, at keys 0..Sockets-1;
	// 0 means as many as the map holds, at most 4.
	Sockets int
	// From is the key of the connection the payload goes through.
	From int
	// Wait bounds how long to wait for the bytes to arrive once sent
	// (default 500 ms); the harness stops as soon as all of them have.
	Wait time.Duration
}

// LiveOutcome is what the live harness saw.
type LiveOutcome struct {
	Map    string // the sockmap's name
	MapID  ebpf.MapID
	Attach string // where the program was attached, e.g. sk_skb_stream_verdict
	From   int    // the key whose connection the payload went through
	Sent   int    // bytes sent
	// Verdict is "passed", "redirected" or "dropped"; To is the key the
	// bytes were redirected to and Ingress whether into its receive queue
	// (BPF_F_INGRESS) rather than out of it.
	Verdict string
	To      int
	Ingress bool
	// Summary says it in one line.
	Summary string
	// Arrivals lists every socket that received bytes.
	Arrivals []Arrival
	// SendError is the error the sender got, if any (an sk_msg SK_DROP
	// fails the send with EACCES).
	SendError string
}

// Arrival is what one socket received.
type Arrival struct {
	Key  int    `json:"key"`
	Side string `json:"side"` // "socket" (the end in the map) or "peer"
	Data []byte `json:"-"`
}

// defaultAttach is where a program of type t goes by default.
func defaultAttach(t ebpf.ProgramType) ebpf.AttachType {
	if t == ebpf.SkMsg {
		return ebpf.AttachSkMsgVerdict
	}
	return ebpf.AttachSkSKBStreamVerdict
}

func attachName(a ebpf.AttachType) string {
	switch a {
	case ebpf.AttachSkSKBStreamVerdict:
		return "sk_skb_stream_verdict"
	case ebpf.AttachSkSKBStreamParser:
		return "sk_skb_stream_parser"
	case ebpf.AttachSkSKBVerdict:
		return "sk_skb_verdict"
	case ebpf.AttachSkMsgVerdict:
		return "sk_msg_verdict"
	}
	return a.String()
}

// harnessError says that the kernel cannot test-run this type and why the
// harness that replaces it could not run either.
func harnessError(t ebpf.ProgramType, format string, args ...any) error {
	return fmt.Errorf("program type %s cannot be test-run by the kernel; bpfsh runs it through the live sockmap harness instead: %s",
		typeName(t), fmt.Sprintf(format, args...))
}

// runHarness runs an sk_skb or sk_msg program on real sockets.
func runHarness(opts Options, info *ebpf.ProgramInfo, o *Outcome) (*Outcome, error) {
	t := info.Type
	h := opts.Harness
	if len(opts.Data) == 0 {
		return nil, harnessError(t, "give the payload to send (the TCP payload, not a whole frame)")
	}
	if opts.Repeat > 1 || opts.Bench || opts.OnCPU || opts.Flags != 0 || opts.LiveFrames || len(opts.Ctx) > 0 || opts.CtxRaw != nil {
		return nil, harnessError(t, "it sends the payload once; repeat, bench, cpu, flags, live and ctx do not apply")
	}
	attach := h.Attach
	if attach == 0 {
		attach = defaultAttach(t)
	}
	m, err := harnessMap(t, info, h.Map)
	if err != nil {
		return nil, err
	}
	if h.Map == nil {
		defer m.Close()
	}
	minfo, err := m.Info()
	if err != nil {
		return nil, harnessError(t, "read the sockmap's info: %v", err)
	}
	if minfo.KeySize != 4 {
		return nil, harnessError(t, "map %s has %d-byte keys; the harness inserts sockets at u32 keys 0, 1, ...", minfo.Name, minfo.KeySize)
	}
	n := h.Sockets
	if n == 0 {
		n = min(int(minfo.MaxEntries), 4)
	}
	if n < 1 || n > int(minfo.MaxEntries) || n > 64 {
		return nil, harnessError(t, "%d sockets: map %s holds %d (and the harness makes at most 64)", n, minfo.Name, minfo.MaxEntries)
	}
	if h.From < 0 || h.From >= n {
		return nil, harnessError(t, "from key %d: the sockets are at keys 0..%d", h.From, n-1)
	}
	for k := range n {
		var v uint64
		val := any(&v)
		if minfo.ValueSize == 4 {
			val = new(uint32)
		}
		err := m.Lookup(uint32(k), val)
		if err == nil {
			return nil, harnessError(t, "map %s already holds a socket at key %d; the harness needs keys 0..%d free (use a map of its own, or fewer sockets)", minfo.Name, k, n-1)
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, harnessError(t, "look up key %d of map %s: %v", k, minfo.Name, err)
		}
	}

	mapID, _ := minfo.ID()
	live := &LiveOutcome{Map: minfo.Name, MapID: mapID, Attach: attachName(attach), From: h.From, Sent: len(opts.Data)}
	o.Live = live

	// Attach before inserting: a socket takes the map's programs when it
	// is added.
	progID, _ := info.ID()
	attached, err := attachedTo(m, attach)
	if err != nil {
		return nil, harnessError(t, "query what is attached to map %s: %v", minfo.Name, err)
	}
	switch {
	case slices.Contains(attached, progID):
		// Already in place (e.g. by the user's own setup): leave it be.
	case len(attached) > 0:
		return nil, harnessError(t, "map %s already has program id %d attached as %s; detach it first or use another map", minfo.Name, attached[0], attachName(attach))
	default:
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: m.FD(), Program: opts.Program, Attach: attach}); err != nil {
			return nil, harnessError(t, "attach the program to map %s as %s: %v", minfo.Name, attachName(attach), err)
		}
		defer link.RawDetachProgram(link.RawDetachProgramOptions{Target: m.FD(), Program: opts.Program, Attach: attach})
	}

	pairs, err := loopbackPairs(n)
	if err != nil {
		return nil, harnessError(t, "%v", err)
	}
	defer closePairs(pairs)
	for k, p := range pairs {
		fd, err := socketFD(p.Server)
		if err == nil {
			var val any = uint64(fd)
			if minfo.ValueSize == 4 {
				val = uint32(fd)
			}
			err = m.Update(uint32(k), val, ebpf.UpdateNoExist)
		}
		if err != nil {
			return nil, harnessError(t, "insert socket %d into map %s: %v", k, minfo.Name, err)
		}
		defer m.Delete(uint32(k))
	}

	snaps := startMapDiff(info, opts, nil)
	defer snaps.close()
	wait := h.Wait
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	arrivals, sendErr, lines, note := sendAndCollect(t, pairs, h.From, opts.Data, wait, !opts.NoTrace)
	o.collect(opts.Program, note, lines, true)
	o.Maps, o.MapNotes = snaps.diff()
	o.MapMethods = snaps.Methods()
	o.MapRuns = 1
	o.markOthers(snaps, wait)
	live.Arrivals = arrivals
	if sendErr != nil {
		live.SendError = sendErr.Error()
	}
	live.classify(t)
	o.DataIn = opts.Data
	o.RetvalName = live.Verdict
	o.Notes = append(o.Notes, "live harness: "+live.Summary)
	return o, nil
}

// harnessMap picks the sockmap to use.
func harnessMap(t ebpf.ProgramType, info *ebpf.ProgramInfo, given *ebpf.Map) (*ebpf.Map, error) {
	if given != nil {
		gi, err := given.Info()
		if err != nil {
			return nil, harnessError(t, "read the given map's info: %v", err)
		}
		if gi.Type != ebpf.SockMap && gi.Type != ebpf.SockHash {
			return nil, harnessError(t, "map %s is a %s, not a sockmap or sockhash", gi.Name, bpf.MapTypeName(uint32(gi.Type)))
		}
		return given, nil
	}
	ids, _ := info.MapIDs()
	var found []*ebpf.Map
	var names []string
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		mi, err := m.Info()
		if err != nil || (mi.Type != ebpf.SockMap && mi.Type != ebpf.SockHash) {
			m.Close()
			continue
		}
		found = append(found, m)
		names = append(names, mi.Name)
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, harnessError(t, "the program uses no sockmap or sockhash; name the map its sockets should be in (map REF)")
	}
	for _, m := range found {
		m.Close()
	}
	return nil, harnessError(t, "the program uses %d sockmaps (%s); name the one its sockets should be in (map REF)", len(found), strings.Join(names, ", "))
}

// attachedTo lists the programs attached to sockmap m at a.
func attachedTo(m *ebpf.Map, a ebpf.AttachType) ([]ebpf.ProgramID, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: m.FD(), Attach: a})
	if err != nil {
		return nil, err
	}
	ids := make([]ebpf.ProgramID, len(res.Programs))
	for i, p := range res.Programs {
		ids[i] = p.ID
	}
	return ids, nil
}

// sendAndCollect sends payload through connection from and reads every
// socket until all the bytes have turned up somewhere or wait has passed.
// The sender's thread is captured for bpf_printk lines: on loopback the
// receive path (and so an sk_skb verdict) usually runs on it too.
func sendAndCollect(t ebpf.ProgramType, pairs []connPair, from int, payload []byte, wait time.Duration, trace bool) ([]Arrival, error, []TraceLine, string) {
	type reader struct {
		key  int
		side string
		conn *net.TCPConn
		data []byte
	}
	var readers []*reader
	for k, p := range pairs {
		readers = append(readers, &reader{key: k, side: "socket", conn: p.Server}, &reader{key: k, side: "peer", conn: p.Client})
	}
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
		got   = make(chan struct{}, 1)
	)
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64*1024)
			for {
				n, err := r.conn.Read(buf)
				if n > 0 {
					mu.Lock()
					r.data = append(r.data, buf[:n]...)
					total += n
					mu.Unlock()
					select {
					case got <- struct{}{}:
					default:
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}

	sender := pairs[from].Client
	if t == ebpf.SkMsg {
		sender = pairs[from].Server
	}
	var (
		lines   []TraceLine
		note    string
		sendErr error
	)
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var c *capture
		if trace {
			var err error
			if c, err = startCapture(unix.Gettid()); err != nil {
				note = "bpf_printk lines not captured: " + err.Error()
			}
		}
		// A small write on a fresh connection does not block; the
		// generous deadline only guards against a stuck one.
		sender.SetWriteDeadline(time.Now().Add(2*time.Second + wait))
		_, sendErr = sender.Write(payload)
		// Wait for the bytes while still on the sending thread, so the
		// lines the receive path prints on it are captured. The wait
		// starts when the send is done: a busy machine may be slow to
		// get there.
		deadline := time.Now().Add(wait)
		for {
			mu.Lock()
			done := total >= len(payload)
			mu.Unlock()
			if done || time.Now().After(deadline) {
				break
			}
			select {
			case <-got:
			case <-time.After(time.Until(deadline)):
			}
		}
		if c != nil {
			lines, _ = c.finish()
		}
	}()
	for _, r := range readers {
		r.conn.SetReadDeadline(time.Now())
	}
	wg.Wait()
	var out []Arrival
	for _, r := range readers {
		if len(r.data) > 0 {
			out = append(out, Arrival{Key: r.key, Side: r.side, Data: r.data})
		}
	}
	if errors.Is(sendErr, os.ErrDeadlineExceeded) {
		sendErr = fmt.Errorf("the send did not complete within %v", 2*time.Second+wait)
	}
	return out, sendErr, lines, note
}

// classify says where the bytes went. For sk_skb the payload arrives at
// the From socket's receive path: staying there is a pass, turning up on
// another connection's peer a redirect out of that socket, in another
// socket's own receive queue a redirect with BPF_F_INGRESS. For sk_msg the
// From socket sends: its peer receiving is a pass.
func (l *LiveOutcome) classify(t ebpf.ProgramType) {
	var got *Arrival
	for i := range l.Arrivals {
		if got == nil || len(l.Arrivals[i].Data) > len(got.Data) {
			got = &l.Arrivals[i]
		}
	}
	switch {
	case got == nil && l.SendError != "":
		l.Verdict, l.Summary = "dropped", fmt.Sprintf("dropped: the send failed (%s) and no socket received anything", l.SendError)
		return
	case got == nil:
		l.Verdict, l.Summary = "dropped", fmt.Sprintf("dropped: none of the %d bytes reached any socket", l.Sent)
		return
	}
	passSide := "socket"
	if t == ebpf.SkMsg {
		passSide = "peer"
	}
	l.To = got.Key
	switch {
	case got.Key == l.From && got.Side == passSide:
		l.Verdict = "passed"
		if t == ebpf.SkMsg {
			l.Summary = fmt.Sprintf("passed: key %d's peer received %d bytes, as sent", got.Key, len(got.Data))
		} else {
			l.Summary = fmt.Sprintf("passed up to the original receiver: key %d's socket received %d bytes", got.Key, len(got.Data))
		}
	case got.Side == "peer":
		l.Verdict = "redirected"
		l.Summary = fmt.Sprintf("redirected to key %d (egress): sent out of key %d's socket, its peer received %d bytes", got.Key, got.Key, len(got.Data))
	default:
		l.Verdict, l.Ingress = "redirected", true
		l.Summary = fmt.Sprintf("redirected to key %d (ingress): key %d's socket received %d bytes in its own receive queue", got.Key, got.Key, len(got.Data))
	}
	if total := arrivedBytes(l.Arrivals); total != l.Sent {
		l.Summary += fmt.Sprintf(" (%d of %d bytes arrived in all)", total, l.Sent)
	}
}

func arrivedBytes(as []Arrival) int {
	n := 0
	for _, a := range as {
		n += len(a.Data)
	}
	return n
}
