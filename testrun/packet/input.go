// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/bpfsh/bpfsh/bpf/hexbytes"
)

// Packet is a packet given on a command line, ready to run or compare.
type Packet struct {
	// Data is the packet's bytes.
	Data []byte
	// First names the layer Data starts with: the expression's first
	// layer; "Ether" for hex and files (IPv4 or IPv6 for a raw-IP pcap).
	First string
	// Expr is the expression the packet was built from; nil for hex and
	// files. expect packet matches with it when set.
	Expr *Expr
	// Source says where the packet came from: "hex", "@FILE", "$NAME" or
	// the expression's text.
	Source string
}

// Layers decodes the packet.
func (p *Packet) Layers() []Layer { return Decode(p.Data, p.First) }

// Summary is "42 bytes: Ether/IPv4/UDP/Raw".
func (p *Packet) Summary() string {
	return fmt.Sprintf("%d bytes: %s", len(p.Data), Summary(p.Layers()))
}

// Input reads a packet from the words of a command line where a packet is
// expected, in any of these forms:
//
//	hex 00 11 22 ...     bytes in hex, in one word or several (0x optional)
//	@FILE                a file's bytes, or the first packet of a pcap or
//	                     pcapng file (recognised by its magic number)
//	$NAME                a packet kept with let NAME = ...
//	EXPR                 a layer expression; the words are joined with
//	                     single blanks first, so "Ether() / IPv4()" works
//
// vars are the session's variables; a variable may hold a *Packet (as let
// stores it) or []byte. Errors from an expression are *Error, with the
// column counted in the joined words.
//
// $NAME/LAYER... is the kept packet's layers followed by more, built
// afresh (lengths and checksums computed for the whole).
//
// A mistake in how the packet was written is an *Error (a column, when
// there is one); a file that cannot be read is any other error.
func Input(words []string, vars map[string]any) (*Packet, error) {
	if len(words) == 0 {
		return nil, &Error{Msg: "no packet given; write a layer expression such as Ether()/IPv4()/UDP()/Raw(\"ping\"), hex 00 11 .., @FILE or $NAME"}
	}
	first := words[0]
	switch {
	case first == "hex":
		data, err := parseHexWords(words[1:])
		if err != nil {
			return nil, &Error{Msg: err.Error()}
		}
		return &Packet{Data: data, First: "Ether", Source: "hex"}, nil
	case strings.HasPrefix(first, "@"):
		if len(words) > 1 {
			return nil, &Error{Msg: fmt.Sprintf("%s: unexpected %q after the file name", first, words[1])}
		}
		return readFile(first[1:])
	case strings.HasPrefix(first, "$") && ExprWords(words) == 1 && !strings.Contains(first, "/"):
		return lookupVar(first[1:], vars)
	}
	if n := ExprWords(words); n < len(words) && !LooksLikeLayer(words[n]) {
		return nil, &Error{Msg: fmt.Sprintf("unexpected %q after the packet %s", clipText(words[n], 60), clipText(strings.Join(words[:n], " "), 60))}
	}
	text := strings.Join(words, " ")
	e, err := parseWith(text, func(name string) (*Expr, error) { return keptExpr(name, vars) })
	if err != nil {
		return nil, err
	}
	data, err := e.Build()
	if err != nil {
		return nil, err
	}
	return &Packet{Data: data, First: e.Layers[0].Def.Name, Expr: e, Source: text}, nil
}

// Expected reads the expected packet of "expect packet ...": a layer
// expression, parsed but not built so that '*' wildcards are allowed, or
// any other form Input reads. For a packet kept from an expression the
// expression is used (only its written fields are compared); for bytes
// (hex, @FILE), an expression of every decoded field, so all must match.
func Expected(words []string, vars map[string]any) (*Expr, error) {
	if len(words) > 0 && words[0] != "hex" && !strings.HasPrefix(words[0], "@") && !strings.HasPrefix(words[0], "$") {
		return Parse(strings.Join(words, " "))
	}
	p, err := Input(words, vars)
	if err != nil {
		return nil, err
	}
	return p.Expectation()
}

// Expectation is the expression a packet is compared with: the one it was
// built from, or one that writes every decoded field.
func (p *Packet) Expectation() (*Expr, error) {
	if p.Expr != nil {
		return p.Expr, nil
	}
	if len(p.Data) == 0 {
		return nil, errors.New("the packet is empty")
	}
	return Parse(Format(p.Layers()))
}

// parseHexWords reads the words after "hex" (see package hexbytes).
func parseHexWords(words []string) ([]byte, error) {
	b, err := hexbytes.Parse(words)
	if err != nil {
		return nil, fmt.Errorf("hex: %w", err)
	}
	return b, nil
}

func lookupVar(name string, vars map[string]any) (*Packet, error) {
	v, ok := vars[name]
	if !ok {
		return nil, &Error{Msg: noVar(name, vars)}
	}
	switch p := v.(type) {
	case *Packet:
		c := *p
		c.Source = "$" + name
		return &c, nil
	case []byte:
		return &Packet{Data: p, First: "Ether", Source: "$" + name}, nil
	}
	return nil, &Error{Msg: fmt.Sprintf("$%s holds %T, not a packet", name, v)}
}

// keptExpr is the expression the packet in $name was built from, for
// $name/LAYER.
func keptExpr(name string, vars map[string]any) (*Expr, error) {
	v, ok := vars[name]
	if !ok {
		return nil, errors.New(noVar(name, vars))
	}
	if p, ok := v.(*Packet); ok && p.Expr != nil {
		return p.Expr, nil
	}
	return nil, fmt.Errorf("$%s holds bytes (hex or @FILE), not layers, so no layer can follow it; keep it from a layer expression (let %s = Ether()/...)", name, name)
}

// noVar says that $name is not set, and which variables are.
func noVar(name string, vars map[string]any) string {
	msg := fmt.Sprintf("$%s: no such variable; keep a packet with let %s = EXPR", name, name)
	if !validVarName(name) {
		msg = fmt.Sprintf("$%s: no such variable (a name is letters, digits and '_')", name)
	}
	if len(vars) > 0 {
		names := make([]string, 0, len(vars))
		for n := range vars {
			names = append(names, "$"+n)
		}
		slices.Sort(names)
		msg += "; set: " + strings.Join(names, ", ")
	}
	return msg
}

func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// ExprWords is how many of the leading words form one layer expression:
// the first word, and each next word while the expression goes on across
// the blank: inside a quote or brackets, or next to '/', '=', ',' or an
// opening bracket ("Ether() / IPv4()", "Ether(src", "=", "zz)"). The
// shell keeps (...) whole, so "IPv4(ttl=3, id=5)" is one word anyway.
// What follows is not the packet's: a command's next option, or a word
// typed by mistake.
func ExprWords(words []string) int {
	if len(words) == 0 {
		return 0
	}
	depth, quote := 0, rune(0)
	n := 0
	for n < len(words) {
		for _, r := range words[n] {
			switch {
			case quote != 0:
				if r == quote {
					quote = 0
				}
			case r == '"' || r == '\'':
				quote = r
			case r == '(' || r == '[':
				depth++
			case r == ')' || r == ']':
				depth--
			}
		}
		n++
		if n == len(words) {
			break
		}
		prev, next := words[n-1], words[n]
		goesOn := depth > 0 || quote != 0 ||
			strings.HasSuffix(prev, "/") || strings.HasSuffix(prev, "=") || strings.HasSuffix(prev, ",") || strings.HasSuffix(prev, "(") || strings.HasSuffix(prev, "[") ||
			strings.HasPrefix(next, "/") || strings.HasPrefix(next, "=") || strings.HasPrefix(next, ",") || strings.HasPrefix(next, ")") || strings.HasPrefix(next, "]")
		if !goesOn {
			break
		}
	}
	return n
}

// LooksLikeLayer reports whether word starts with a layer's name followed
// by '(' or '/' or nothing ("IPv4()", "UDP"): a layer that lost its '/'.
func LooksLikeLayer(word string) bool {
	name := word
	if i := strings.IndexAny(word, "(/"); i >= 0 {
		name = word[:i]
	}
	return name != "" && Lookup(name) != nil
}

// clipText shortens s to about n characters for a message.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// pcap magic numbers, as the file's first 4 bytes read big-endian.
var pcapMagics = map[uint32]bool{
	0xa1b2c3d4: true, 0xd4c3b2a1: true, // microseconds
	0xa1b23c4d: true, 0x4d3cb2a1: true, // nanoseconds
}

const pcapngMagic = 0x0a0d0d0a // section header block

// readWhole is os.ReadFile, errors and all, in plain system calls: a
// script of runs reads its @FILE once a run, and os.ReadFile's way with
// the runtime's poller (two fcntl calls and an epoll_ctl each time) cost
// more than the read. A file read before and unchanged since comes from
// fileCache for one stat(2).
func readWhole(path string) ([]byte, error) {
	if data, ok := cachedFile(path); ok {
		return data, nil
	}
	return readWholeFile(path)
}

// fileCache keeps the last files readWhole read, with what stat said of
// them. A file is unchanged while stat says the same inode, size, mtime
// and ctime: any write sets ctime to the time of the write, which no call
// can set back. The clock that stamps it may be coarse (a tick, 4-10 ms),
// so a file is kept only once its ctime is over 100 ms older than the stat
// that found it (a file written just now is read every time until then:
// a later write then stamps a later ctime), and
// only on local filesystems whose ctime the kernel keeps itself (not
// procfs or a network filesystem, where content changes without it).
var fileCache struct {
	sync.Mutex
	m     map[string]cachedStat
	local map[uint64]bool // by st_dev: a filesystem fit for the cache
}

type cachedStat struct {
	dev, ino, size uint64
	mtime, ctime   unix.Timespec
	data           []byte
}

// cacheableFS are the filesystems (statfs f_type) fileCache trusts.
var cacheableFS = map[int64]bool{
	unix.TMPFS_MAGIC: true, unix.EXT4_SUPER_MAGIC: true, unix.XFS_SUPER_MAGIC: true,
	unix.BTRFS_SUPER_MAGIC: true, unix.OVERLAYFS_SUPER_MAGIC: true,
}

// cachedFile is path's content from fileCache (a copy), if path is there
// and unchanged; otherwise it notes path's stat for readWholeFile's read.
func cachedFile(path string) ([]byte, bool) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > 1<<20 {
		return nil, false
	}
	fileCache.Lock()
	c, ok := fileCache.m[path]
	local, knownFS := fileCache.local[st.Dev]
	fileCache.Unlock()
	if ok && c.dev == st.Dev && c.ino == st.Ino && c.size == uint64(st.Size) && c.mtime == st.Mtim && c.ctime == st.Ctim {
		return bytes.Clone(c.data), true
	}
	if !knownFS {
		var fs unix.Statfs_t
		local = unix.Statfs(path, &fs) == nil && cacheableFS[int64(fs.Type)]
		fileCache.Lock()
		if fileCache.local == nil {
			fileCache.local = map[uint64]bool{}
		}
		fileCache.local[st.Dev] = local
		fileCache.Unlock()
	}
	if !local || time.Since(time.Unix(st.Ctim.Unix())) < 100*time.Millisecond {
		return nil, false
	}
	data, err := readWholeFile(path)
	if err != nil || int64(len(data)) != st.Size {
		return nil, false // readWhole reads it again and says why
	}
	// Stat again: a write between the stat and the read must not be kept
	// under the first stat.
	var again unix.Stat_t
	if unix.Stat(path, &again) != nil || again.Ino != st.Ino || again.Ctim != st.Ctim || again.Size != st.Size {
		return nil, false
	}
	fileCache.Lock()
	if fileCache.m == nil || len(fileCache.m) >= 64 {
		fileCache.m = map[string]cachedStat{}
	}
	fileCache.m[path] = cachedStat{dev: st.Dev, ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim, ctime: st.Ctim, data: data}
	fileCache.Unlock()
	return bytes.Clone(data), true
}

// readWholeFile reads path in plain system calls.
func readWholeFile(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	size := 512
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Size > 0 && st.Size < 1<<30 {
		size = int(st.Size) + 1
	}
	data := make([]byte, 0, size)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := unix.Read(fd, data[len(data):cap(data)])
		if n > 0 {
			data = data[:len(data)+n]
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return data, nil
		}
	}
}

// readFile reads a raw packet file or the first packet of a capture.
func readFile(path string) (*Packet, error) {
	if path == "" {
		return nil, errors.New("@: no file name; write @FILE")
	}
	data, err := readWhole(path)
	if err != nil {
		return nil, fmt.Errorf("@%s: %w", path, err)
	}
	src := "@" + path
	if len(data) >= 4 {
		magic := uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3])
		switch {
		case pcapMagics[magic]:
			r, err := pcapgo.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("%s: pcap file: %w", src, err)
			}
			return firstPacket(src, r, r.LinkType())
		case magic == pcapngMagic:
			r, err := pcapgo.NewNgReader(bufio.NewReader(bytes.NewReader(data)), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				return nil, fmt.Errorf("%s: pcapng file: %w", src, err)
			}
			return firstPacket(src, r, r.LinkType())
		}
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", src)
	}
	return &Packet{Data: data, First: "Ether", Source: src}, nil
}

// packetReader is what pcapgo's pcap and pcapng readers have in common.
type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

func firstPacket(src string, r packetReader, link layers.LinkType) (*Packet, error) {
	data, _, err := r.ReadPacketData()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the capture holds no packets", src)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read the first packet: %w", src, err)
	}
	first := "Ether"
	switch link {
	case layers.LinkTypeEthernet:
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		first = "IPv4"
		if len(data) > 0 && data[0]>>4 == 6 {
			first = "IPv6"
		}
	default:
		return nil, fmt.Errorf("%s: link type %v is not Ethernet or raw IP; export the capture as Ethernet", src, link)
	}
	return &Packet{Data: bytes.Clone(data), First: first, Source: src}, nil
}
