// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gopacket/gopacket"
)

// LayerDef describes one layer the expression language knows: its fields,
// how to build it, how to decode it, and how the layer below announces it.
// Register it once, from an init function.
type LayerDef struct {
	// Name is what users type, e.g. "IPv4". Names are matched without
	// regard to case; output always uses this spelling.
	Name string
	// Aliases are other names accepted in expressions ("IP" for IPv4).
	Aliases []string
	// Summary is a one-line description for help.
	Summary string
	// Fields are the layer's fields in header order. Decode reports them
	// in this order and Format writes them so.
	Fields []FieldDef
	// Positional is the field set by an argument written without a name
	// in first position (Raw("ping") sets load). Empty: none.
	Positional string
	// Variadic lets several bare values in first position make up the
	// Positional field, a list of strings: RESP("GET", "foo") is
	// RESP(args=["GET", "foo"]), as a command line is written.
	Variadic bool
	// Binds say which value of a lower layer's field announces this layer
	// (UDP is IP protocol 17; a memcached layer is UDP port 11211).
	// Decoding uses every Bind to choose the next layer. Building uses the
	// first Bind for a given lower layer to default that lower field when
	// it was not written (UDP()/Memcached() gets dport=11211).
	Binds []Bind
	// Trailer marks a layer that is appended after the frame is built and
	// counted in no length or checksum (Padding). Trailers come last.
	Trailer bool
	// Build turns the fields into a layer gopacket can serialize. It runs
	// for the layers in order, outermost first, so c.Lower is already built;
	// serialization then runs innermost first, so SerializeTo sees its
	// payload in the buffer. Errors name no layer or column; Build adds them.
	Build func(c *BuildContext) (gopacket.SerializableLayer, error)
	// Decode reads the layer from the start of data, which ends where the
	// enclosing payload ends. lower is the layer decoded below it (nil when
	// first), for checks that need it such as transport checksums. Nil
	// means the layer is never decoded: its bytes show as Raw.
	Decode func(data []byte, lower *Layer) (*Decoded, error)

	fields map[string]*FieldDef
}

// Bind says that a lower layer whose field Field has value Value carries
// this layer: Bind{Lower: "IPv4", Field: "proto", Value: 17} on UDP.
type Bind struct {
	Lower string
	Field string
	Value uint64
}

// Field returns the definition of the named field (aliases resolved), or
// nil.
func (d *LayerDef) Field(name string) *FieldDef {
	return d.fields[strings.ToLower(name)]
}

var registry = struct {
	sync.RWMutex
	byName map[string]*LayerDef
	order  []*LayerDef
}{byName: map[string]*LayerDef{}}

// Register adds a layer to the expression language. It panics when the
// definition is malformed or its name is taken: that is a programming
// error, found by the first test that imports the package.
func Register(d *LayerDef) {
	if err := d.prepare(); err != nil {
		panic("packet.Register: " + err.Error())
	}
	registry.Lock()
	defer registry.Unlock()
	for _, n := range append([]string{d.Name}, d.Aliases...) {
		if old, ok := registry.byName[strings.ToLower(n)]; ok {
			panic(fmt.Sprintf("packet.Register: %s: name %q is taken by %s", d.Name, n, old.Name))
		}
	}
	for _, n := range append([]string{d.Name}, d.Aliases...) {
		registry.byName[strings.ToLower(n)] = d
	}
	registry.order = append(registry.order, d)
}

// Lookup returns the layer registered under name or one of its aliases,
// matched without regard to case, or nil.
func Lookup(name string) *LayerDef {
	registry.RLock()
	defer registry.RUnlock()
	return registry.byName[strings.ToLower(name)]
}

// Layers returns every registered layer in registration order.
func Layers() []*LayerDef {
	registry.RLock()
	defer registry.RUnlock()
	return slices.Clone(registry.order)
}

// prepare checks d and indexes its fields.
func (d *LayerDef) prepare() error {
	if !isIdent(d.Name) {
		return fmt.Errorf("layer name %q is not an identifier", d.Name)
	}
	if d.Build == nil {
		return fmt.Errorf("%s: no Build function", d.Name)
	}
	d.fields = map[string]*FieldDef{}
	for i := range d.Fields {
		f := &d.Fields[i]
		key := strings.ToLower(f.Name)
		if !isIdent(f.Name) {
			return fmt.Errorf("%s: field name %q is not an identifier", d.Name, f.Name)
		}
		if _, dup := d.fields[key]; dup {
			return fmt.Errorf("%s: field %q defined twice", d.Name, f.Name)
		}
		f.layer = d
		d.fields[key] = f
	}
	for i := range d.Fields {
		f := &d.Fields[i]
		if f.Alias != "" {
			target := d.fields[strings.ToLower(f.Alias)]
			if target == nil || target.Alias != "" {
				return fmt.Errorf("%s.%s: alias of unknown field %q", d.Name, f.Name, f.Alias)
			}
			f.target = target
		}
		if err := f.prepare(); err != nil {
			return fmt.Errorf("%s.%s: %v", d.Name, f.Name, err)
		}
	}
	if d.Positional != "" && d.Field(d.Positional) == nil {
		return fmt.Errorf("%s: positional field %q is not a field", d.Name, d.Positional)
	}
	return nil
}

// bindFor returns the value this layer (d) asks of the lower layer's
// field when building: the first Bind for lower, if it names field.
func (d *LayerDef) bindFor(lower, field string) (uint64, bool) {
	registry.RLock()
	defer registry.RUnlock()
	for _, b := range d.Binds {
		if bindsLower(b, lower) {
			return b.Value, strings.EqualFold(b.Field, field)
		}
	}
	return 0, false
}

// bindsLower reports whether b is about the layer named lower (canonical
// name); b.Lower may be an alias. The caller holds the registry lock.
func bindsLower(b Bind, lower string) bool {
	if d := registry.byName[strings.ToLower(b.Lower)]; d != nil {
		return d.Name == lower
	}
	return strings.EqualFold(b.Lower, lower)
}

// announcedKin finds a layer of the same family as next (one name begins
// with the other: ICMP and ICMPv6) that lower does announce through field:
// what was meant by IPv6()/ICMP(). "" when there is none.
func announcedKin(lower, field, next string) string {
	registry.RLock()
	defer registry.RUnlock()
	n := strings.ToLower(next)
	for _, d := range registry.order {
		name := strings.ToLower(d.Name)
		if name == n || !(strings.HasPrefix(name, n) || strings.HasPrefix(n, name)) {
			continue
		}
		for _, b := range d.Binds {
			if bindsLower(b, lower) && strings.EqualFold(b.Field, field) {
				return d.Name
			}
		}
	}
	return ""
}

// layerBetween finds a layer that lower announces and that announces next:
// the layer left out of Ether()/UDP(). "" when there is none.
func layerBetween(lower, next string) string {
	registry.RLock()
	defer registry.RUnlock()
	nd := registry.byName[strings.ToLower(next)]
	if nd == nil {
		return ""
	}
	for _, mid := range registry.order {
		announced, announces := false, false
		for _, b := range mid.Binds {
			announced = announced || bindsLower(b, lower)
		}
		for _, b := range nd.Binds {
			announces = announces || bindsLower(b, mid.Name)
		}
		if announced && announces {
			return mid.Name
		}
	}
	return ""
}

// nextLayer finds the layer that l announces through a registered Bind.
func nextLayer(l *Layer) *LayerDef {
	registry.RLock()
	defer registry.RUnlock()
	for _, d := range registry.order {
		for _, b := range d.Binds {
			if !bindsLower(b, l.Name) {
				continue
			}
			if f := l.Field(b.Field); f != nil {
				if v, ok := f.val.(uint64); ok && v == b.Value {
					return d
				}
			}
		}
	}
	return nil
}

// suggest returns the candidate closest to word, if close enough to be a
// likely typo.
func suggest(word string, candidates []string) string {
	best, bestDist := "", 1<<30
	w := strings.ToLower(word)
	// A shortening ("eth", "ip6") is what people type from other tools;
	// the shortest name it begins is the one meant.
	for _, c := range candidates {
		if len(w) >= 2 && strings.HasPrefix(strings.ToLower(c), w) && (best == "" || len(c) < len(best)) {
			best = c
		}
	}
	if best != "" {
		return best
	}
	for _, c := range candidates {
		d := editDistance(w, strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist <= max(1, len(word)/2) {
		return best
	}
	return ""
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count
// once, so "Ehter" is one step from "Ether").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func layerNames() []string {
	var names []string
	for _, d := range Layers() {
		names = append(names, d.Name)
		names = append(names, d.Aliases...)
	}
	return names
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// The built-in layers, registered in the order "packet layers" lists them
// and decoding tries their Binds.
func init() {
	for _, d := range []*LayerDef{etherDef, dot1qDef, ipv4Def, ipv6Def, udpDef, tcpDef, icmpDef, icmpv6Def, rawDef, paddingDef} {
		Register(d)
	}
}
