package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepo keeps every function of the module at 120 lines or fewer.
func TestRepo(t *testing.T) {
	long, err := Scan("../..", 120)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range long {
		t.Errorf("%s: %s is %d lines (split it; limit 120)", l.Pos, l.Name, l.Lines)
	}
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("\t_ = 1\n", 10)
	os.WriteFile(filepath.Join(dir, "a.go"), []byte("package a\n\nfunc short() {\n"+body+"}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b.go"), []byte("package a\n\nfunc long() {\n"+body+body+"}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "c_gen.go"), []byte("package a\n\nfunc gen() {\n"+body+body+"}\n"), 0o600)
	long, err := Scan(dir, 15)
	if err != nil {
		t.Fatal(err)
	}
	if len(long) != 1 || long[0].Name != "long" || long[0].Lines != 22 {
		t.Fatalf("got %+v, want only long (22 lines)", long)
	}
}
