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
		{[]string{"frobnicate"}, "unknown command", nil},
	}
	for _, st := range steps {
		out.Reset()
		err := run(ctx, st.args, &out)
		switch {
		case st.err != nil:
			if !errors.Is(err, st.err) {
				t.Fatalf("%v: %v, want %v", st.args, err, st.err)
			}
		case strings.Contains(st.want, "unknown command"):
			if err == nil || !strings.Contains(err.Error(), st.want) {
				t.Fatalf("%v: %v", st.args, err)
			}
		case err != nil:
			t.Fatalf("%v: %v", st.args, err)
		case !strings.Contains(out.String(), st.want):
			t.Fatalf("%v: output %q lacks %q", st.args, out.String(), st.want)
		}
	}
}
