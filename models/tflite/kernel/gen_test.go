package kernel

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedUpToDate checks that the committed assembly is what
// asm_gen.go writes, so nobody edits the generated files by hand.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(goTool, "run", "asm_gen.go", "-out", dir)
	// Build the generator for the machine, not for a cross-compiled test.
	cmd.Env = append(os.Environ(), "GOOS=", "GOARCH=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run asm_gen.go: %v\n%s", err, out)
	}
	for _, f := range []string{"kernel_amd64.s", "kernel_amd64_gen.go", "kernel_arm64.s", "kernel_arm64_gen.go"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what asm_gen.go writes; run go generate", f)
		}
	}
}
