// SPDX-License-Identifier: Apache-2.0

package emu

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/asm"
)

func init() {
	const timeNote = "the program reads the time; the emulator's clock (the session's time base plus one nanosecond per instruction) is not the kernel's"
	register(
		helper{id: int32(asm.FnLoop), args: 4, fn: hLoop},
		helper{id: int32(asm.FnKtimeGetNs), fn: hKtime, incomparable: timeNote},
		helper{id: int32(asm.FnKtimeGetBootNs), fn: hKtime, incomparable: timeNote},
		helper{id: int32(asm.FnKtimeGetCoarseNs), fn: hKtime, incomparable: timeNote},
		helper{id: int32(asm.FnKtimeGetTaiNs), fn: hKtime, incomparable: timeNote},
		helper{id: int32(asm.FnJiffies64), fn: hJiffies, incomparable: timeNote},
		helper{id: int32(asm.FnGetPrandomU32), fn: hPrandom, incomparable: "the program draws random numbers; the emulator's come from the session's seed"},
		helper{id: int32(asm.FnGetSmpProcessorId), fn: hCPU},
		helper{id: int32(asm.FnGetNumaNodeId), fn: hZero},
		helper{id: int32(asm.FnTracePrintk), args: 5, fn: hTracePrintk},
		helper{id: int32(asm.FnTraceVprintk), args: 4, fn: hTraceVprintk},
		helper{id: int32(asm.FnSnprintf), args: 5, fn: hSnprintf},
		helper{id: int32(asm.FnSpinLock), args: 1, fn: hSpinLock},
		helper{id: int32(asm.FnSpinUnlock), args: 1, fn: hSpinLock},
		helper{id: int32(asm.FnTimerInit), args: 3, fn: hTimerInit},
		helper{id: int32(asm.FnTimerSetCallback), args: 2, fn: hTimerSetCallback},
		helper{id: int32(asm.FnTimerStart), args: 3, fn: hTimerStart},
		helper{id: int32(asm.FnTimerCancel), args: 1, fn: hTimerCancel},
		helper{id: int32(asm.FnProbeReadKernel), args: 3, fn: hProbeRead},
		helper{id: int32(asm.FnProbeReadKernelStr), args: 3, fn: hProbeReadStr},
		helper{id: int32(asm.FnGetCurrentPidTgid), fn: hPidTgid, incomparable: "the program reads the current task's pid, which the emulator does not know"},
	)
}

// loop is bpf_loop's state while its callback runs.
type loop struct {
	i, n  uint64
	fn    int32
	ctx   uint64
	retPC int32
}

func (l *loop) helper() string { return "bpf_loop" }

// maxLoops is BPF_MAX_LOOPS.
const maxLoops = 1 << 23

func hLoop(m *machine, c *hcall) bool {
	n := uint64(uint32(c.a[0]))
	if c.a[0] > maxLoops {
		c.ret = negErr(errE2BIG)
		return true
	}
	if c.a[3] != 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	fn, ok := m.funcArg(c.a[1])
	if !ok {
		return false
	}
	if n == 0 {
		c.ret = 0
		return true
	}
	st := &loop{n: n, fn: fn, ctx: c.a[2], retPC: m.pc + 1}
	if !m.pushFrame(frame{prog: m.prog, fn: fn, retPC: m.pc + 1, cb: st}) {
		return false
	}
	m.setReg(1, 0)
	m.setReg(2, st.ctx)
	m.pc = fn
	c.entered = true
	return true
}

func (l *loop) next(m *machine, r0 uint64) bool {
	old := l.i
	if m.j.on {
		m.j.fn(func() { l.i = old })
	}
	l.i++
	if r0 == 0 && l.i < l.n {
		m.setReg(1, l.i)
		m.setReg(2, l.ctx)
		return true
	}
	// 0 from the callback goes on, anything else stops: bpf_loop returns
	// the number of calls made.
	m.setReg(0, l.i)
	m.addEvent(Event{Kind: EventCallback, Helper: "bpf_loop", Ret: l.i, HasRet: true, Text: fmt.Sprintf("%d iterations", l.i)})
	return false
}

// now is the emulated clock: the session's time base plus one
// nanosecond per instruction executed, so that it moves forwards and a
// replay reads the same times.
func (m *machine) now() uint64 { return m.env.timeBase + m.steps }

func hKtime(m *machine, c *hcall) bool {
	c.ret = m.now()
	return true
}

func hJiffies(m *machine, c *hcall) bool {
	c.ret = m.now() / 4000000 // HZ=250
	return true
}

// splitmix64 scrambles the seed with the instruction count, so that a
// replay draws the same numbers.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func hPrandom(m *machine, c *hcall) bool {
	c.ret = uint64(uint32(splitmix64(m.env.seed ^ m.steps*0x2545f4914f6cdd1d)))
	return true
}

func hCPU(m *machine, c *hcall) bool {
	c.ret = uint64(m.env.cpu)
	return true
}

func hZero(m *machine, c *hcall) bool {
	c.ret = 0
	return true
}

func hPidTgid(m *machine, c *hcall) bool {
	c.ret = uint64(m.env.cfg.PidTgid)
	return true
}

// printk formats and records a trace line.
func (m *machine) printk(c *hcall, format string, args []uint64) bool {
	out, incomparable, err := m.bprintf(format, args)
	if err != nil {
		c.ret = negErr(errEINVAL)
		c.ev.Text = err.Error()
		return true
	}
	if incomparable != "" {
		m.env.noteIncomparable(incomparable)
	}
	c.ret = uint64(len(out))
	c.noEvent = true
	m.addEvent(Event{Kind: EventPrintk, Helper: c.name, HelperID: c.id, Args: c.ev.Args, Text: strings.TrimRight(out, "\n"), Ret: c.ret, HasRet: true})
	return true
}

func (m *machine) formatArg(addr uint64, size uint64) (string, bool) {
	if size == 0 {
		return "", true
	}
	b, ok := m.readBytes(addr, uint32(size))
	if !ok {
		return "", false
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	} else {
		return "", true // the kernel wants the format NUL-terminated
	}
	return string(b), true
}

func hTracePrintk(m *machine, c *hcall) bool {
	format, ok := m.formatArg(c.a[0], c.a[1])
	if !ok {
		return false
	}
	return m.printk(c, format, c.a[2:5])
}

// hTraceVprintk is bpf_trace_vprintk(fmt, fmt_size, data, data_len): the
// arguments are an array of u64.
func hTraceVprintk(m *machine, c *hcall) bool {
	format, ok := m.formatArg(c.a[0], c.a[1])
	if !ok {
		return false
	}
	args, ok := m.u64Array(c.a[2], c.a[3])
	if !ok {
		return false
	}
	return m.printk(c, format, args)
}

func (m *machine) u64Array(addr, n uint64) ([]uint64, bool) {
	if n == 0 {
		return nil, true
	}
	b, ok := m.readBytes(addr, uint32(n))
	if !ok {
		return nil, false
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = uint64(b[8*i]) | uint64(b[8*i+1])<<8 | uint64(b[8*i+2])<<16 | uint64(b[8*i+3])<<24 |
			uint64(b[8*i+4])<<32 | uint64(b[8*i+5])<<40 | uint64(b[8*i+6])<<48 | uint64(b[8*i+7])<<56
	}
	return out, true
}

// hSnprintf is bpf_snprintf(str, str_size, fmt, data, data_len): it
// returns the length the whole output needs, NUL included.
func hSnprintf(m *machine, c *hcall) bool {
	format, ok := m.cString(c.a[2], 1024)
	if !ok {
		return m.helperErr(fmt.Errorf("bpf_snprintf's format at %s", m.describeAddr(c.a[2])))
	}
	args, ok := m.u64Array(c.a[3], c.a[4])
	if !ok {
		return false
	}
	out, incomparable, err := m.bprintf(format, args)
	if err != nil {
		c.ret = negErr(errEINVAL)
		return true
	}
	if incomparable != "" {
		m.env.noteIncomparable(incomparable)
	}
	size := c.a[1]
	if size > 0 {
		b := []byte(out)
		if uint64(len(b)) >= size {
			b = b[:size-1]
		}
		b = append(b, 0)
		if !m.writeBytes(c.a[0], b) {
			return false
		}
	}
	c.ret = uint64(len(out) + 1)
	c.ev.Text = out
	return true
}

// hSpinLock is bpf_spin_lock and bpf_spin_unlock: one program runs at a
// time in the emulator, so the lock is always free. The lock word is a
// special field user space never sees, so it is left alone.
func hSpinLock(m *machine, c *hcall) bool {
	c.ret = 0
	return true
}

// timerState is what the session did to one bpf_timer.
type timerState struct {
	inited   bool
	callback int32
	started  bool
}

func (m *machine) timerAt(addr uint64) (*timerState, bool) {
	r, _, ok := m.resolve(addr, 16)
	if !ok || r.kind != RegionMapValue {
		m.fault(fmt.Sprintf("a bpf_timer at %s, not in a map value", m.describeAddr(addr)))
		return nil, false
	}
	t := m.env.timers[addr]
	if t == nil {
		t = &timerState{callback: -1}
		m.env.timers[addr] = t
	}
	return t, true
}

func (m *machine) setTimer(t *timerState, nt timerState) {
	old := *t
	if m.j.on {
		m.j.fn(func() { *t = old })
	}
	*t = nt
}

// The bpf_timer helpers are recorded, not fired: a timer a run starts
// would run its callback later, outside the run. A timer starts the
// session uninitialized, as it is in the maps the kernel check clones.
const timerNote = "timers are recorded, not fired"

func hTimerInit(m *machine, c *hcall) bool {
	t, ok := m.timerAt(c.a[0])
	if !ok {
		return false
	}
	if t.inited {
		c.ret = negErr(errEBUSY)
		return true
	}
	nt := *t
	nt.inited = true
	m.setTimer(t, nt)
	c.ev.Text = timerNote
	c.ret = 0
	return true
}

func hTimerSetCallback(m *machine, c *hcall) bool {
	t, ok := m.timerAt(c.a[0])
	if !ok {
		return false
	}
	fn, ok := m.funcArg(c.a[1])
	if !ok {
		return false
	}
	if !t.inited {
		c.ret = negErr(errEINVAL)
		return true
	}
	nt := *t
	nt.callback = fn
	m.setTimer(t, nt)
	if f, ok := m.prog.FuncAt(int(fn)); ok {
		c.ev.Text = "callback " + f.Name + "; " + timerNote
	}
	c.ret = 0
	return true
}

func hTimerStart(m *machine, c *hcall) bool {
	t, ok := m.timerAt(c.a[0])
	if !ok {
		return false
	}
	if !t.inited || t.callback < 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	nt := *t
	nt.started = true
	m.setTimer(t, nt)
	c.ev.Text = fmt.Sprintf("would fire in %d ns; %s", c.a[1], timerNote)
	c.ret = 0
	return true
}

func hTimerCancel(m *machine, c *hcall) bool {
	t, ok := m.timerAt(c.a[0])
	if !ok {
		return false
	}
	if !t.inited {
		c.ret = negErr(errEINVAL)
		return true
	}
	nt := *t
	was := nt.started
	nt.started = false
	m.setTimer(t, nt)
	c.ret = 0
	if was {
		c.ret = 1
	}
	return true
}

// hProbeRead is bpf_probe_read_kernel(dst, size, src): a copy when src is
// memory the emulator knows; otherwise the kernel's answer to a bad
// address (-EFAULT, dst zeroed), noted as not comparable.
func hProbeRead(m *machine, c *hcall) bool {
	n := uint32(c.a[1])
	r, _, ok := m.resolve(c.a[2], n)
	var b []byte
	if ok && r.ctx == nil && !r.dead {
		b, _ = m.readBytes(c.a[2], n)
		c.ret = 0
	} else {
		b = make([]byte, n)
		c.ret = negErr(14) // EFAULT
		m.env.noteIncomparable(fmt.Sprintf("bpf_probe_read_kernel read %s, which the emulator does not model", m.describeAddr(c.a[2])))
	}
	if !m.writeBytes(c.a[0], b) {
		return false
	}
	return true
}

func hProbeReadStr(m *machine, c *hcall) bool {
	n := uint32(c.a[1])
	if n == 0 {
		c.ret = negErr(errEINVAL)
		return true
	}
	s, ok := m.cString(c.a[2], int(n)-1)
	if !ok {
		c.ret = negErr(14)
		m.env.noteIncomparable(fmt.Sprintf("bpf_probe_read_kernel_str read %s, which the emulator does not model", m.describeAddr(c.a[2])))
		return m.writeBytes(c.a[0], make([]byte, 1))
	}
	b := append([]byte(s), 0)
	if !m.writeBytes(c.a[0], b) {
		return false
	}
	c.ret = uint64(len(b))
	return true
}
