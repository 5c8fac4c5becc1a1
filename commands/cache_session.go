// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/cache"
	"github.com/bpfsh/bpfsh/testrun"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// cacheSessionVar is the session variable that holds the cache commands'
// state (a *cacheSession); its dot keeps it out of reach of $NAME.
const cacheSessionVar = "cache.session"

// cacheSession is what the cache commands keep from one command to the
// next: the request id of the last UDP get, so that the requests of one
// session are told apart as a client's would be.
type cacheSession struct {
	reqid uint16
}

func cacheState(s *Session) *cacheSession {
	if st, ok := s.Vars[cacheSessionVar].(*cacheSession); ok {
		return st
	}
	st := &cacheSession{}
	if s.Vars == nil {
		s.Vars = map[string]any{}
	}
	s.Vars[cacheSessionVar] = st
	return st
}

// nextReqID is the request id of the session's next get (1, 2, ...; 0 is
// skipped when it wraps, so that every id looks chosen).
func (st *cacheSession) nextReqID() uint16 {
	st.reqid++
	if st.reqid == 0 {
		st.reqid = 1
	}
	return st.reqid
}

// The addresses the cache commands' packets use: a client at
// 10.0.0.1:40000 (UDP gets) and 10.0.0.1:40001 (TCP writes), memcached at
// 10.0.0.2 on the loaded program's cache_port. They are the packet
// layers' defaults, so the requests read as users would write them.
const (
	cacheClientMAC = "02:00:00:00:00:01"
	cacheServerMAC = "02:00:00:00:00:02"
	cacheClientIP  = "10.0.0.1"
	cacheServerIP  = "10.0.0.2"
	cacheUDPPort   = 40000
	cacheTCPPort   = 40001
	// The TCP write's sequence numbers; the server's acknowledgement
	// continues them.
	cacheClientSeq = 1000
	cacheServerSeq = 2000
)

// cacheTarget is one loaded cache the commands talk to.
type cacheTarget struct {
	name string
	dir  string // <pin-root>/NAME
	rx   *ebpf.Program
	fill *ebpf.Program
	m    *ebpf.Map // the cache map
	st   *ebpf.Map // the stats map
	port uint16
}

// openCache opens the cache loaded as name under the pin root: its two
// programs, the cache and stats maps, and the port its programs watch.
func openCache(s *Session, cmd, name string) (*cacheTarget, error) {
	dir := filepath.Join(s.PinRoot, name)
	if _, err := os.Stat(filepath.Join(dir, cache.RxProgram)); errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dir); derr == nil {
			return nil, fmt.Errorf("%s: %s under %s is not a cache: it has no %s program; load cache with another name", cmd, name, s.PinRoot, cache.RxProgram)
		}
		load := "load cache"
		if name != cache.BuiltinName {
			load += " name " + name
		}
		return nil, fmt.Errorf("%s: %s is not loaded under %s; run '%s'", cmd, name, s.PinRoot, load)
	}
	t := &cacheTarget{name: name, dir: dir}
	var err error
	if t.rx, err = ebpf.LoadPinnedProgram(filepath.Join(dir, cache.RxProgram), nil); err == nil {
		if t.fill, err = ebpf.LoadPinnedProgram(filepath.Join(dir, cache.FillProgram), nil); err == nil {
			if t.m, err = ebpf.LoadPinnedMap(filepath.Join(dir, cache.CacheMap), nil); err == nil {
				t.st, err = ebpf.LoadPinnedMap(filepath.Join(dir, cache.StatsMap), nil)
			}
		}
	}
	if err == nil {
		t.port, err = bpf.PinnedConstU16(dir, cache.VarPort, cache.Port)
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("%s: %s under %s is not a cache: %w", cmd, name, s.PinRoot, err)
	}
	return t, nil
}

func (t *cacheTarget) close() {
	for _, p := range []*ebpf.Program{t.rx, t.fill} {
		if p != nil {
			p.Close()
		}
	}
	for _, m := range []*ebpf.Map{t.m, t.st} {
		if m != nil {
			m.Close()
		}
	}
}

// cacheFlagArgs are the words every cache command takes besides its own
// (and cache set --flags N).
var cacheFlagArgs = argSpec{
	Flags:  []string{"--detail"},
	Valued: []string{"--name"},
	Need:   map[string]string{"--name": "the NAME cache was loaded as", "--flags": "the client flags (0 to 4294967295)"},
}

// cacheFlags takes --name NAME, --detail and --flags N out of args,
// wherever they are. flags is nil unless --flags was given.
func cacheFlags(cmd string, args []string, allowFlags bool) (name string, detail bool, flags *uint32, rest []string, err error) {
	name = cache.BuiltinName
	spec := cacheFlagArgs
	if allowFlags {
		spec.Valued = append(slices.Clone(spec.Valued), "--flags")
	}
	rest, err = spec.parse(args, func(w string, v ...string) error {
		switch w {
		case "--detail":
			detail = true
		case "--name":
			name = v[0]
		case "--flags":
			n, perr := strconv.ParseUint(v[0], 0, 32)
			if perr != nil {
				return Usagef("%s: --flags %q: the client flags are a number from 0 to 4294967295", cmd, v[0])
			}
			f := uint32(n)
			flags = &f
		}
		return nil
	})
	if err != nil {
		return "", false, nil, nil, err
	}
	for _, a := range rest {
		if strings.HasPrefix(a, "--") && len(a) > 2 {
			return "", false, nil, nil, Usagef("%s: unknown option %s", cmd, a)
		}
	}
	if verr := bpf.ValidName(name); verr != nil {
		err = Usagef("%s: --name: %v", cmd, verr)
	}
	return
}

// checkCacheKey refuses keys the program leaves to the server (PROTOCOL.md
// "Limits"): memcached's 1..250 bytes, each 0x21..0x7e.
func checkCacheKey(cmd string, key string) error {
	if len(key) == 0 {
		return Usagef("%s: the key is empty; keys have 1 to %d bytes", cmd, cache.MaxKey)
	}
	if len(key) > cache.MaxKey {
		return Usagef("%s: key of %d bytes is too long: memcached keys have 1 to %d bytes", cmd, len(key), cache.MaxKey)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return Usagef("%s: key %s has byte %#02x at %d: memcached keys are printable ASCII without spaces or control bytes (0x21..0x7e)", cmd, strconv.Quote(key), c, i)
		}
	}
	return nil
}

// cachePacket is one packet of a cache exchange: the direction and
// transport it travels, its text, and the layer expression that builds it.
type cachePacket struct {
	what string // "write", "ack", "get", "reply", "delete"
	udp  bool
	// toServer: from the client to memcached (xdp_cache_rx sees it);
	// otherwise from memcached to the client (tc_cache_fill sees it).
	toServer bool
	reqID    uint16 // UDP only
	text     []byte
	// tcpLen is the client's TCP payload length, for the ack's ack
	// number (server to client over TCP).
	tcpLen int
}

// expr is the packet as a layer expression, as a user would type it for
// run: Ether()/IPv4()/UDP(...)/MemcacheUDP(req_id=N)/Raw("get k\r\n").
func (p *cachePacket) expr(port uint16) string {
	var b strings.Builder
	if p.toServer {
		b.WriteString("Ether()/IPv4()/")
	} else {
		fmt.Fprintf(&b, "Ether(src=%s, dst=%s)/IPv4(src=%s, dst=%s)/", cacheServerMAC, cacheClientMAC, cacheServerIP, cacheClientIP)
	}
	switch {
	case p.udp && p.toServer:
		fmt.Fprintf(&b, "UDP(sport=%d, dport=%d)/MemcacheUDP(req_id=%d)/", cacheUDPPort, port, p.reqID)
	case p.udp:
		fmt.Fprintf(&b, "UDP(sport=%d, dport=%d)/MemcacheUDP(req_id=%d)/", port, cacheUDPPort, p.reqID)
	case p.toServer:
		fmt.Fprintf(&b, "TCP(sport=%d, dport=%d, flags=PA, seq=%d, ack=%d)/", cacheTCPPort, port, cacheClientSeq, cacheServerSeq)
	default:
		fmt.Fprintf(&b, "TCP(sport=%d, dport=%d, flags=PA, seq=%d, ack=%d)/", port, cacheTCPPort, cacheServerSeq, cacheClientSeq+p.tcpLen)
	}
	b.WriteString("Raw(" + packet.Quote(string(p.text)) + ")")
	return b.String()
}

// cacheStep is one packet run through one of the programs: what it was,
// the run, and the counters that moved.
type cacheStep struct {
	pkt   *cachePacket
	expr  string
	o     *testrun.Outcome
	moved []cache.Stat // counters that moved, by how much
}

// cacheStepJSON is a step in JSON (-j).
type cacheStepJSON struct {
	Step     string            `json:"step"`
	From     string            `json:"from"`
	To       string            `json:"to"`
	Proto    string            `json:"proto"`
	ReqID    *uint16           `json:"req_id,omitempty"`
	Text     string            `json:"text"`
	Packet   string            `json:"packet"`
	Program  string            `json:"program"`
	Verdict  string            `json:"verdict"`
	Counters map[string]uint64 `json:"counters"`
	Run      map[string]any    `json:"run,omitempty"`
}

// run builds p's frame from its expression and test-runs it through the
// program the real packet would meet: xdp_cache_rx on the way in to
// memcached, tc_cache_fill on the way out. detail keeps the run's map
// diff and trace for --detail.
func (t *cacheTarget) run(s *Session, p *cachePacket, detail bool) (*cacheStep, error) {
	expr := p.expr(t.port)
	data, err := packet.Build(expr)
	if err != nil {
		return nil, fmt.Errorf("build the %s packet %s: %w", p.what, expr, err)
	}
	prog, progName := t.rx, cache.RxProgram
	if !p.toServer {
		prog, progName = t.fill, cache.FillProgram
	}
	before, err := cache.ReadStats(t.st)
	if err != nil {
		return nil, err
	}
	if detail {
		s.AtExit("trace", testrun.CloseTrace)
	}
	o, err := testrun.Run(testrun.Options{Program: prog, Data: data, NoTrace: !detail, NoMaps: !detail})
	if err != nil {
		return nil, fmt.Errorf("test-run %s/%s: %w", t.name, progName, err)
	}
	// scratch is one packet's working memory, not state: its diff is
	// kilobytes of noise.
	maps := o.Maps[:0]
	for _, m := range o.Maps {
		if m.Map != "scratch" {
			maps = append(maps, m)
		}
	}
	o.Maps = maps
	after, err := cache.ReadStats(t.st)
	if err != nil {
		return nil, err
	}
	step := &cacheStep{pkt: p, expr: expr, o: o}
	for i := range after {
		if i < len(before) && after[i].Value != before[i].Value {
			st := after[i]
			st.Value -= before[i].Value
			step.moved = append(step.moved, st)
		}
	}
	return step, nil
}

// movedText is "get +1, miss +1", or "-" when nothing moved.
func (st *cacheStep) movedText() string {
	if len(st.moved) == 0 {
		return "-"
	}
	parts := make([]string, len(st.moved))
	for i, m := range st.moved {
		parts[i] = fmt.Sprintf("%s +%d", m.Name, m.Value)
	}
	return strings.Join(parts, ", ")
}

// movedBy is how much counter name moved in this step.
func (st *cacheStep) movedBy(name string) uint64 {
	for _, m := range st.moved {
		if m.Name == name {
			return m.Value
		}
	}
	return 0
}

func (st *cacheStep) json(detail bool) cacheStepJSON {
	p := st.pkt
	j := cacheStepJSON{Step: p.what, From: "client", To: "memcached", Proto: "tcp", Text: string(p.text), Packet: st.expr,
		Program: st.o.Program, Verdict: st.o.RetvalName, Counters: map[string]uint64{}}
	if !p.toServer {
		j.From, j.To = "memcached", "client"
	}
	if p.udp {
		j.Proto = "udp"
		id := p.reqID
		j.ReqID = &id
	}
	for _, m := range st.moved {
		j.Counters[m.Name] = m.Value
	}
	if detail {
		j.Run = st.o.JSON()
	}
	return j
}

// stepsText shows the steps of an exchange one line each: who sends
// what, through which program, its verdict, the counters that moved; with
// detail each run follows its line.
func stepsText(steps []*cacheStep, detail bool) string {
	var b strings.Builder
	rows := make([][]string, len(steps))
	width := make([]int, 5)
	for i, st := range steps {
		p := st.pkt
		dir := "client -> memcached"
		if !p.toServer {
			dir = "memcached -> client"
		}
		proto := "TCP"
		if p.udp {
			proto = fmt.Sprintf("UDP #%d", p.reqID)
		}
		rows[i] = []string{fmt.Sprintf("%d %s", i+1, dir), proto + " " + clipText(packet.Quote(string(p.text)), 48), st.o.Program, st.o.RetvalName, st.movedText()}
		for c, cell := range rows[i] {
			width[c] = max(width[c], len(cell))
		}
	}
	for i, r := range rows {
		for c, cell := range r {
			if c == len(r)-1 {
				b.WriteString(cell)
			} else {
				fmt.Fprintf(&b, "%-*s  ", width[c], cell)
			}
		}
		b.WriteByte('\n')
		if detail {
			b.WriteString(indent("packet:   "+steps[i].expr+"\n"+FormatOutcome(steps[i].o), "    "))
		}
	}
	return b.String()
}

// clipText shortens a long quoted text to n characters, saying so.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-4] + `..."`
}

// cacheKey is the cache map's key for key: its length and bytes,
// zero-padded to size (struct cache_key, PROTOCOL.md "Maps").
func cacheKey(key string, size uint32) []byte {
	k := make([]byte, max(size, 4+uint32(len(key))))
	binary.NativeEndian.PutUint32(k, uint32(len(key)))
	copy(k[4:], key)
	return k
}

// cached reads key's entry from the cache map: the reply text the cache
// answers with, and whether there is one.
func (t *cacheTarget) cached(key string) (text []byte, ok bool, err error) {
	v := make([]byte, t.m.ValueSize())
	if err := t.m.Lookup(cacheKey(key, t.m.KeySize()), &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("look up %q in %s/%s: %w", key, t.name, cache.CacheMap, err)
	}
	// struct cache_value: seq, gen, flush, key, flags, vlen, tlen, csum, text.
	if len(v) < int(cache.ValueTextOffset) {
		return nil, false, fmt.Errorf("%s/%s values have %d bytes, not a struct cache_value", t.name, cache.CacheMap, len(v))
	}
	// An odd word: a writer holds the entry (a fill or an invalidation
	// under way), or it is being removed; a hit would not take it.
	if binary.NativeEndian.Uint64(v[cache.ValueSeqOffset:])&1 != 0 {
		return nil, false, nil
	}
	tlen, off := int(binary.NativeEndian.Uint32(v[cache.ValueTlenOffset:])), int(cache.ValueTextOffset)
	if off+tlen > len(v) {
		return nil, false, fmt.Errorf("%s/%s entry for %q says its text has %d bytes, more than the value holds", t.name, cache.CacheMap, key, tlen)
	}
	return v[off : off+tlen], true, nil
}
