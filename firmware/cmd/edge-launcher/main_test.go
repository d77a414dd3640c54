package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/firmwaretest"
	"edgefleet/firmware/slot"
	"edgefleet/models/manifest"
)

func TestCommands(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	ctx := context.Background()
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	v1 := firmwaretest.Build(t, tmp, "1.0.0", firmwaretest.Good)
	signer := firmwaretest.NewSigner(t)
	signer.WritePublicKey(t, filepath.Join(tmp, "keys"))
	good := filepath.Join(tmp, "v1.bundle")
	if err := os.WriteFile(good, signer.Bundle(t, v1), 0o644); err != nil {
		t.Fatal(err)
	}
	stranger := firmwaretest.NewSigner(t)
	unknown := filepath.Join(tmp, "stranger.bundle")
	os.WriteFile(unknown, stranger.Bundle(t, v1), 0o644)

	var out bytes.Buffer
	steps := []struct {
		args []string
		want string // in the output, or in the error
		err  error
	}{
		{[]string{"status", "--data", data}, "", slot.ErrNoState},
		{[]string{"seed", "--data", data, v1}, "", nil},
		{[]string{"status", "--data", data}, "* a  1.0.0", nil},
		{[]string{"rollback", "--data", data}, "", slot.ErrNoPrevious},
		{[]string{"install", "--data", data, "--keys", filepath.Join(tmp, "keys"), unknown}, "", manifest.ErrUnknownKey},
		{[]string{"install", "--data", data, "--keys", filepath.Join(tmp, "keys"), v1}, "", bundle.ErrFormat},
		{[]string{"install", "--data", data, "--keys", filepath.Join(tmp, "keys"), good}, "on trial", nil},
		{[]string{"status", "--data", data}, "* b  1.0.0", nil},
		{[]string{"status", "--data", data, "--json"}, `"trial": true`, nil},
		{[]string{"rollback", "--data", data}, "rolled back from 1.0.0", nil},
		{[]string{"status", "--data", data}, "outcome: job - (local) 1.0.0 rolled_back", nil},
		{[]string{"--data", data, "status"}, "outcome: job - (local) 1.0.0 rolled_back", nil}, // a global flag before the command
	}
	for _, st := range steps {
		out.Reset()
		err := runCommand(ctx, st.args, &out)
		switch {
		case st.err != nil:
			if !errors.Is(err, st.err) {
				t.Fatalf("%v: %v, want %v", st.args, err, st.err)
			}
		case err != nil:
			t.Fatalf("%v: %v", st.args, err)
		case !strings.Contains(out.String(), st.want):
			t.Fatalf("%v: output %q lacks %q", st.args, out.String(), st.want)
		}
	}
}

// runCommand runs the command args name as edge-launcher would (global
// flags moved behind its name) and returns its error.
func runCommand(ctx context.Context, args []string, stdout *bytes.Buffer) error {
	var lead []string
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		lead, args = append(lead, args[:2]...), args[2:]
	}
	for _, c := range commands(stdout) {
		if c.Name == args[0] {
			return c.Run(ctx, append(lead, args[1:]...))
		}
	}
	return errors.New("no command " + args[0])
}

// TestUsage: help exits 0, usage errors 2 with the usage, runtime errors 1.
func TestUsage(t *testing.T) {
	data := t.TempDir()
	for _, tt := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{nil, 0, "usage: edge-launcher <command>", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"seed", "--data", data}, 2, "", "usage: edge-launcher seed BINARY [flags]"},
		{[]string{"install", "--data", data, "b.bundle"}, 2, "", "--keys is required"},
		{[]string{"status", "--data", data, "--yaml"}, 2, "", "unknown flag --yaml"},
		{[]string{"status", "--data", data}, 1, "", "edge-launcher status: "},
		{[]string{"--data", data, "rollback", "--help"}, 0, "usage: edge-launcher rollback [flags]", ""},
	} {
		var out, errOut bytes.Buffer
		code := program(&out, &errOut).Run(context.Background(), tt.args)
		if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.errOut) {
			t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.code, out.String(), errOut.String())
		}
	}
}
