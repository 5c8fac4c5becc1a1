// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// Every family lists its sub-commands in its own struct literal, so that
// none depends on which file's init runs first (issue 13 item 21).
func TestSubsAreInTheLiterals(t *testing.T) {
	for _, line := range []string{"kv serve", "kv bench", "kv check", "kv get", "kv use", "cache attach", "cache detach", "cache bench",
		"proxy start", "proxy stop", "proxy status", "proxy bench", "expect retval", "expect error", "map create", "map getnext", "prog attach", "net attach"} {
		path, rest, err := Lookup(All(), strings.Fields(line))
		if err != nil || len(rest) != 0 || FullName(path) != line || path[len(path)-1].Run == nil {
			t.Errorf("%q is not in the table with a Run: %v", line, err)
		}
	}

	// No file assigns a command's Run or Subs outside its literal.
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok {
				return true
			}
			for _, l := range as.Lhs {
				if sel, ok := l.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Run" || sel.Sel.Name == "Subs") {
					if id, ok := sel.X.(*ast.Ident); ok && strings.HasSuffix(id.Name, "Cmd") {
						t.Errorf("%s: %s.%s is assigned outside its literal", fset.Position(as.Pos()), id.Name, sel.Sel.Name)
					}
				}
			}
			return true
		})
	}
}
