// SPDX-License-Identifier: Apache-2.0

package bpf_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// Types built by hand, as clang would describe them, for the value tests.
var (
	tU8   = &btf.Typedef{Name: "__u8", Type: &btf.Int{Name: "unsigned char", Size: 1}}
	tS8   = &btf.Int{Name: "signed char", Size: 1, Encoding: btf.Signed}
	tChar = &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	tU16  = &btf.Typedef{Name: "__u16", Type: &btf.Int{Name: "unsigned short", Size: 2}}
	tU32  = &btf.Typedef{Name: "__u32", Type: &btf.Int{Name: "unsigned int", Size: 4}}
	tS32  = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	tU64  = &btf.Typedef{Name: "__u64", Type: &btf.Int{Name: "unsigned long long", Size: 8}}
	tS64  = &btf.Typedef{Name: "__s64", Type: &btf.Int{Name: "long long", Size: 8, Encoding: btf.Signed}}
	tU128 = &btf.Int{Name: "unsigned __int128", Size: 16}
	tS128 = &btf.Int{Name: "__int128", Size: 16, Encoding: btf.Signed}
	tBool = &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
	tF32  = &btf.Float{Name: "float", Size: 4}
	tF64  = &btf.Float{Name: "double", Size: 8}
	tF16  = &btf.Float{Name: "_Float16", Size: 2}
	tPtr  = &btf.Pointer{Target: &btf.Void{}}

	tColor = &btf.Enum{Name: "color", Size: 4, Values: []btf.EnumValue{
		{Name: "RED", Value: 0}, {Name: "GREEN", Value: 1}, {Name: "BLUE", Value: 2},
	}}
	// level is a signed one-byte enum; BTF keeps negative values sign-extended.
	tLevel = &btf.Enum{Name: "level", Size: 1, Signed: true, Values: []btf.EnumValue{
		{Name: "LOW", Value: uint64(0xffffffffffffffff)}, {Name: "HIGH", Value: 1},
	}}

	tName   = &btf.Array{Index: tU32, Type: tChar, Nelems: 16}
	tPorts  = &btf.Array{Index: tU32, Type: tU16, Nelems: 3}
	tAddr6  = &btf.Array{Index: tU32, Type: tU8, Nelems: 16}
	tMatrix = &btf.Array{Index: tU32, Type: &btf.Array{Index: tU32, Type: tU8, Nelems: 2}, Nelems: 2}

	// struct tuple { __u32 saddr, daddr; __u16 sport, dport; __u8 proto; }
	// (16 bytes: 3 of tail padding).
	tTuple = &btf.Struct{Name: "tuple", Size: 16, Members: []btf.Member{
		{Name: "saddr", Type: tU32, Offset: 0},
		{Name: "daddr", Type: tU32, Offset: 32},
		{Name: "sport", Type: tU16, Offset: 64},
		{Name: "dport", Type: tU16, Offset: 80},
		{Name: "proto", Type: tU8, Offset: 96},
	}}

	// struct flags {
	//	unsigned int a:3; int b:5; enum color c:2; _Bool d:1; int :5;
	//	__u16 e;
	// };
	tFlags = &btf.Struct{Name: "flags", Size: 4, Members: []btf.Member{
		{Name: "a", Type: &btf.Int{Name: "unsigned int", Size: 4}, Offset: 0, BitfieldSize: 3},
		{Name: "b", Type: tS32, Offset: 3, BitfieldSize: 5},
		{Name: "c", Type: tColor, Offset: 8, BitfieldSize: 2},
		{Name: "d", Type: tBool, Offset: 10, BitfieldSize: 1},
		{Name: "", Type: tS32, Offset: 11, BitfieldSize: 5},
		{Name: "e", Type: tU16, Offset: 16},
	}}

	// union addr { __u32 v4; __u8 v6[16]; }, used anonymously in record.
	tAddrUnion = &btf.Union{Size: 16, Members: []btf.Member{
		{Name: "v4", Type: tU32},
		{Name: "v6", Type: tAddr6},
	}}

	// struct record {
	//	struct tuple t; char name[16]; __u16 ports[3];
	//	union { __u32 v4; __u8 v6[16]; };
	//	enum color col; const volatile __u64 count; void *p; float f;
	//	struct flags fl; double d;
	// };
	tRecord = &btf.Struct{Name: "record", Size: 96, Members: []btf.Member{
		{Name: "t", Type: tTuple, Offset: 0},
		{Name: "name", Type: tName, Offset: 128},
		{Name: "ports", Type: tPorts, Offset: 256},
		{Name: "", Type: tAddrUnion, Offset: 320},
		{Name: "col", Type: tColor, Offset: 448},
		{Name: "count", Type: &btf.Const{Type: &btf.Volatile{Type: tU64}}, Offset: 512},
		{Name: "p", Type: tPtr, Offset: 576},
		{Name: "f", Type: tF32, Offset: 640},
		{Name: "fl", Type: tFlags, Offset: 672},
		{Name: "d", Type: tF64, Offset: 704},
	}}

	// struct odd { _Float16 h; } has a member no literal can spell.
	tOdd = &btf.Struct{Name: "odd", Size: 2, Members: []btf.Member{{Name: "h", Type: tF16}}}
)

// hexBytes reads "0a 00 00 01" (blanks ignored) in a test table.
func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad test hex %q: %v", s, err)
	}
	return b
}

// sizeOf is btf.Sizeof for types known to be sized.
func sizeOf(t testing.TB, typ btf.Type) int {
	t.Helper()
	n, err := btf.Sizeof(typ)
	if err != nil {
		t.Fatalf("sizeof %v: %v", typ, err)
	}
	return n
}
