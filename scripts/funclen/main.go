// Command funclen lists Go functions longer than a limit (default 120
// lines), skipping generated files and code generators, so that "no
// function over 120 lines" stays true as the code grows:
//
//	go run ./scripts/funclen [-max 120] [DIR]
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Long is one function over the limit.
type Long struct {
	Pos   string
	Name  string
	Lines int
}

var generated = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

// exempt reports files that are generated or are generators.
func exempt(path string, src []byte) bool {
	base := filepath.Base(path)
	return generated.Match(src) || strings.HasSuffix(base, "_gen.go") || base == "asm_gen.go"
}

// Scan walks root and returns the functions longer than max lines.
func Scan(root string, max int) ([]Long, error) {
	var out []Long
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if exempt(path, src) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return fmt.Errorf("funclen: %w", err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
			if n := end.Line - start.Line + 1; n > max {
				out = append(out, Long{Pos: fmt.Sprintf("%s:%d", path, start.Line), Name: fn.Name.Name, Lines: n})
			}
		}
		return nil
	})
	return out, err
}

func main() {
	max := flag.Int("max", 120, "longest function allowed, in lines")
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	long, err := Scan(root, *max)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, l := range long {
		fmt.Printf("%s: %s is %d lines\n", l.Pos, l.Name, l.Lines)
	}
	if len(long) > 0 {
		os.Exit(1)
	}
}
