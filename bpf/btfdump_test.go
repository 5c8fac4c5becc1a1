// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestCDecl checks the declarators C makes hard: pointers to arrays and
// functions, qualifiers on pointers, varargs.
func TestCDecl(t *testing.T) {
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed | btf.Char}
	i32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	arr := &btf.Array{Type: char, Nelems: 4}
	proto := &btf.FuncProto{Return: i32, Params: []btf.FuncParam{{Name: "a", Type: &btf.Pointer{Target: &btf.Void{}}}, {Type: &btf.Void{}}}}
	for _, c := range []struct {
		t    btf.Type
		name string
		want string
	}{
		{arr, "x", "char x[4]"},
		{&btf.Array{Type: &btf.Pointer{Target: char}, Nelems: 4}, "x", "char *x[4]"},
		{&btf.Pointer{Target: arr}, "x", "char (*x)[4]"},
		{&btf.Pointer{Target: proto}, "fn", "int (*fn)(void *a, ...)"},
		{&btf.Pointer{Target: &btf.FuncProto{Return: &btf.Void{}}}, "", "void (*)(void)"},
		{&btf.Const{Type: &btf.Pointer{Target: char}}, "p", "char *const p"},
		{&btf.Pointer{Target: &btf.Const{Type: char}}, "p", "const char *p"},
		{&btf.Array{Type: &btf.Array{Type: i32, Nelems: 3}, Nelems: 2}, "m", "int m[2][3]"},
		{&btf.Struct{Name: "s"}, "", "struct s"},
	} {
		if got := CDecl(c.t, c.name); got != c.want {
			t.Errorf("CDecl(%v, %q) = %q, want %q", c.t, c.name, got, c.want)
		}
	}
}

// TestCDefinitions checks the order of definitions, inline anonymous
// members, bitfields, and a struct that names itself through a typedef.
func TestCDefinitions(t *testing.T) {
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	typ := &btf.Typedef{Name: "__u32", Type: u32}
	node := &btf.Struct{Name: "node", Size: 16}
	nodeT := &btf.Typedef{Name: "node_t", Type: &btf.Pointer{Target: node}}
	color := &btf.Enum{Name: "color", Size: 4, Values: []btf.EnumValue{{Name: "RED", Value: 0}, {Name: "BLUE", Value: 2}}}
	inner := &btf.Union{Size: 4, Members: []btf.Member{{Name: "a", Type: typ}, {Name: "b", Type: color}}}
	node.Members = []btf.Member{
		{Name: "next", Type: nodeT},
		{Name: "flags", Type: u32, BitfieldSize: 3},
		{Name: "", Type: inner, Offset: 64},
	}
	got := CDefinitions(node)
	want := `typedef struct node *node_t;
typedef unsigned int __u32;

enum color {
	RED = 0,
	BLUE = 2,
};

struct node {
	node_t next;
	unsigned int flags : 3;
	union {
		__u32 a;
		enum color b;
	};
};
`
	if got != want {
		t.Errorf("CDefinitions:\n%s\nwant:\n%s", got, want)
	}
	if n := strings.Count(CDefinitions(node, node, typ), "struct node {"); n != 1 {
		t.Errorf("struct node defined %d times", n)
	}
}
