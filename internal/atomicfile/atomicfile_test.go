package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	tests := []struct {
		name string
		data string
		perm os.FileMode
	}{
		{"create", "one", 0o600},
		{"replace", "two, longer", 0o644},
		{"shorter", "3", 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteFile(p, []byte(tc.data), tc.perm); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil || string(b) != tc.data {
				t.Fatalf("read %q, %v; want %q", b, err, tc.data)
			}
			st, _ := os.Stat(p)
			if st.Mode().Perm() != tc.perm {
				t.Fatalf("mode %v, want %v", st.Mode().Perm(), tc.perm)
			}
		})
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	err := WriteFile(filepath.Join(t.TempDir(), "no", "such"), []byte("x"), 0o600)
	if err == nil {
		t.Fatal("want an error for a missing directory")
	}
}
