// SPDX-License-Identifier: Apache-2.0

package kv

import (
	"fmt"
	"slices"
	"strings"
)

// Dependency graphs
//
// Adya's formalism, as Elle applies it to list-append histories: between
// committed transactions there is an edge
//
//   - ww when T2 installed the version of a key right after T1's (T2
//     appended the element after T1's),
//   - wr when T2 read the version T1 installed (its read ends in T1's
//     element),
//   - rw when T1 read a version and T2 installed the next one (an
//     anti-dependency: T1 must come before T2).
//
// A serializable history has a serial order that respects every edge, so
// the graph has no cycle. A cycle is named by its edges: only ww is G0
// (dirty write), ww and wr is G1c (circular information flow), exactly one
// rw is G-single (read skew, lost update), more is G2 (write skew and
// other anti-dependency cycles). Each strongly connected component of the
// graph is one violation, reported with a shortest cycle of the most
// severe kind found in it.

// dep is one edge.
type dep struct {
	from, to *Txn
	kind     string // ww, wr, rw
	text     string // the edge in words
}

// depGraph is the dependencies among committed transactions.
type depGraph struct {
	out   map[*Txn][]dep
	nodes []*Txn
	seen  map[[2]*Txn]map[string]bool
}

func newDepGraph() *depGraph {
	return &depGraph{out: map[*Txn][]dep{}, seen: map[[2]*Txn]map[string]bool{}}
}

// add adds an edge unless one of its kind joins the pair already.
func (g *depGraph) add(from, to *Txn, kind, format string, args ...any) {
	if from == nil || to == nil || from == to {
		return
	}
	pair := [2]*Txn{from, to}
	if g.seen[pair][kind] {
		return
	}
	if g.seen[pair] == nil {
		g.seen[pair] = map[string]bool{}
	}
	g.seen[pair][kind] = true
	for _, t := range []*Txn{from, to} {
		if _, ok := g.out[t]; !ok {
			g.out[t] = nil
			g.nodes = append(g.nodes, t)
		}
	}
	g.out[from] = append(g.out[from], dep{from: from, to: to, kind: kind, text: fmt.Sprintf(format, args...)})
}

// graph builds the dependencies that the keys' orders and the committed
// reads give. Keys whose reads fit no one order give none.
func (a *appendAnalysis) graph() *depGraph {
	g := newDepGraph()
	writer := func(key, e string) *Txn {
		if w := a.writers[key][e]; w != nil && a.committed[w.t] {
			return w.t
		}
		return nil
	}
	keys := make([]string, 0, len(a.order))
	for k := range a.order {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if a.broken[k] {
			continue
		}
		o := a.order[k]
		for i := 1; i < len(o); i++ {
			g.add(writer(k, o[i-1]), writer(k, o[i]), "ww", "%s appended %s to %s, then %s appended %s",
				nameOf(writer(k, o[i-1])), o[i-1], k, nameOf(writer(k, o[i])), o[i])
		}
	}
	for i, r := range a.reads {
		if r.t == nil || a.broken[r.key] || a.unsound[i] || !a.committed[r.t] {
			continue
		}
		o, m := a.order[r.key], len(r.list)
		if m > 0 {
			w := writer(r.key, r.list[m-1])
			g.add(w, r.t, "wr", "%s read %s=%s, ending in %s's %s", r.t.Name(), r.key, showList(r.list), nameOf(w), r.list[m-1])
		}
		if m < len(o) {
			w := writer(r.key, o[m])
			g.add(r.t, w, "rw", "%s read %s=%s and %s appended the next element, %s", r.t.Name(), r.key, showList(r.list), nameOf(w), o[m])
		}
	}
	slices.SortFunc(g.nodes, func(x, y *Txn) int { return x.N - y.N })
	return g
}

func nameOf(t *Txn) string { return t.Name() }

// components is the graph's strongly connected components of more than
// one transaction (Tarjan's algorithm).
func (g *depGraph) components() [][]*Txn {
	index := map[*Txn]int{}
	low := map[*Txn]int{}
	on := map[*Txn]bool{}
	var stack []*Txn
	var out [][]*Txn
	var visit func(t *Txn)
	visit = func(t *Txn) {
		index[t] = len(index)
		low[t] = index[t]
		stack = append(stack, t)
		on[t] = true
		for _, e := range g.out[t] {
			if _, ok := index[e.to]; !ok {
				visit(e.to)
				low[t] = min(low[t], low[e.to])
			} else if on[e.to] {
				low[t] = min(low[t], index[e.to])
			}
		}
		if low[t] != index[t] {
			return
		}
		var c []*Txn
		for {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			on[x] = false
			c = append(c, x)
			if x == t {
				break
			}
		}
		if len(c) > 1 {
			slices.SortFunc(c, func(x, y *Txn) int { return x.N - y.N })
			out = append(out, c)
		}
	}
	for _, t := range g.nodes {
		if _, ok := index[t]; !ok {
			visit(t)
		}
	}
	return out
}

// searchBudget bounds the searches for a cycle of a kind in one
// component: a large component (a badly broken run) is still reported
// quickly, perhaps with a less precise kind.
const searchBudget = 64

// path is a shortest path from src to dst over edges of the kinds allowed
// that stay in the component; src == dst asks for a cycle.
func (g *depGraph) path(src, dst *Txn, in map[*Txn]bool, allowed ...string) []dep {
	prev := map[*Txn]dep{}
	visited := map[*Txn]bool{src: true}
	queue := []*Txn{src}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, e := range g.out[x] {
			if !in[e.to] || !slices.Contains(allowed, e.kind) {
				continue
			}
			if e.to == dst {
				p := []dep{e}
				for at := x; at != src; at = prev[at].from {
					p = append(p, prev[at])
				}
				slices.Reverse(p)
				return p
			}
			if !visited[e.to] {
				visited[e.to] = true
				prev[e.to] = e
				queue = append(queue, e.to)
			}
		}
	}
	return nil
}

// cycle finds a cycle in component c, of the most severe kind it can.
func (g *depGraph) cycle(c []*Txn) (string, []dep) {
	in := map[*Txn]bool{}
	for _, t := range c {
		in[t] = true
	}
	starts := c[:min(len(c), searchBudget)]
	for _, k := range []struct {
		name    string
		allowed []string
	}{{"G0", []string{"ww"}}, {"G1c", []string{"ww", "wr"}}} {
		for _, s := range starts {
			if p := g.path(s, s, in, k.allowed...); p != nil {
				return k.name, p
			}
		}
	}
	tries := 0
	for _, t := range c {
		for _, e := range g.out[t] {
			if e.kind != "rw" || !in[e.to] {
				continue
			}
			if tries++; tries > searchBudget {
				break
			}
			if p := g.path(e.to, e.from, in, "ww", "wr"); p != nil {
				return "G-single", append([]dep{e}, p...)
			}
		}
	}
	return "G2", g.path(c[0], c[0], in, "ww", "wr", "rw")
}

// cycles reports one violation per component.
func (g *depGraph) cycles() []Violation {
	var v []Violation
	for _, c := range g.components() {
		kind, p := g.cycle(c)
		names := make([]string, 0, len(p)+1)
		steps := make([]string, 0, len(p))
		txns := make([]*Txn, 0, len(p))
		for _, e := range p {
			names = append(names, e.from.Name())
			steps = append(steps, e.text+" ("+e.kind+")")
			txns = append(txns, e.from)
		}
		if len(p) > 0 {
			names = append(names, p[0].from.Name())
		}
		v = append(v, violation(kind, txns, "%s: a cycle of dependencies among %d transactions, e.g. %s: %s",
			cycleWhat[kind], len(c), strings.Join(names, " -> "), strings.Join(steps, "; ")))
	}
	return v
}

var cycleWhat = map[string]string{
	"G0":       "dirty write",
	"G1c":      "circular information flow",
	"G-single": "read skew or lost update (one anti-dependency)",
	"G2":       "anti-dependency cycle (write skew)",
}
