// SPDX-License-Identifier: Apache-2.0

package shell

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfsh/bpfsh/bpf"
)

// literal completes the member names inside a {...} key or value literal
// ("map update kv/store key {sa" offers saddr:) from the BTF type of the
// map named earlier on the line.
func (c *completer) literal(words []string) {
	if len(words) == 0 {
		return
	}
	which := words[len(words)-1]
	if which != "key" && which != "value" {
		return
	}
	ref, ok := findRef(words[:len(words)-1], c.s.PinRoot)
	if !ok {
		return
	}
	kv := mapTypes(ref, c.s.PinRoot)
	t := kv.key
	if which == "value" {
		t = kv.value
	}
	lit, ok := parseLiteral(c.cur, t)
	if !ok {
		return
	}
	start := c.start + len(c.cur) - len(lit.partial)
	for _, m := range lit.members {
		if m.Name == "" || lit.typed[m.Name] || !strings.HasPrefix(m.Name, lit.partial) {
			continue
		}
		c.out = append(c.out, Suggestion{Text: m.Name + ":", Desc: bpf.TypeName(m.Type), Start: start})
	}
}

// findRef finds the first object reference among words, as the commands
// would read it: id N, pinned PATH, name NAME, /path or NAME/OBJ.
func findRef(words []string, pinRoot string) (bpf.Ref, bool) {
	for i, w := range words {
		var try []string
		switch {
		case w == "id" || w == "pinned" || w == "name":
			if i+1 < len(words) {
				try = words[i : i+2]
			}
		case strings.Contains(w, "/"):
			try = words[i : i+1]
		}
		if try == nil {
			continue
		}
		if ref, _, err := bpf.ParseRef(try, pinRoot); err == nil {
			return ref, true
		}
	}
	return bpf.Ref{}, false
}

// openLiteral is where the cursor is inside a struct literal.
type openLiteral struct {
	members []btf.Member    // of the innermost struct or union being typed
	typed   map[string]bool // its members already given
	partial string          // the member name typed so far
}

// parseLiteral follows raw (an unfinished literal such as
// "{saddr: 1, inner: {x: 2, y") down the BTF type t and reports the
// members of the struct the cursor is in, when the cursor is where a
// member name goes.
func parseLiteral(raw string, t btf.Type) (openLiteral, bool) {
	type frame struct {
		open  byte     // '{' or '['
		t     btf.Type // what this literal builds; nil when unknown
		field string   // the member whose value is being typed
		typed map[string]bool
		token strings.Builder
		colon bool // after "name:": a value is being typed
	}
	var stack []*frame
	var quote byte
	for i := 0; i < len(raw); i++ {
		ch := raw[i]
		if quote != 0 {
			if ch == quote {
				quote = 0
			}
			continue
		}
		if len(stack) == 0 {
			if ch != '{' && ch != '[' {
				return openLiteral{}, false // not a struct or array literal
			}
			stack = append(stack, &frame{open: ch, t: t, typed: map[string]bool{}})
			continue
		}
		top := stack[len(stack)-1]
		switch ch {
		case '"', '\'':
			quote = ch
			top.token.WriteByte(ch)
		case '{', '[':
			var inner btf.Type
			if top.open == '{' {
				inner = memberType(top.t, top.field)
			} else {
				inner = elemType(top.t)
			}
			stack = append(stack, &frame{open: ch, t: inner, typed: map[string]bool{}})
		case '}', ']':
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return openLiteral{}, false // the literal is closed
			}
		case ',':
			top.field, top.colon = "", false
			top.token.Reset()
		case ':':
			if top.open == '{' && !top.colon {
				top.field = strings.TrimSpace(top.token.String())
				top.typed[top.field] = true
				top.colon = true
				top.token.Reset()
			}
		default:
			top.token.WriteByte(ch)
		}
	}
	if quote != 0 || len(stack) == 0 {
		return openLiteral{}, false
	}
	top := stack[len(stack)-1]
	if top.open != '{' || top.colon {
		return openLiteral{}, false
	}
	partial := strings.TrimLeft(top.token.String(), " \t")
	if strings.ContainsAny(partial, " \t\"'") {
		return openLiteral{}, false
	}
	return openLiteral{members: bpf.Members(top.t), typed: top.typed, partial: partial}, true
}

func memberType(t btf.Type, name string) btf.Type {
	for _, m := range bpf.Members(t) {
		if m.Name == name {
			return m.Type
		}
	}
	return nil
}

func elemType(t btf.Type) btf.Type {
	if a, ok := btf.UnderlyingType(t).(*btf.Array); ok {
		return a.Type
	}
	return nil
}

// mapKV is the BTF of a map's key and value (nil where it has none).
type mapKV struct {
	key, value btf.Type
	at         time.Time
}

var mapKVCache struct {
	sync.Mutex
	m map[string]mapKV
}

// mapTypes looks up the BTF key and value types of the map ref names,
// reusing the answer for a moment: the completer runs on every keystroke.
func mapTypes(ref bpf.Ref, pinRoot string) mapKV {
	id := pinRoot + "\x00" + string(ref.Kind) + "\x00" + ref.Value
	mapKVCache.Lock()
	defer mapKVCache.Unlock()
	if kv, ok := mapKVCache.m[id]; ok && time.Since(kv.at) < kernelCacheTTL {
		return kv
	}
	if mapKVCache.m == nil || len(mapKVCache.m) > 256 {
		mapKVCache.m = map[string]mapKV{}
	}
	kv, _ := loadMapTypes(ref)
	kv.at = time.Now()
	mapKVCache.m[id] = kv
	return kv
}

// loadMapTypes reads the key and value types of the map ref names, with
// one bpf(2) call and the map's BTF (no /proc fdinfo, as on every keystroke).
func loadMapTypes(ref bpf.Ref) (mapKV, error) {
	if ref.Kind == bpf.RefTag {
		return mapKV{}, errors.New("maps have no tag")
	}
	m, err := bpf.Map(ref)
	if err != nil {
		return mapKV{}, err
	}
	defer m.Close()
	d, err := bpf.MapKernelInfo(m)
	if err != nil {
		return mapKV{}, err
	}
	d.ResolveTypes(nil)
	return mapKV{key: d.Key, value: d.Value}, d.BTFErr
}
