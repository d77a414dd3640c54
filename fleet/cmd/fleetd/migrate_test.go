package main

import (
	"os/exec"
	"strings"
	"testing"

	"edgefleet/internal/testutil"
)

// TestMigrateCommand runs `fleetd migrate`: usage errors exit 2, a data
// dir is copied (twice: the second copies nothing), a bad URL exits 1.
func TestMigrateCommand(t *testing.T) {
	dsn := testutil.Postgres(t)
	dir := t.TempDir()
	bin := buildFleetd(t, dir)
	tests := []struct {
		name   string
		args   []string
		code   int
		output string
	}{
		{"no flags", []string{"migrate"}, 2, "--from and --to are required"},
		{"missing dir", []string{"migrate", "--from", dir + "/nope", "--to", dsn}, 2, "no such file"},
		{"empty dir", []string{"migrate", "--from", t.TempDir(), "--to", dsn}, 0, "devices: 0 copied"},
		{"again", []string{"migrate", "--from", t.TempDir(), "--to", dsn}, 0, "detections: 0 copied, 0 already there"},
		{"bad url", []string{"migrate", "--from", t.TempDir(), "--to", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"}, 1, "fleetd migrate: database"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.output) {
				t.Fatalf("exit %d, want %d; output:\n%s\nwant it to contain %q", code, tc.code, out, tc.output)
			}
		})
	}
}
